package policystore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// epoch is where every test's clock starts; far from the real time, so
// anything reading time.Now instead of the clock shows up.
func epoch() time.Time { return time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC) }

// instance is one engine over one connection pool: what a server process
// holds. Two instances on one URL are two servers sharing a database.
type instance struct {
	store *storage.Store
	eng   *policystore.Engine
	rec   *audit.Recorder
}

func open(t *testing.T, url string, clk *storagetest.Clock, base policies.Policy) *instance {
	t.Helper()
	s := storagetest.OpenWithClock(t, url, clk.Now)
	rec := audit.NewRecorder(s, nil, clk.Now)
	eng, err := policystore.New(t.Context(), s, base, rec, slog.New(slog.DiscardHandler), clk.Now)
	if err != nil {
		t.Fatalf("policystore.New: %v", err)
	}
	return &instance{store: s, eng: eng, rec: rec}
}

// eachBackend runs fn on SQLite and, when reachable, PostgreSQL, each on a
// fresh database.
func eachBackend(t *testing.T, fn func(t *testing.T, url string, clk *storagetest.Clock)) {
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.URL, storagetest.NewClock(epoch())) })
	}
}

func createClient(t *testing.T, s *storage.Store, id string) *storage.Client {
	t.Helper()
	c := &storage.Client{
		ID: id, Name: "Client " + id, SecretHash: "$argon2id$placeholder",
		RedirectURIs: []string{"https://app.test/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, Scopes: []string{"openid", "offline_access"},
	}
	if err := s.CreateClient(t.Context(), c); err != nil {
		t.Fatalf("CreateClient(%q): %v", id, err)
	}
	return c
}

func mustPatchGlobal(t *testing.T, e *policystore.Engine, patch string) *policystore.Change {
	t.Helper()
	ch, err := e.PatchGlobal(t.Context(), "admin-1", []byte(patch))
	if err != nil {
		t.Fatalf("PatchGlobal(%s): %v", patch, err)
	}
	return ch
}

func mustPatchClient(t *testing.T, e *policystore.Engine, clientID, patch string) *policystore.Change {
	t.Helper()
	ch, err := e.PatchClient(t.Context(), "admin-1", clientID, []byte(patch))
	if err != nil {
		t.Fatalf("PatchClient(%s, %s): %v", clientID, patch, err)
	}
	return ch
}

func storedVersion(t *testing.T, s *storage.Store) int64 {
	t.Helper()
	v, err := s.PolicyVersion(t.Context())
	if err != nil {
		t.Fatalf("PolicyVersion: %v", err)
	}
	return v
}

func policyEvents(t *testing.T, rec *audit.Recorder) []audit.Event {
	t.Helper()
	events, _, err := rec.Query(t.Context(), audit.Query{Type: audit.TypePolicyChanged, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatalf("audit Query: %v", err)
	}
	return events
}

func dur(d time.Duration) policies.Duration { return policies.Duration(d) }

func TestPatchGlobalRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		if got, want := in.eng.Global().Canonical(), policies.Defaults().Canonical(); !bytes.Equal(got, want) {
			t.Fatalf("fresh database: Global() = %s, want the base %s", got, want)
		}
		v0 := in.eng.Version()

		ch := mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"5m","refresh_window":"1h","refresh_token_ttl":"0s"},"session":{"max_concurrent":2}}`)
		want := policies.Defaults()
		want.Token.AccessTokenTTL = dur(5 * time.Minute)
		want.Token.RefreshWindow = dur(time.Hour)
		want.Token.RefreshTokenTTL = 0
		want.Session.MaxConcurrent = 2
		for name, got := range map[string]policies.Policy{"Change.Policy": ch.Policy, "Global()": in.eng.Global(), "For(unknown client)": in.eng.For("nobody")} {
			if !bytes.Equal(got.Canonical(), want.Canonical()) {
				t.Errorf("%s = %s, want %s", name, got.Canonical(), want.Canonical())
			}
		}
		if ch.Customized || ch.Revoked != 0 {
			t.Errorf("Change = customized %v revoked %d, want false 0", ch.Customized, ch.Revoked)
		}
		if got := in.eng.Version(); got != v0+1 || storedVersion(t, in.store) != got {
			t.Errorf("Version() = %d, stored %d; want both %d", got, storedVersion(t, in.store), v0+1)
		}

		// The stored overlay holds what the admin set, with who set it.
		d, err := in.store.PolicyDocument(t.Context(), storage.PolicyScopeGlobal)
		if err != nil {
			t.Fatalf("PolicyDocument(global): %v", err)
		}
		if d.UpdatedBy != "admin-1" {
			t.Errorf("stored UpdatedBy = %q, want admin-1", d.UpdatedBy)
		}

		// A restart over the same database reads it back.
		again := open(t, url, clk, policies.Defaults())
		if got := again.eng.Global().Canonical(); !bytes.Equal(got, want.Canonical()) {
			t.Errorf("new engine: Global() = %s, want %s", got, want.Canonical())
		}

		// A value outside the recommended range is accepted with a warning.
		ch = mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"30s"}}`)
		if len(ch.Warnings) != 1 || ch.Warnings[0].Field != "token.access_token_ttl" {
			t.Errorf("warnings = %+v, want one for token.access_token_ttl", ch.Warnings)
		}
		if got := in.eng.Global().Token.AccessTokenTTL; got != dur(30*time.Second) {
			t.Errorf("access_token_ttl = %s after a warned patch, want 30s", got)
		}
	})
}

// TestOverlayFollowsTheBase: the database keeps only the keys admins set, so
// a config.toml change still shows through everywhere else.
func TestOverlayFollowsTheBase(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		first := open(t, url, clk, policies.Defaults())
		createClient(t, first.store, "app")
		mustPatchGlobal(t, first.eng, `{"token":{"access_token_ttl":"5m"},"session":{"idle_timeout":"2h"}}`)
		mustPatchClient(t, first.eng, "app", `{"customized":true}`)
		snapshot := first.eng.For("app").Canonical()

		base := policies.Defaults()
		base.Token.AccessTokenTTL = dur(20 * time.Minute) // overridden by the admin
		base.Token.IDTokenTTL = dur(30 * time.Minute)     // not set by the admin
		base.Session.AbsoluteTimeout = dur(12 * time.Hour)
		base.Session.Cookie = policies.CookieLifetime{Browser: true}
		second := open(t, url, clk, base)

		want := base
		want.Token.AccessTokenTTL = dur(5 * time.Minute)
		want.Session.IdleTimeout = dur(2 * time.Hour)
		if got := second.eng.Global().Canonical(); !bytes.Equal(got, want.Canonical()) {
			t.Errorf("Global() with a new base = %s\nwant admin keys over the new base %s", got, want.Canonical())
		}
		// A customized application holds a snapshot, not an overlay: the
		// new base does not reach it.
		if got := second.eng.For("app").Canonical(); !bytes.Equal(got, snapshot) {
			t.Errorf("customized app under a new base = %s, want its snapshot %s", got, snapshot)
		}
		// A later patch through the new engine keeps the earlier admin keys.
		mustPatchGlobal(t, second.eng, `{"token":{"id_token_ttl":"45m"}}`)
		want.Token.IDTokenTTL = dur(45 * time.Minute)
		if got := second.eng.Global().Canonical(); !bytes.Equal(got, want.Canonical()) {
			t.Errorf("after a second patch Global() = %s, want %s", got, want.Canonical())
		}
	})
}

func TestInvalidPatchesChangeNothing(t *testing.T) {
	tests := []struct {
		name   string
		client bool // through PatchClient on a customized client
		patch  string
		field  string
	}{
		{"unknown key", false, `{"token":{"acces_token_ttl":"5m"}}`, "token.acces_token_ttl"},
		{"unknown section", false, `{"tokens":{}}`, "tokens"},
		{"duration as a number", false, `{"token":{"access_token_ttl":300}}`, "token.access_token_ttl"},
		{"integer as a string", false, `{"session":{"max_concurrent":"3"}}`, "session.max_concurrent"},
		{"section not an object", false, `{"token":"15m"}`, "token"},
		{"bad duration", false, `{"token":{"id_token_ttl":"soon"}}`, "token.id_token_ttl"},
		{"refresh equal to access", false, `{"token":{"access_token_ttl":"30m","refresh_token_ttl":"30m"}}`, "token.refresh_token_ttl"},
		{"refresh below access", false, `{"token":{"refresh_token_ttl":"4m"}}`, "token.refresh_token_ttl"},
		{"both refresh modes", false, `{"token":{"refresh_window":"1h"}}`, "token.refresh_window"},
		{"neither refresh mode", false, `{"token":{"refresh_token_ttl":"0s"}}`, "token.refresh_token_ttl"},
		{"zero access", false, `{"token":{"access_token_ttl":"0s"}}`, "token.access_token_ttl"},
		{"negative idle", false, `{"session":{"idle_timeout":"-1m"}}`, "session.idle_timeout"},
		{"unknown enum", false, `{"session":{"on_limit":"drop_newest"}}`, "session.on_limit"},
		{"admin refresh not above admin access", false, `{"token":{"admin":{"access_token_ttl":"30m","refresh_token_ttl":"20m"}}}`, "token.admin.refresh_token_ttl"},
		{"not an object", false, `["token"]`, ""},
		{"not JSON", false, `{"token":`, ""},
		{"client: unknown key", true, `{"token":{"acces_token_ttl":"5m"}}`, "token.acces_token_ttl"},
		{"client: both refresh modes", true, `{"token":{"refresh_window":"1h"}}`, "token.refresh_window"},
		{"client: refresh below access", true, `{"token":{"refresh_token_ttl":"1m"}}`, "token.refresh_token_ttl"},
		{"client: customized not a bool", true, `{"customized":"yes"}`, "customized"},
		{"client: customized null", true, `{"customized":null}`, "customized"},
		{"client: off with rules", true, `{"customized":false,"token":{"access_token_ttl":"5m"}}`, "customized"},
		{"client: sections not a list", true, `{"customized_sections":"token"}`, "customized_sections"},
		{"client: sections null", true, `{"customized_sections":null}`, "customized_sections"},
		{"client: unknown section", true, `{"customized_sections":["token","tokens"]}`, "customized_sections[1]"},
		{"client: section not a string", true, `{"customized_sections":[1]}`, "customized_sections[0]"},
		{"client: section twice", true, `{"customized_sections":["session","session"]}`, "customized_sections[1]"},
		{"client: both switches", true, `{"customized":true,"customized_sections":["token"]}`, "customized_sections"},
		{"client: changing a section left out", true, `{"customized_sections":["session"],"token":{"access_token_ttl":"5m"}}`, "customized_sections"},
		{"client: unknown section key", true, `{"tokens":{}}`, "tokens"},
		{"client: invalid rules with the switch", true, `{"customized_sections":["token"],"token":{"format":"xml"}}`, "token.format"},
	}
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		createClient(t, in.store, "app")
		mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"5m"}}`)
		mustPatchClient(t, in.eng, "app", `{"customized":true,"token":{"id_token_ttl":"20m"}}`)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				global, app := in.eng.Global().Canonical(), in.eng.For("app").Canonical()
				version, events := storedVersion(t, in.store), len(policyEvents(t, in.rec))
				docs, err := in.store.PolicyDocuments(t.Context())
				if err != nil {
					t.Fatal(err)
				}

				var ch *policystore.Change
				if tt.client {
					ch, err = in.eng.PatchClient(t.Context(), "admin-1", "app", []byte(tt.patch))
				} else {
					ch, err = in.eng.PatchGlobal(t.Context(), "admin-1", []byte(tt.patch))
				}
				if !errors.Is(err, policystore.ErrInvalid) {
					t.Fatalf("err = %v (change %+v), want one wrapping ErrInvalid", err, ch)
				}
				fe, ok := fielderr.As(err)
				if !ok {
					t.Fatalf("err = %v, want a *fielderr.Error inside", err)
				}
				if len(fe.Fields) == 0 || fe.Fields[0].Field != tt.field || fe.Fields[0].Message == "" {
					t.Errorf("fields = %+v, want the first to name %q with a message", fe.Fields, tt.field)
				}

				if got := in.eng.Global().Canonical(); !bytes.Equal(got, global) {
					t.Errorf("Global() changed:\n got %s\nwant %s", got, global)
				}
				if got := in.eng.For("app").Canonical(); !bytes.Equal(got, app) {
					t.Errorf("For(app) changed:\n got %s\nwant %s", got, app)
				}
				if got := storedVersion(t, in.store); got != version {
					t.Errorf("PolicyVersion = %d, want it unchanged at %d", got, version)
				}
				after, err := in.store.PolicyDocuments(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(after) != fmt.Sprint(docs) {
					t.Errorf("stored documents changed:\n got %v\nwant %v", after, docs)
				}
				if got := len(policyEvents(t, in.rec)); got != events {
					t.Errorf("%d policy.changed events, want %d: a refused patch is not a change", got, events)
				}
			})
		}
	})
}

func TestClientCustomization(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		createClient(t, in.store, "app")
		createClient(t, in.store, "other")
		ctx := t.Context()

		if custom, p := in.eng.Client("app"); custom || !bytes.Equal(p.Canonical(), in.eng.Global().Canonical()) {
			t.Fatalf("new client: Client() = %v %s, want the global rules", custom, p.Canonical())
		}
		// Turning customization off and changing rules at once is refused.
		version := storedVersion(t, in.store)
		_, err := in.eng.PatchClient(ctx, "admin-1", "app", []byte(`{"customized":false,"token":{"access_token_ttl":"20m"}}`))
		if fe, ok := fielderr.As(err); !errors.Is(err, policystore.ErrInvalid) || !ok || fe.Fields[0].Field != "customized" {
			t.Fatalf("customized false with rules: err = %v, want ErrInvalid naming customized", err)
		}
		if custom, _ := in.eng.Client("app"); custom || storedVersion(t, in.store) != version {
			t.Fatal("a refused client patch customized the client or bumped the version")
		}
		// An application that does not exist is not found, not invalid.
		if _, err := in.eng.PatchClient(ctx, "admin-1", "ghost", []byte(`{"customized":true}`)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown client: err = %v, want storage.ErrNotFound", err)
		}

		mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"10m"}}`)
		snapshot := in.eng.Global()
		ch := mustPatchClient(t, in.eng, "app", `{"customized":true}`)
		if !ch.Customized || !bytes.Equal(ch.Policy.Canonical(), snapshot.Canonical()) {
			t.Fatalf("customize: Change = %v %s, want a snapshot of %s", ch.Customized, ch.Policy.Canonical(), snapshot.Canonical())
		}

		// A later global change leaves the customized client alone, and
		// only it: the other client follows.
		mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"5m","id_token_ttl":"30m"}}`)
		if got := in.eng.For("app"); !bytes.Equal(got.Canonical(), snapshot.Canonical()) {
			t.Errorf("customized app after a global change = %s, want its snapshot %s", got.Canonical(), snapshot.Canonical())
		}
		if custom, p := in.eng.Client("app"); !custom || p.Token.AccessTokenTTL != dur(10*time.Minute) {
			t.Errorf("Client(app) = %v access %s, want customized with 10m", custom, p.Token.AccessTokenTTL)
		}
		if got := in.eng.For("other").Token.AccessTokenTTL; got != dur(5*time.Minute) {
			t.Errorf("non-customized client: access %s, want the global 5m", got)
		}

		// Its own rules change through the client patch.
		ch = mustPatchClient(t, in.eng, "app", `{"token":{"access_token_ttl":"20m"}}`)
		if got := in.eng.For("app").Token.AccessTokenTTL; !ch.Customized || got != dur(20*time.Minute) {
			t.Errorf("after the client patch: customized %v access %s, want true 20m", ch.Customized, got)
		}
		if got := in.eng.Global().Token.AccessTokenTTL; got != dur(5*time.Minute) {
			t.Errorf("a client patch changed the global access TTL to %s", got)
		}
		// Customizing again keeps the application's rules rather than
		// taking a new snapshot.
		mustPatchClient(t, in.eng, "app", `{"customized":true}`)
		if got := in.eng.For("app").Token.AccessTokenTTL; got != dur(20*time.Minute) {
			t.Errorf("re-customizing replaced the app's rules: access %s, want 20m", got)
		}

		ch = mustPatchClient(t, in.eng, "app", `{"customized":false}`)
		if ch.Customized || !bytes.Equal(ch.Policy.Canonical(), in.eng.Global().Canonical()) {
			t.Errorf("un-customize: Change = %v %s, want the global rules", ch.Customized, ch.Policy.Canonical())
		}
		if custom, p := in.eng.Client("app"); custom || !bytes.Equal(p.Canonical(), in.eng.Global().Canonical()) {
			t.Errorf("after un-customizing: Client(app) = %v %s, want the global rules", custom, p.Canonical())
		}
		if _, err := in.store.PolicyDocument(ctx, storage.PolicyScopeClient("app")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("un-customized app still has a stored policy (err %v)", err)
		}
		// …and it follows later global changes again.
		mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"7m"}}`)
		if got := in.eng.For("app").Token.AccessTokenTTL; got != dur(7*time.Minute) {
			t.Errorf("un-customized app after a global change: access %s, want 7m", got)
		}
		// Customizing afresh snapshots the current global rules, not the
		// app's old ones.
		mustPatchClient(t, in.eng, "app", `{"customized":true}`)
		if got := in.eng.For("app"); !bytes.Equal(got.Canonical(), in.eng.Global().Canonical()) {
			t.Errorf("customizing again = %s, want a fresh snapshot %s", got.Canonical(), in.eng.Global().Canonical())
		}
	})
}

// token is one stored token row made through fosite's storage API.
type token struct {
	kind      fosite.TokenType
	signature string
}

func issueTokens(t *testing.T, s *storage.Store, c *storage.Client, requestID string, now time.Time) []token {
	t.Helper()
	req := &fosite.Request{
		ID: requestID, RequestedAt: now, Client: c,
		RequestedScope: fosite.Arguments{"openid"}, GrantedScope: fosite.Arguments{"openid"},
		Session: &openid.DefaultSession{
			Subject: "u1",
			ExpiresAt: map[fosite.TokenType]time.Time{
				fosite.AccessToken: now.Add(time.Hour), fosite.RefreshToken: now.Add(24 * time.Hour),
			},
			Claims:  &jwt.IDTokenClaims{Subject: "u1", AuthTime: now, RequestedAt: now},
			Headers: &jwt.Headers{},
		},
	}
	at, rt := "at-"+requestID, "rt-"+requestID
	if err := s.CreateAccessTokenSession(t.Context(), at, req); err != nil {
		t.Fatalf("CreateAccessTokenSession: %v", err)
	}
	if err := s.CreateRefreshTokenSession(t.Context(), rt, at, req); err != nil {
		t.Fatalf("CreateRefreshTokenSession: %v", err)
	}
	return []token{{fosite.AccessToken, at}, {fosite.RefreshToken, rt}}
}

// activeTokens counts the tokens the store still answers as active.
func activeTokens(t *testing.T, s *storage.Store, tokens []token) int {
	t.Helper()
	n := 0
	for _, tk := range tokens {
		var err error
		if tk.kind == fosite.AccessToken {
			_, err = s.GetAccessTokenSession(t.Context(), tk.signature, &openid.DefaultSession{})
		} else {
			_, err = s.GetRefreshTokenSession(t.Context(), tk.signature, &openid.DefaultSession{})
		}
		switch {
		case err == nil:
			n++
		case errors.Is(err, fosite.ErrInactiveToken):
		default:
			t.Fatalf("read %s %s: %v", tk.kind, tk.signature, err)
		}
	}
	return n
}

func TestRevokeOnChange(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		app, other := createClient(t, in.store, "app"), createClient(t, in.store, "other")

		t.Run("global", func(t *testing.T) {
			tokens := append(issueTokens(t, in.store, app, "g-app", clk.Now()), issueTokens(t, in.store, other, "g-other", clk.Now())...)
			steps := []struct {
				name    string
				patch   string
				revoked int64
				active  int
			}{
				{"lifetime change while off", `{"token":{"access_token_ttl":"20m"}}`, 0, 4},
				{"switching it on is no lifetime change", `{"token":{"revoke_on_change":true}}`, 0, 4},
				{"other keys are no lifetime change", `{"token":{"format":"jwt"},"session":{"max_concurrent":4}}`, 0, 4},
				{"same value is no change", `{"token":{"access_token_ttl":"20m"}}`, 0, 4},
				{"lifetime change revokes every token", `{"session":{"idle_timeout":"1h"}}`, 4, 0},
			}
			for _, st := range steps {
				ch := mustPatchGlobal(t, in.eng, st.patch)
				if ch.Revoked != st.revoked {
					t.Errorf("%s: Revoked = %d, want %d", st.name, ch.Revoked, st.revoked)
				}
				if got := activeTokens(t, in.store, tokens); got != st.active {
					t.Errorf("%s: %d tokens active, want %d", st.name, got, st.active)
				}
			}
			events := policyEvents(t, in.rec)
			if n, _ := events[0].Details["tokens_revoked"].(json.Number).Int64(); n != 4 {
				t.Errorf("audit details tokens_revoked = %v, want 4", events[0].Details["tokens_revoked"])
			}
			mustPatchGlobal(t, in.eng, `{"token":{"revoke_on_change":false}}`)
		})

		t.Run("client", func(t *testing.T) {
			mustPatchClient(t, in.eng, "app", `{"customized":true}`)
			appTokens := issueTokens(t, in.store, app, "c-app", clk.Now())
			otherTokens := issueTokens(t, in.store, other, "c-other", clk.Now())

			if ch := mustPatchClient(t, in.eng, "app", `{"token":{"access_token_ttl":"25m"}}`); ch.Revoked != 0 {
				t.Errorf("client lifetime change with revoke_on_change off revoked %d", ch.Revoked)
			}
			if ch := mustPatchClient(t, in.eng, "app", `{"token":{"revoke_on_change":true}}`); ch.Revoked != 0 {
				t.Errorf("switching revoke_on_change on revoked %d", ch.Revoked)
			}
			if got := activeTokens(t, in.store, appTokens); got != 2 {
				t.Fatalf("%d of the app's tokens active before a lifetime change, want 2", got)
			}
			ch := mustPatchClient(t, in.eng, "app", `{"token":{"refresh_token_ttl":"72h"}}`)
			if ch.Revoked != 2 {
				t.Errorf("client lifetime change: Revoked = %d, want the app's 2", ch.Revoked)
			}
			if got := activeTokens(t, in.store, appTokens); got != 0 {
				t.Errorf("%d of the app's tokens still active", got)
			}
			if got := activeTokens(t, in.store, otherTokens); got != 2 {
				t.Errorf("%d of another client's tokens active, want 2: an application change revokes that application's tokens only", got)
			}
			// The global rule (revoke_on_change now off) is not the app's.
			if ch := mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"6m"}}`); ch.Revoked != 0 {
				t.Errorf("global change with revoke_on_change off revoked %d", ch.Revoked)
			}
		})
	})
}

// TestTwoInstances is two engines on two connection pools sharing one
// database, as two servers would.
func TestTwoInstances(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		a := open(t, url, clk, policies.Defaults())
		b := open(t, url, clk, policies.Defaults())
		createClient(t, a.store, "app")
		ctx := t.Context()

		mustPatchGlobal(t, a.eng, `{"token":{"access_token_ttl":"7m"}}`)
		if got := b.eng.Global().Token.AccessTokenTTL; got != dur(15*time.Minute) {
			t.Fatalf("B before Reload: access %s, want its loaded 15m", got)
		}
		if err := b.eng.Reload(ctx); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if got := b.eng.Global().Canonical(); !bytes.Equal(got, a.eng.Global().Canonical()) {
			t.Errorf("B after Reload = %s, want A's %s", got, a.eng.Global().Canonical())
		}
		if a.eng.Version() != b.eng.Version() {
			t.Errorf("versions A %d B %d after Reload, want equal", a.eng.Version(), b.eng.Version())
		}

		// B changes things while stale: it must build on the stored policy,
		// not its snapshot, so A's change is neither lost nor missing from
		// the application's snapshot.
		mustPatchGlobal(t, a.eng, `{"token":{"id_token_ttl":"40m"}}`)
		mustPatchClient(t, b.eng, "app", `{"customized":true}`)
		mustPatchGlobal(t, a.eng, `{"token":{"authorization_code_ttl":"5m"}}`)
		mustPatchGlobal(t, b.eng, `{"session":{"idle_timeout":"3h"}}`)
		if err := a.eng.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		wantApp := policies.Defaults()
		wantApp.Token.AccessTokenTTL = dur(7 * time.Minute)
		wantApp.Token.IDTokenTTL = dur(40 * time.Minute)
		want := wantApp
		want.Token.AuthorizationCodeTTL = dur(5 * time.Minute)
		want.Session.IdleTimeout = dur(3 * time.Hour)
		for _, c := range []struct {
			name      string
			got, want policies.Policy
		}{
			{"A global", a.eng.Global(), want}, {"B global", b.eng.Global(), want},
			{"A app", a.eng.For("app"), wantApp}, {"B app", b.eng.For("app"), wantApp},
		} {
			if !bytes.Equal(c.got.Canonical(), c.want.Canonical()) {
				t.Errorf("%s = %s\nwant %s", c.name, c.got.Canonical(), c.want.Canonical())
			}
		}
		if custom, _ := a.eng.Client("app"); !custom {
			t.Error("A does not see B's customization after Reload")
		}

		// Un-customizing through A reaches B on its next Reload.
		mustPatchClient(t, a.eng, "app", `{"customized":false}`)
		mustPatchGlobal(t, a.eng, `{"token":{"access_token_ttl":"8m"}}`)
		if err := b.eng.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if custom, p := b.eng.Client("app"); custom || p.Token.AccessTokenTTL != dur(8*time.Minute) {
			t.Errorf("B: Client(app) = %v access %s, want the global 8m", custom, p.Token.AccessTokenTTL)
		}
	})
}

// TestConcurrentPatchesAllLand: ten patches at once, from two instances,
// each setting a different key; none may be lost.
func TestConcurrentPatchesAllLand(t *testing.T) {
	keys := []struct {
		patch string
		check func(p policies.Policy) bool
	}{
		{`{"token":{"access_token_ttl":"11m"}}`, func(p policies.Policy) bool { return p.Token.AccessTokenTTL == dur(11*time.Minute) }},
		{`{"token":{"id_token_ttl":"50m"}}`, func(p policies.Policy) bool { return p.Token.IDTokenTTL == dur(50*time.Minute) }},
		{`{"token":{"authorization_code_ttl":"5m"}}`, func(p policies.Policy) bool { return p.Token.AuthorizationCodeTTL == dur(5*time.Minute) }},
		{`{"token":{"refresh_token_ttl":"72h"}}`, func(p policies.Policy) bool { return p.Token.RefreshTokenTTL == dur(72*time.Hour) }},
		{`{"token":{"refresh_reuse_grace":"5s"}}`, func(p policies.Policy) bool { return p.Token.RefreshReuseGrace == dur(5*time.Second) }},
		{`{"token":{"format":"jwt"}}`, func(p policies.Policy) bool { return p.Token.Format == policies.FormatJWT }},
		{`{"token":{"admin":{"access_token_ttl":"5m"}}}`, func(p policies.Policy) bool { return p.Token.Admin.AccessTokenTTL == dur(5*time.Minute) }},
		{`{"session":{"idle_timeout":"1h"}}`, func(p policies.Policy) bool { return p.Session.IdleTimeout == dur(time.Hour) }},
		{`{"session":{"max_concurrent":3}}`, func(p policies.Policy) bool { return p.Session.MaxConcurrent == 3 }},
		{`{"session":{"absolute_timeout":"12h"}}`, func(p policies.Policy) bool { return p.Session.AbsoluteTimeout == dur(12*time.Hour) }},
	}
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		instances := []*instance{open(t, url, clk, policies.Defaults()), open(t, url, clk, policies.Defaults())}
		v0 := storedVersion(t, instances[0].store)
		var wg sync.WaitGroup
		errs := make([]error, len(keys))
		start := make(chan struct{})
		for i, k := range keys {
			wg.Go(func() {
				<-start
				_, errs[i] = instances[i%2].eng.PatchGlobal(context.Background(), fmt.Sprintf("admin-%d", i), []byte(k.patch))
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("patch %s: %v", keys[i].patch, err)
			}
		}
		if got := storedVersion(t, instances[0].store); got != v0+int64(len(keys)) {
			t.Errorf("PolicyVersion = %d, want %d (+%d)", got, v0+int64(len(keys)), len(keys))
		}
		for n, in := range instances {
			if err := in.eng.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			g := in.eng.Global()
			for _, k := range keys {
				if !k.check(g) {
					t.Errorf("instance %d: %s was lost; Global() = %s", n, k.patch, g.Canonical())
				}
			}
			if got := in.eng.Version(); got != v0+int64(len(keys)) {
				t.Errorf("instance %d: Version() = %d, want %d", n, got, v0+int64(len(keys)))
			}
		}
		if got := len(policyEvents(t, instances[0].rec)); got != len(keys) {
			t.Errorf("%d policy.changed events, want %d", got, len(keys))
		}
	})
}

func decodePolicy(t *testing.T, v any) policies.Policy {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var p policies.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("decode audited policy %s: %v", b, err)
	}
	return p
}

func TestEveryChangeIsAudited(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		createClient(t, in.store, "app")
		g0 := in.eng.Global()
		mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"5m"}}`)
		g1 := in.eng.Global()
		clk.Advance(time.Minute)
		mustPatchClient(t, in.eng, "app", `{"customized":true}`)
		clk.Advance(time.Minute)
		mustPatchClient(t, in.eng, "app", `{"token":{"access_token_ttl":"45s"}}`)
		a1 := in.eng.For("app")
		clk.Advance(time.Minute)
		mustPatchClient(t, in.eng, "app", `{"customized":false}`)

		events := policyEvents(t, in.rec)
		all := fmt.Sprint(policies.SectionKeys())
		want := []struct {
			client, scope string
			customized    bool
			before, after policies.Policy
			warned        bool
			sections      string // customized_sections before → after; "" for a global change
		}{ // newest first
			{"app", "client:app", false, a1, g1, false, all + " → []"},
			{"app", "client:app", true, g1, a1, true, all + " → " + all},
			{"app", "client:app", true, g1, g1, false, "[] → " + all},
			{"", "global", false, g0, g1, false, ""},
		}
		if len(events) != len(want) {
			t.Fatalf("%d policy.changed events, want %d: %+v", len(events), len(want), events)
		}
		for i, w := range want {
			e := events[i]
			if e.Actor != "admin-1" || e.ClientID != w.client || e.Outcome != audit.OutcomeSuccess {
				t.Errorf("event %d: actor %q client %q outcome %q, want admin-1 %q success", i, e.Actor, e.ClientID, e.Outcome, w.client)
			}
			if e.Details["scope"] != w.scope || e.Details["customized"] != w.customized {
				t.Errorf("event %d: scope %v customized %v, want %s %v", i, e.Details["scope"], e.Details["customized"], w.scope, w.customized)
			}
			if got := decodePolicy(t, e.Details["before"]).Canonical(); !bytes.Equal(got, w.before.Canonical()) {
				t.Errorf("event %d: before = %s\nwant %s", i, got, w.before.Canonical())
			}
			if got := decodePolicy(t, e.Details["after"]).Canonical(); !bytes.Equal(got, w.after.Canonical()) {
				t.Errorf("event %d: after = %s\nwant %s", i, got, w.after.Canonical())
			}
			if w.sections != "" {
				if got := fmt.Sprintf("%v → %v", e.Details["customized_sections_before"], e.Details["customized_sections"]); got != w.sections {
					t.Errorf("event %d: customized_sections %s, want %s", i, got, w.sections)
				}
			} else if _, ok := e.Details["customized_sections"]; ok {
				t.Errorf("event %d: a global change has customized_sections", i)
			}
			if _, warned := e.Details["warnings"]; warned != w.warned {
				t.Errorf("event %d: warnings present %v, want %v", i, warned, w.warned)
			}
		}
		if !events[3].Time.Equal(epoch()) || !events[0].Time.Equal(epoch().Add(3*time.Minute)) {
			t.Errorf("event times %v … %v, want the injected clock's", events[3].Time, events[0].Time)
		}
	})
}

func TestMaxSignedLifetime(t *testing.T) {
	steps := []struct {
		name          string
		global, app   string // patches; empty skips
		want          time.Duration
		customizedApp bool
	}{
		{"defaults: the ID token's hour", "", "", time.Hour, false},
		{"global access above it", `{"token":{"access_token_ttl":"90m"}}`, "", 90 * time.Minute, false},
		{"global admin override", `{"token":{"admin":{"access_token_ttl":"3h"}}}`, "", 3 * time.Hour, false},
		{"customized app keeps the override", "", `{"customized":true}`, 3 * time.Hour, true},
		{"lowering the global override leaves the app's", `{"token":{"admin":{"access_token_ttl":"0s"}},"session":{}}`, "", 3 * time.Hour, true},
		{"customized app's ID token", "", `{"token":{"id_token_ttl":"5h"}}`, 5 * time.Hour, true},
		{"customized app's admin override", "", `{"token":{"admin":{"access_token_ttl":"7h"}}}`, 7 * time.Hour, true},
		{"un-customized: back to the global", "", `{"customized":false}`, 90 * time.Minute, false},
	}
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		createClient(t, in.store, "app")
		for _, st := range steps {
			if st.global != "" {
				mustPatchGlobal(t, in.eng, st.global)
			}
			if st.app != "" {
				mustPatchClient(t, in.eng, "app", st.app)
			}
			if got := in.eng.MaxSignedLifetime(); got != st.want {
				t.Errorf("%s: MaxSignedLifetime = %s, want %s", st.name, got, st.want)
			}
			if custom, _ := in.eng.Client("app"); custom != st.customizedApp {
				t.Errorf("%s: app customized = %v, want %v", st.name, custom, st.customizedApp)
			}
		}
	})
}
