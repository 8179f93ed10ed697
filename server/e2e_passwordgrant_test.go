package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// withPasswordGrant registers the fixture's confidential client for the
// password grant too, and lets it introspect the mobile client's tokens.
func withPasswordGrant(s *oauth.ClientSpec) {
	s.GrantTypes = append(s.GrantTypes, oauth.GrantPassword)
	s.Introspect = true
}

// mobileClient is the public client of a migrating mobile app.
var mobileClient = oauth.ClientSpec{
	ID: "mobile", Name: "Mobile App", Public: true,
	GrantTypes: []string{oauth.GrantPassword, oauth.GrantRefreshToken},
	Scopes:     []string{"openid", "offline_access", "profile", "email"},
}

// formAdder adds parameters to every form a client library posts: x/oauth2's
// PasswordCredentialsToken takes no extra parameters, and device_id is one.
type formAdder struct{ extra url.Values }

func (a formAdder) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	for k, v := range a.extra {
		form[k] = v
	}
	enc := form.Encode()
	r2 := r.Clone(r.Context())
	r2.Body, r2.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
	return http.DefaultTransport.RoundTrip(r2)
}

// withDevice is a context in which x/oauth2 names device in its token
// requests.
func withDevice(ctx context.Context, device string) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: formAdder{url.Values{"device_id": {device}}}})
}

func (f *fixture) events(typ, clientID string) []audit.Event {
	f.t.Helper()
	evs, _, err := f.srv.Audit().Query(context.Background(), audit.Query{Type: typ, ClientID: clientID})
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

// rawPasswordGrant posts a password grant by hand and returns the answer
// as it came: status, Retry-After and the body's bytes.
func (in *instance) rawPasswordGrant(t *testing.T, clientID, secret string, form url.Values) (int, string, []byte) {
	t.Helper()
	form.Set("grant_type", "password")
	if secret == "" {
		form.Set("client_id", clientID) // a public client names itself
	}
	req, _ := http.NewRequest(http.MethodPost, in.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(clientID, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	return resp.StatusCode, resp.Header.Get("Retry-After"), []byte(body)
}

func errorOf(t *testing.T, body []byte) (code, description string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return e.Error, e.Description
}

// The password grant with a certified client library, for a confidential
// and a public client: tokens that work, an ID token like the browser
// flow's, refresh, and the device in the events of the grant.
func TestPasswordGrantIssuesTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true, withPasswordGrant)
		f.createClient(mobileClient)
		ctx := oidc.ClientContext(context.Background(), http.DefaultClient)
		provider, err := oidc.NewProvider(ctx, f.issuer)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		var disc struct {
			GrantTypes []string `json:"grant_types_supported"`
		}
		if err := provider.Claims(&disc); err != nil || !slices.Contains(disc.GrantTypes, "password") {
			t.Fatalf("grant_types_supported = %v (%v), want password among them", disc.GrantTypes, err)
		}

		tok, err := f.conf.PasswordCredentialsToken(ctx, "alice", alicePass)
		if err != nil {
			t.Fatalf("password grant: %v", err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" {
			t.Fatalf("token response lacks tokens: %+v", tok)
		}
		if got := f.introspect(tok.AccessToken); !active(got) || got["sub"] != f.userID || got["client_id"] != f.clientID {
			t.Fatalf("introspection = %v", got)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: f.clientID}).Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("ID token does not verify: %v", err)
		}
		var claims struct {
			AuthTime int64    `json:"auth_time"`
			AMR      []string `json:"amr"`
			ACR      string   `json:"acr"`
			AtHash   string   `json:"at_hash"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != f.userID || time.Since(time.Unix(claims.AuthTime, 0)) > time.Minute ||
			!slices.Equal(claims.AMR, []string{"pwd"}) || claims.ACR != "urn:portcullis:acr:password" || claims.AtHash == "" {
			t.Fatalf("ID token sub %q claims %+v", idt.Subject, claims)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Fatalf("at_hash: %v", err)
		}
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || ui.Subject != f.userID || ui.Email != "alice@example.com" {
			t.Fatalf("userinfo = %+v, %v", ui, err)
		}
		issued := f.events(audit.TypeTokenIssued, f.clientID)
		if len(issued) != 1 || issued[0].Reason != "password" || issued[0].UserID != f.userID {
			t.Fatalf("token.issued events = %+v; want one for the password grant", issued)
		}

		// Refresh works as after any grant, with a new ID token.
		expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
		tok2, err := f.conf.TokenSource(ctx, expired).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if tok2.RefreshToken == tok.RefreshToken || !active(f.introspect(tok2.AccessToken)) {
			t.Fatalf("refresh did not rotate into active tokens")
		}
		if _, err := provider.Verifier(&oidc.Config{ClientID: f.clientID}).Verify(ctx, tok2.Extra("id_token").(string)); err != nil {
			t.Fatalf("refreshed ID token: %v", err)
		}

		// A public mobile client names its device; the pipeline, and every
		// event of the grant, see it.
		mobile := &oauth2.Config{ClientID: mobileClient.ID, Scopes: []string{"openid", "offline_access"},
			Endpoint: oauth2.Endpoint{TokenURL: f.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
		mtok, err := mobile.PasswordCredentialsToken(withDevice(ctx, "pixel-8.install-42"), "alice", alicePass)
		if err != nil {
			t.Fatalf("public client password grant: %v", err)
		}
		if mtok.RefreshToken == "" || !active(f.introspect(mtok.AccessToken)) {
			t.Fatalf("public client tokens: %+v", mtok)
		}
		for _, typ := range []string{audit.TypeLoginSuccess, audit.TypeTokenIssued} {
			evs := f.events(typ, mobileClient.ID)
			if len(evs) != 1 || evs[0].Device != "pixel-8.install-42" || evs[0].IP != "127.0.0.1" || evs[0].UserID != f.userID {
				t.Fatalf("%s events of the mobile client = %+v; want one on device pixel-8.install-42", typ, evs)
			}
		}
		mtok2, err := mobile.TokenSource(withDevice(ctx, "pixel-8.install-42"), &oauth2.Token{RefreshToken: mtok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
		if err != nil || !active(f.introspect(mtok2.AccessToken)) {
			t.Fatalf("public client refresh: %v", err)
		}

		// No refresh token without the refresh_token grant, whatever the
		// scopes; no ID token without openid.
		f.createClient(oauth.ClientSpec{ID: "mobile-lite", Public: true, GrantTypes: []string{oauth.GrantPassword}, Scopes: []string{"openid", "offline_access", "profile"}})
		lite := &oauth2.Config{ClientID: "mobile-lite", Scopes: []string{"offline_access", "profile"},
			Endpoint: oauth2.Endpoint{TokenURL: f.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
		ltok, err := lite.PasswordCredentialsToken(ctx, "alice", alicePass)
		if err != nil {
			t.Fatalf("password grant without refresh_token: %v", err)
		}
		if ltok.RefreshToken != "" || ltok.Extra("id_token") != nil || ltok.Extra("scope") != "offline_access profile" {
			t.Fatalf("client without refresh_token got refresh %q, id_token %v, scope %v", ltok.RefreshToken, ltok.Extra("id_token"), ltok.Extra("scope"))
		}
	})
}

// Every failure answers without telling accounts apart, goes through the
// pipeline as a failed sign-in of its client, and a request that could
// never succeed is refused before any password is checked.
func TestPasswordGrantRefusals(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true, withPasswordGrant)
		ctx := context.Background()
		alice, err := f.srv.Store().User(ctx, f.userID)
		if err != nil {
			t.Fatal(err)
		}
		// dora has alice's password and a disabled account.
		if err := f.srv.Store().CreateUser(ctx, &storage.User{ID: "u-dora", Username: "dora", PasswordHash: alice.PasswordHash, Disabled: true}); err != nil {
			t.Fatal(err)
		}

		attempts := []struct{ name, username, password string }{
			{"wrong password", "alice", "not alice's password"},
			{"unknown user", "nobody", "not alice's password"},
			{"disabled account, right password", "dora", alicePass},
		}
		var first []byte
		for _, a := range attempts {
			status, _, body := f.rawPasswordGrant(t, f.clientID, f.secret, url.Values{"username": {a.username}, "password": {a.password}, "device_id": {"dev-1"}})
			code, desc := errorOf(t, body)
			if status != http.StatusBadRequest || code != "invalid_grant" || desc != "The username or password is wrong." {
				t.Fatalf("%s: %d %s", a.name, status, body)
			}
			if first == nil {
				first = body
			} else if string(body) != string(first) {
				t.Fatalf("%s answers\n%s\nbut the first failure\n%s", a.name, body, first)
			}
		}
		// x/oauth2 sees the same error.
		if _, err := f.conf.PasswordCredentialsToken(ctx, "alice", "not alice's password"); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("x/oauth2 wrong password: %v", err)
		}
		failed := f.events(audit.TypeLoginFailed, f.clientID)
		if len(failed) != len(attempts)+1 {
			t.Fatalf("login.failed events = %+v; want one per failed attempt", failed)
		}
		// Newest first: the x/oauth2 attempt named no device.
		wantReasons := []string{authn.ReasonBadPassword, authn.ReasonDisabled, authn.ReasonUnknownUser, authn.ReasonBadPassword}
		for i, e := range failed {
			if e.Reason != wantReasons[i] || e.ClientID != f.clientID || (i > 0) != (e.Device == "dev-1") {
				t.Errorf("login.failed[%d] = %+v; want reason %s, client %s", i, e, wantReasons[i], f.clientID)
			}
		}

		before := len(f.events(audit.TypeLoginFailed, ""))
		f.createClient(oauth.ClientSpec{ID: "webonly", Secret: "webonly-secret-0123456789", GrantTypes: []string{"client_credentials"}})
		for _, tc := range []struct {
			name, clientID, secret string
			form                   url.Values
			status                 int
			code                   string
		}{
			{"client without the grant", "webonly", "webonly-secret-0123456789", url.Values{"username": {"alice"}, "password": {alicePass}}, 400, "unauthorized_client"},
			{"wrong client secret", f.clientID, "wrong-secret-0123456789", url.Values{"username": {"alice"}, "password": {alicePass}}, 401, "invalid_client"},
			{"confidential client without its secret", f.clientID, "", url.Values{"username": {"alice"}, "password": {alicePass}}, 401, "invalid_client"},
			{"no password", f.clientID, f.secret, url.Values{"username": {"alice"}}, 400, "invalid_request"},
			{"malformed device_id", f.clientID, f.secret, url.Values{"username": {"alice"}, "password": {alicePass}, "device_id": {"<script>"}}, 400, "invalid_request"},
			{"device_id too long", f.clientID, f.secret, url.Values{"username": {"alice"}, "password": {alicePass}, "device_id": {strings.Repeat("d", 129)}}, 400, "invalid_request"},
			{"scope the client lacks", f.clientID, f.secret, url.Values{"username": {"alice"}, "password": {alicePass}, "scope": {"reports"}}, 400, "invalid_scope"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, _, body := f.rawPasswordGrant(t, tc.clientID, tc.secret, tc.form)
				if code, _ := errorOf(t, body); status != tc.status || code != tc.code {
					t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
				}
			})
		}
		if after := len(f.events(audit.TypeLoginFailed, "")); after != before {
			t.Fatalf("requests refused before the password check left %d login.failed events", after-before)
		}
	})
}

// What the pipeline decides reaches the client as an answer it can act
// on: a lock and its end, a network refusal, a step that needs the
// browser, an outage. The decisions come from a sign-in step, as lockout,
// IP rules and captcha make them.
func TestPasswordGrantPipelineDecisions(t *testing.T) {
	clock := &testClock{}
	until := time.Now().Add(15 * time.Minute).UTC().Truncate(time.Second)
	type outcome struct {
		d   authn.Decision
		err error
	}
	decisions := map[string]outcome{
		"locked":       {d: authn.Denied(authn.ReasonLocked, until)},
		"locked-hard":  {d: authn.Denied(authn.ReasonLocked, time.Time{})},
		"device":       {d: authn.Denied(authn.ReasonDeviceLocked, until)},
		"ip-blocked":   {d: authn.Denied(authn.ReasonIPBlocked, until)},
		"ip-rule":      {d: authn.Denied(authn.ReasonIPRule, time.Time{})},
		"captcha":      {d: authn.Challenged(authn.ChallengeCaptcha, authn.ReasonCaptchaRequired)},
		"mfa":          {d: authn.Challenged(authn.ChallengeSecondFactor, "mfa_required")},
		"unclassified": {d: authn.Denied("password_expired", until)},
		"db-down":      {err: fmt.Errorf("count failures: %w", storage.ErrUnavailable)},
		"hash-busy":    {err: fmt.Errorf("verify: %w", hashing.ErrBusy)},
	}
	step := authn.Hook{Name: "test-decisions", Phase: authn.PhaseNetwork, Run: func(_ context.Context, c *authn.Check) (authn.Decision, error) {
		if o, ok := decisions[c.Username]; ok {
			return o.d, o.err
		}
		return authn.Proceed(), nil
	}}
	in := startWithHooks(t, storagetest.SQLiteURL(t), clock, []authn.Hook{step})
	f := fixtureOn(t, in, true, withPasswordGrant)
	stamp := until.Format(time.RFC3339)
	for _, tc := range []struct {
		username    string
		status      int
		code, desc  string
		retryAfter  string
		noLoginFail bool
	}{
		{username: "locked", status: 400, code: "invalid_grant", desc: "The account is locked until " + stamp + "."},
		{username: "locked-hard", status: 400, code: "invalid_grant", desc: "The account is locked until an administrator unlocks it."},
		{username: "device", status: 400, code: "invalid_grant", desc: "The account is locked on this device until " + stamp + "."},
		{username: "ip-blocked", status: 400, code: "invalid_grant", desc: "Too many failed sign-ins from this network; sign-in from it is blocked until " + stamp + "."},
		{username: "ip-rule", status: 400, code: "invalid_grant", desc: "Sign-in from this network is not allowed."},
		{username: "captcha", status: 400, code: "invalid_grant", desc: "Sign in through the browser to continue."},
		{username: "mfa", status: 400, code: "invalid_grant", desc: "Sign in through the browser to continue."},
		{username: "unclassified", status: 400, code: "invalid_grant", desc: "The username or password is wrong."},
		{username: "db-down", status: 503, code: "temporarily_unavailable", retryAfter: "5", noLoginFail: true},
		{username: "hash-busy", status: 503, code: "temporarily_unavailable", retryAfter: "1", noLoginFail: true},
	} {
		t.Run(tc.username, func(t *testing.T) {
			status, retry, body := f.rawPasswordGrant(t, f.clientID, f.secret, url.Values{"username": {tc.username}, "password": {"whatever it is"}})
			code, desc := errorOf(t, body)
			if status != tc.status || code != tc.code || (tc.desc != "" && desc != tc.desc) || retry != tc.retryAfter {
				t.Fatalf("got %d %s (Retry-After %q), want %d %s %q (Retry-After %q)", status, body, retry, tc.status, tc.code, tc.desc, tc.retryAfter)
			}
			failed := f.events(audit.TypeLoginFailed, f.clientID)
			recorded := len(failed) > 0 && failed[0].Details["username"] == tc.username
			if recorded == tc.noLoginFail {
				t.Fatalf("login.failed recorded for %s: %v, want %v (newest %+v)", tc.username, recorded, !tc.noLoginFail, failed)
			}
		})
	}
}

// One pipeline, no side door: the password grant's failures advance the
// same counters as the login form's, its device_id is the device the
// device lock keys on, and a lock earned anywhere holds everywhere.
func TestPasswordGrantCountsLikeTheLoginForm(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{}, func(cfg *config.Config) {
			cfg.Lockout.MaxFailures = 5
			cfg.Lockout.Window = policies.Duration(10 * time.Minute)
			cfg.Lockout.Action = policies.LockoutActionLock
			cfg.Lockout.Duration = policies.Duration(15 * time.Minute)
			cfg.Lockout.Device = policies.DeviceLockout{MaxFailures: 3, ResetAfter: policies.Duration(15 * time.Minute), LockFor: policies.Duration(15 * time.Minute)}
			cfg.Lockout.IP.MaxFailures = 0 // every attempt here comes from 127.0.0.1
		})
		f := fixtureOn(t, in, true, withPasswordGrant)
		const bobPass = "bob's long password"
		f.createUser(authn.UserSpec{Username: "bob", Password: bobPass})
		grant := func(username, password, device string) (int, string) {
			t.Helper()
			status, _, body := f.rawPasswordGrant(t, f.clientID, f.secret, url.Values{"username": {username}, "password": {password}, "device_id": {device}})
			if status == http.StatusOK {
				return status, ""
			}
			_, desc := errorOf(t, body)
			return status, desc
		}
		lockedUntil := func(desc, prefix string) time.Time {
			t.Helper()
			raw, ok := strings.CutPrefix(desc, prefix+" until ")
			until, err := time.Parse(time.RFC3339, strings.TrimSuffix(raw, "."))
			if !ok || err != nil || until.Location() != time.UTC {
				t.Fatalf("description %q does not say %q until an RFC 3339 UTC time", desc, prefix)
			}
			if d := time.Until(until); d < 14*time.Minute || d > 16*time.Minute {
				t.Fatalf("locked until %v, %v from now; want 15 minutes", until, d)
			}
			return until
		}

		// The device lock: the third wrong password from one phone locks
		// that phone for bob, and its answer says so; another phone
		// still signs in.
		for i := 1; i <= 3; i++ {
			status, desc := grant("bob", "wrong password", "phone-a")
			if i < 3 && (status != 400 || desc != "The username or password is wrong.") {
				t.Fatalf("wrong password %d: %d %q", i, status, desc)
			}
			if i == 3 {
				lockedUntil(desc, "The account is locked on this device")
			}
		}
		if _, desc := grant("bob", bobPass, "phone-a"); !strings.HasPrefix(desc, "The account is locked on this device until ") {
			t.Fatalf("right password from the locked phone: %q", desc)
		}
		if status, desc := grant("bob", bobPass, "phone-b"); status != http.StatusOK {
			t.Fatalf("right password from another phone: %d %q", status, desc)
		}

		// The account lock: failures through the form and the grant add
		// up; the fifth, whichever way it comes, locks the account.
		b := f.browser()
		authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		for range 2 {
			if _, page := b.postLogin(authURL, "alice", "wrong password"); !strings.Contains(page, "Invalid username or password.") {
				t.Fatalf("wrong password on the form did not fail as such:\n%s", page)
			}
		}
		for _, device := range []string{"phone-x", "phone-x"} {
			if _, desc := grant("alice", "wrong password", device); desc != "The username or password is wrong." {
				t.Fatalf("wrong password %s: %q", device, desc)
			}
		}
		_, desc := grant("alice", "wrong password", "phone-y")
		lockedUntil(desc, "The account is locked")
		if _, desc := grant("alice", alicePass, "phone-z"); !strings.HasPrefix(desc, "The account is locked until ") {
			t.Fatalf("right password on a locked account: %q", desc)
		}
		if _, page := b.postLogin(authURL, "alice", alicePass); !strings.Contains(page, "locked") {
			t.Fatalf("the form signs in to an account the grant locked:\n%s", page)
		}
		var devices []string
		for _, e := range f.events(audit.TypeLoginFailed, f.clientID) {
			if e.UserID == f.userID {
				devices = append(devices, e.Device)
			}
		}
		if len(devices) != 7 || devices[1] != "phone-z" || devices[2] != "phone-y" || devices[4] != "phone-x" || devices[5] == "" || devices[5] != devices[6] {
			t.Fatalf("alice's login.failed devices (newest first) = %q; want the form's, phone-x twice, phone-y, phone-z and the form's", devices)
		}
	})
}
