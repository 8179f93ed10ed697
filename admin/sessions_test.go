package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const (
	alice = "0190a4b6-2222-7000-8000-00000000000a"
	bob   = "0190a4b6-2222-7000-8000-00000000000b"
)

// sessionFixture is two users with sessions and tokens, and a token of a
// client acting for itself.
type sessionFixture struct {
	aliceWeb, aliceMobile, aliceOld, aliceCLI string // alice's tokens: per session, of an expired session, of no session
	bobWeb, machine                           string
}

func newSessionFixture(t *testing.T, store *storage.Store) sessionFixture {
	t.Helper()
	createClient(t, store, "web")
	createClient(t, store, "mobile")
	createUser(t, store, alice)
	createUser(t, store, bob)
	createSession(t, store, "s-alice-1", alice)
	createSession(t, store, "s-alice-2", alice)
	createSessionExpiring(t, store, "s-alice-old", alice, time.Now().Add(-time.Minute))
	createSession(t, store, "s-bob", bob)
	return sessionFixture{
		aliceWeb:    createToken(t, store, "web", alice, "s-alice-1"),
		aliceMobile: createToken(t, store, "mobile", alice, "s-alice-2"),
		aliceOld:    createToken(t, store, "web", alice, "s-alice-old"),
		aliceCLI:    createToken(t, store, "mobile", alice, ""),
		bobWeb:      createToken(t, store, "web", bob, "s-bob"),
		machine:     createToken(t, store, "web", "", ""),
	}
}

func (f sessionFixture) all() []string {
	return []string{f.aliceWeb, f.aliceMobile, f.aliceOld, f.aliceCLI, f.bobWeb, f.machine}
}

func TestListUserSessions(t *testing.T) {
	e := newEnv(t)
	newSessionFixture(t, e.store)
	createUser(t, e.store, "loner")
	tests := []struct {
		user   string
		status int
		ids    []string
	}{
		{alice, 200, []string{"s-alice-1", "s-alice-2"}}, // the expired one is not live
		{bob, 200, []string{"s-bob"}},
		{"loner", 200, nil},
		{"nobody", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			rec := e.do(t, "GET", "/admin/users/"+tt.user+"/sessions", adminToken, "")
			wantStatus(t, rec, tt.status)
			if tt.status != http.StatusOK {
				return
			}
			if tt.ids == nil && strings.TrimSpace(rec.Body.String()) != `{"items":[]}` {
				t.Errorf("no sessions = %s, want an empty list", rec.Body)
			}
			got := decode[sessionList](t, rec)
			var ids []string
			for _, s := range got.Items {
				ids = append(ids, s.ID)
				if s.IP != "192.0.2.7" || s.UserAgent != "admin-test" || s.CreatedAt.IsZero() || s.AuthTime.IsZero() ||
					s.LastSeenAt.IsZero() || !s.ExpiresAt.After(time.Now()) {
					t.Errorf("session %+v lacks a field", s)
				}
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tt.ids) {
				t.Errorf("sessions = %q, want %q", ids, tt.ids)
			}
		})
	}
}

func TestEndUserSessions(t *testing.T) {
	tests := []struct {
		name       string
		user       string
		status     int
		want       sessionsEnded
		stillAlive func(f sessionFixture) []string
	}{
		{"every session and token of the user", alice, 200, sessionsEnded{SessionsEnded: 3, TokensRevoked: 4},
			func(f sessionFixture) []string { return []string{f.bobWeb, f.machine} }},
		{"a user with one session", bob, 200, sessionsEnded{SessionsEnded: 1, TokensRevoked: 1},
			func(f sessionFixture) []string {
				return []string{f.aliceWeb, f.aliceMobile, f.aliceOld, f.aliceCLI, f.machine}
			}},
		{"unknown user changes nothing", "nobody", 404, sessionsEnded{},
			func(f sessionFixture) []string { return f.all() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			f := newSessionFixture(t, e.store)
			rec := e.do(t, "DELETE", "/admin/users/"+tt.user+"/sessions", adminToken, "")
			wantStatus(t, rec, tt.status)
			if got := activeTokens(t, e.store, f.all()...); !slices.Equal(got, tt.stillAlive(f)) {
				t.Errorf("active tokens = %q, want %q", got, tt.stillAlive(f))
			}
			ended := auditEvents(t, e.store, audit.TypeSessionEnded)
			revoked := auditEvents(t, e.store, audit.TypeTokenRevoked)
			if tt.status != http.StatusOK {
				if len(ended)+len(revoked) != 0 || len(sessionIDs(t, e.store, alice)) != 2 {
					t.Errorf("a refused request ended sessions or was audited")
				}
				return
			}
			if got := decode[sessionsEnded](t, rec); got != tt.want {
				t.Errorf("answer = %+v, want %+v", got, tt.want)
			}
			if ids := sessionIDs(t, e.store, tt.user); ids != nil {
				t.Errorf("sessions left: %q", ids)
			}
			if len(ended) != tt.want.SessionsEnded || len(revoked) != 1 {
				t.Fatalf("audited %d session.ended and %d token.revoked", len(ended), len(revoked))
			}
			for _, ev := range append(ended, revoked...) {
				if ev.Actor != "root" || ev.UserID != tt.user || ev.Reason != reasonAdmin || ev.IP == "" {
					t.Errorf("event %+v", ev)
				}
			}
		})
	}
}

func TestEndSession(t *testing.T) {
	tests := []struct {
		name       string
		sid        string
		status     int
		stillAlive func(f sessionFixture) []string
		sessions   []string // alice's live sessions afterwards
	}{
		{"live session", "s-alice-1", 204,
			func(f sessionFixture) []string {
				return []string{f.aliceMobile, f.aliceOld, f.aliceCLI, f.bobWeb, f.machine}
			},
			[]string{"s-alice-2"}},
		{"expired session still revokes its tokens", "s-alice-old", 204,
			func(f sessionFixture) []string {
				return []string{f.aliceWeb, f.aliceMobile, f.aliceCLI, f.bobWeb, f.machine}
			},
			[]string{"s-alice-1", "s-alice-2"}},
		{"unknown session changes nothing", "s-nothing", 404,
			func(f sessionFixture) []string { return f.all() },
			[]string{"s-alice-1", "s-alice-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			f := newSessionFixture(t, e.store)
			wantStatus(t, e.do(t, "DELETE", "/admin/sessions/"+tt.sid, adminToken, ""), tt.status)
			if got := activeTokens(t, e.store, f.all()...); !slices.Equal(got, tt.stillAlive(f)) {
				t.Errorf("active tokens = %q, want %q", got, tt.stillAlive(f))
			}
			if got := sessionIDs(t, e.store, alice); !slices.Equal(got, tt.sessions) {
				t.Errorf("alice's sessions = %q, want %q", got, tt.sessions)
			}
			events := auditEvents(t, e.store, audit.TypeSessionEnded)
			if tt.status != http.StatusNoContent {
				if len(events) != 0 {
					t.Errorf("a refused request was audited: %+v", events)
				}
				return
			}
			if len(events) != 1 || events[0].Actor != "root" || events[0].UserID != alice ||
				!strings.Contains(events[0].Details, `"session_id":"`+tt.sid+`"`) {
				t.Errorf("session.ended events = %+v", events)
			}
			// Ending it again finds nothing.
			wantStatus(t, e.do(t, "DELETE", "/admin/sessions/"+tt.sid, adminToken, ""), http.StatusNotFound)
		})
	}
}

func TestRevokeTokens(t *testing.T) {
	tests := []struct {
		name        string
		contentType string // "" means application/json
		body        string
		status      int
		fields      []string
		describes   string // a word the error description must contain
		stillAlive  func(f sessionFixture) []string
	}{
		{name: "one user", body: `{"user_id":"` + alice + `"}`, status: 200,
			stillAlive: func(f sessionFixture) []string { return []string{f.bobWeb, f.machine} }},
		{name: "one client", body: `{"client_id":"mobile"}`, status: 200,
			stillAlive: func(f sessionFixture) []string { return []string{f.aliceWeb, f.aliceOld, f.bobWeb, f.machine} }},
		{name: "one user of one client", body: `{"client_id":"web","user_id":"` + alice + `"}`, status: 200,
			stillAlive: func(f sessionFixture) []string { return []string{f.aliceMobile, f.aliceCLI, f.bobWeb, f.machine} }},
		{name: "everyone", body: `{}`, status: 200,
			stillAlive: func(sessionFixture) []string { return nil }},

		{name: "unknown client", body: `{"client_id":"nope","user_id":"` + alice + `"}`, status: 404, describes: "client_id"},
		{name: "unknown user", body: `{"client_id":"web","user_id":"nobody"}`, status: 404, describes: "user"},
		{name: "empty client_id", body: `{"client_id":""}`, status: 422, fields: []string{"client_id"}},
		{name: "null user_id", body: `{"user_id":null}`, status: 422, fields: []string{"user_id"}},
		{name: "both empty", body: `{"client_id":null,"user_id":""}`, status: 422, fields: []string{"client_id", "user_id"}},
		{name: "wrong type", body: `{"user_id":42}`, status: 400, fields: []string{"user_id"}},
		{name: "unknown field", body: `{"subject":"` + alice + `"}`, status: 400, fields: []string{"subject"}},
		{name: "malformed", body: `{"user_id":`, status: 400},
		{name: "no body", body: ``, status: 400},
		{name: "not JSON", contentType: "text/plain", body: `{}`, status: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			f := newSessionFixture(t, e.store)
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			rec := e.doAs(t, "POST", "/admin/tokens/revoke", ct, tt.body)
			wantStatus(t, rec, tt.status)
			events := auditEvents(t, e.store, audit.TypeTokenRevoked)
			if tt.status != http.StatusOK {
				body := decode[errorBody](t, rec)
				if got := fieldList(body.Fields); !slices.Equal(got, tt.fields) {
					t.Errorf("fields = %q, want %q", got, tt.fields)
				}
				if !strings.Contains(body.Description, tt.describes) {
					t.Errorf("description %q does not name %q", body.Description, tt.describes)
				}
				if got := activeTokens(t, e.store, f.all()...); !slices.Equal(got, f.all()) {
					t.Errorf("a refused request revoked tokens; active %q", got)
				}
				if len(events) != 0 {
					t.Errorf("a refused request was audited: %+v", events)
				}
				return
			}
			alive := tt.stillAlive(f)
			if got := activeTokens(t, e.store, f.all()...); !slices.Equal(got, alive) {
				t.Errorf("active tokens = %q, want %q", got, alive)
			}
			want := int64(len(f.all()) - len(alive))
			if got := decode[tokensRevoked](t, rec); got.TokensRevoked != want {
				t.Errorf("tokens_revoked = %d, want %d", got.TokensRevoked, want)
			}
			if len(events) != 1 || events[0].Actor != "root" || events[0].Reason != reasonAdmin {
				t.Errorf("token.revoked events = %+v", events)
			}
		})
	}
}

func TestRotateKeys(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		fields      []string
		revoking    bool
	}{
		{name: "no body", status: 200},
		{name: "empty body with a content type", contentType: "application/json", status: 200},
		{name: "explicitly not revoking", contentType: "application/json", body: `{"revoke_existing":false}`, status: 200},
		{name: "defaults", contentType: "application/json", body: `{}`, status: 200},
		{name: "revoking", contentType: "application/json", body: `{"revoke_existing":true}`, status: 200, revoking: true},
		{name: "wrong type", contentType: "application/json", body: `{"revoke_existing":1}`, status: 400, fields: []string{"revoke_existing"}},
		{name: "unknown field", contentType: "application/json", body: `{"revoke":true}`, status: 400, fields: []string{"revoke"}},
		{name: "body without content type", body: `{"revoke_existing":true}`, status: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			createClient(t, e.store, "web")
			token := createToken(t, e.store, "web", alice, "")
			oldKeys := decodeJWKS(t, e.keys.JWKS())

			rec := e.doAs(t, "POST", "/admin/keys/rotate", tt.contentType, tt.body)
			wantStatus(t, rec, tt.status)
			events := auditEvents(t, e.store, audit.TypeKeyRotated)
			if tt.status != http.StatusOK {
				if got := fieldNames(t, rec); !slices.Equal(got, tt.fields) {
					t.Errorf("fields = %q, want %q", got, tt.fields)
				}
				if got := decodeJWKS(t, e.keys.JWKS()); !slices.Equal(got, oldKeys) || !tokenActive(t, e.store, token) {
					t.Errorf("a refused request changed the keys (%q → %q) or tokens", oldKeys, got)
				}
				// NewKeyManager's first key is the only rotation on record.
				if len(events) != 1 {
					t.Errorf("%d key.rotated events, want only the first key's", len(events))
				}
				return
			}
			got := decode[keyRotated](t, rec)
			wantRevoked := int64(0)
			if tt.revoking {
				wantRevoked = 1
			}
			if got.KID == "" || slices.Contains(oldKeys, got.KID) || got.Algorithm != "ES256" ||
				got.RevokeExisting != tt.revoking || got.TokensRevoked != wantRevoked {
				t.Errorf("answer = %+v", got)
			}
			keys := decodeJWKS(t, e.keys.JWKS())
			wantKeys := append(slices.Clone(oldKeys), got.KID)
			if tt.revoking {
				wantKeys = []string{got.KID}
			}
			slices.Sort(keys)
			slices.Sort(wantKeys)
			if !slices.Equal(keys, wantKeys) {
				t.Errorf("JWKS kids = %q, want %q", keys, wantKeys)
			}
			if tokenActive(t, e.store, token) == tt.revoking {
				t.Errorf("token active = %v after a rotation revoking=%v", !tt.revoking, tt.revoking)
			}
			if len(events) != 2 || events[0].Actor != "root" {
				t.Errorf("key.rotated events = %+v, want the first key's and one by root", events)
			}
		})
	}
}

func decodeJWKS(t *testing.T, raw []byte) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func TestResetPassword(t *testing.T) {
	const newPassword = "a brand new passphrase"
	tests := []struct {
		name       string
		user       string
		invalidate bool
		body       string
		status     int
		fields     []string
	}{
		{name: "ends every session", user: alice, invalidate: true, body: `{"password":"` + newPassword + `"}`, status: 204},
		{name: "policy keeps sessions", user: alice, invalidate: false, body: `{"password":"` + newPassword + `"}`, status: 204},
		{name: "too short", user: alice, invalidate: true, body: `{"password":"short"}`, status: 422, fields: []string{"password"}},
		{name: "too long", user: alice, invalidate: true, body: `{"password":"` + strings.Repeat("x", authn.MaxPasswordLength+1) + `"}`,
			status: 422, fields: []string{"password"}},
		{name: "missing", user: alice, invalidate: true, body: `{}`, status: 422, fields: []string{"password"}},
		{name: "wrong type", user: alice, invalidate: true, body: `{"password":12345678}`, status: 400, fields: []string{"password"}},
		{name: "unknown field", user: alice, invalidate: true, body: `{"password":"` + newPassword + `","confirm":"x"}`,
			status: 400, fields: []string{"confirm"}},
		{name: "unknown user", user: "nobody", invalidate: true, body: `{"password":"` + newPassword + `"}`, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			f := newSessionFixture(t, e.store)
			if !tt.invalidate {
				wantStatus(t, e.doAs(t, "PATCH", "/admin/policies", mergePatchType,
					`{"session":{"invalidate_on_password_change":false}}`), http.StatusOK)
			}
			before, err := e.store.User(t.Context(), alice)
			if err != nil {
				t.Fatal(err)
			}

			rec := e.do(t, "PUT", "/admin/users/"+tt.user+"/password", adminToken, tt.body)
			wantStatus(t, rec, tt.status)
			after, err := e.store.User(t.Context(), alice)
			if err != nil {
				t.Fatal(err)
			}
			changed := auditEvents(t, e.store, audit.TypePasswordChanged)
			if tt.status != http.StatusNoContent {
				if got := fieldNames(t, rec); !slices.Equal(got, tt.fields) {
					t.Errorf("fields = %q, want %q", got, tt.fields)
				}
				if after.PasswordHash != before.PasswordHash || len(changed) != 0 {
					t.Error("a refused reset changed the password or was audited")
				}
				if got := activeTokens(t, e.store, f.all()...); !slices.Equal(got, f.all()) {
					t.Errorf("a refused reset revoked tokens; active %q", got)
				}
				return
			}
			if ok, err := hashing.Verify(after.PasswordHash, newPassword); !ok || err != nil {
				t.Errorf("the new password does not verify: %v, %v", ok, err)
			}
			// The server's own parameters, not the library default.
			if !strings.Contains(after.PasswordHash, "m=64,t=1,p=1") {
				t.Errorf("hash %q not made with the configured parameters", after.PasswordHash)
			}
			wantAlive, wantSessions := f.all(), []string{"s-alice-1", "s-alice-2"}
			if tt.invalidate {
				wantAlive, wantSessions = []string{f.bobWeb, f.machine}, nil
			}
			if got := activeTokens(t, e.store, f.all()...); !slices.Equal(got, wantAlive) {
				t.Errorf("active tokens = %q, want %q", got, wantAlive)
			}
			if got := sessionIDs(t, e.store, alice); !slices.Equal(got, wantSessions) {
				t.Errorf("alice's sessions = %q, want %q", got, wantSessions)
			}
			if len(changed) != 1 || changed[0].Actor != "root" || changed[0].UserID != alice || changed[0].Reason != "admin_reset" {
				t.Errorf("password.changed events = %+v", changed)
			}
			ended, wantEnded := auditEvents(t, e.store, audit.TypeSessionEnded), 0
			if tt.invalidate {
				wantEnded = 3 // the expired session's row too
			}
			if len(ended) != wantEnded {
				t.Errorf("%d session.ended events, want %d", len(ended), wantEnded)
			}
			for _, ev := range ended {
				if ev.Reason != authn.EndReasonPasswordChanged {
					t.Errorf("session.ended reason %q", ev.Reason)
				}
			}
		})
	}
}

func TestRoutesLeftOutWithoutTheirDependencies(t *testing.T) {
	store := storagetest.Open(t, storagetest.SQLiteURL(t))
	h := New(Config{Store: store, Tokens: testTokens()})
	e := &testEnv{handler: h, store: store}
	tests := []struct{ method, path, body string }{
		{"GET", "/admin/policies", ""},
		{"PATCH", "/admin/clients/x/policies", `{}`},
		{"GET", "/admin/users/x/sessions", ""},
		{"DELETE", "/admin/sessions/x", ""},
		{"POST", "/admin/tokens/revoke", `{}`},
		{"POST", "/admin/keys/rotate", ""},
		{"PUT", "/admin/users/x/password", `{"password":"correct horse"}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			wantStatus(t, e.do(t, tt.method, tt.path, adminToken, tt.body), http.StatusNotFound)
		})
	}
}
