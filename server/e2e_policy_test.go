package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// adminAPI calls the admin REST API as an operator's tool would: with an
// access token from the client credentials grant of a client holding the
// "admin" scope. It gets a fresh token for every call, because the policy
// changes and revoking key rotations under test end earlier ones.
type adminAPI struct {
	t    testing.TB
	base string
	cc   clientcredentials.Config
}

const adminClientID = "ops-console"

// createAdminClient registers the operator's client in in's database and
// returns its secret.
func (in *instance) createAdminClient() string {
	in.t.Helper()
	return in.createClient(oauth.ClientSpec{
		ID: adminClientID, Name: "Ops console", GrantTypes: []string{"client_credentials"},
		Scopes: []string{"admin"}, SkipConsent: true,
	})
}

// adminAPI talks to in with the operator's client, registered (perhaps
// through another instance) with secret.
func (in *instance) adminAPI(secret string) *adminAPI {
	return &adminAPI{t: in.t, base: in.issuer, cc: clientcredentials.Config{
		ClientID: adminClientID, ClientSecret: secret, TokenURL: in.issuer + "/oauth2/token", Scopes: []string{"admin"},
	}}
}

func (f *fixture) admin() *adminAPI { return f.adminAPI(f.createAdminClient()) }

func (a *adminAPI) do(method, path, contentType, body string) (int, []byte) {
	a.t.Helper()
	tok, err := a.cc.Token(context.Background())
	if err != nil {
		a.t.Fatalf("admin token: %v", err)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// patch sends an RFC 7396 merge patch and demands 200.
func (a *adminAPI) patch(path, patch string) []byte {
	a.t.Helper()
	status, body := a.do(http.MethodPatch, path, "application/merge-patch+json", patch)
	if status != http.StatusOK {
		a.t.Fatalf("PATCH %s %s: %d %s", path, patch, status, body)
	}
	return body
}

func (a *adminAPI) get(path string) []byte {
	a.t.Helper()
	status, body := a.do(http.MethodGet, path, "", "")
	if status != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	return body
}

// policyView is the body of GET and PATCH on /admin/policies and
// /admin/clients/{id}/policies.
type policyView struct {
	Customized         bool            `json:"customized"`
	CustomizedSections []string        `json:"customized_sections"`
	Policy             policies.Policy `json:"policy"`
	TokensRevoked      int64           `json:"tokens_revoked"`
}

func decodeView(t testing.TB, body []byte) policyView {
	t.Helper()
	var v policyView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode policy view %s: %v", body, err)
	}
	return v
}

// auditEvents lists GET /admin/audit with the query q.
func (a *adminAPI) auditEvents(q url.Values) []map[string]any {
	a.t.Helper()
	var page struct {
		Items []map[string]any `json:"items"`
	}
	body := a.get("/admin/audit?" + q.Encode())
	if err := json.Unmarshal(body, &page); err != nil {
		a.t.Fatalf("decode audit page %s: %v", body, err)
	}
	return page.Items
}

// login signs username in with a browser through the authorization code
// flow with PKCE and exchanges the code with x/oauth2.
func (f *fixture) login(b *browser, username, password string) *oauth2.Token {
	f.t.Helper()
	verifier := oauth2.GenerateVerifier()
	state := "state-" + oauth2.GenerateVerifier()[:12]
	loc := b.signIn(f.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-12345678")), username, password, "allow")
	if e := loc.Query().Get("error"); e != "" || loc.Query().Get("state") != state {
		f.t.Fatalf("authorize: redirected to %s", loc)
	}
	tok, err := f.conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		f.t.Fatalf("exchange: %v", err)
	}
	return tok
}

// refresh uses x/oauth2's token source, as an application would.
func (f *fixture) refresh(refreshToken string) (*oauth2.Token, error) {
	return f.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// expiresIn is the expires_in of a token response, in seconds.
func expiresIn(t testing.TB, tok *oauth2.Token) int64 {
	t.Helper()
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		return int64(v)
	case json.Number:
		n, _ := v.Int64()
		return n
	}
	t.Fatalf("token response has no numeric expires_in: %v", tok.Extra("expires_in"))
	return 0
}

// expOf is the introspection "exp" of an active token.
func (f *fixture) expOf(token string) time.Time {
	f.t.Helper()
	in := f.introspect(token)
	exp, ok := in["exp"].(float64)
	if !active(in) || !ok {
		f.t.Fatalf("introspection = %v, want an active token with exp", in)
	}
	return time.Unix(int64(exp), 0)
}

// near reports whether got is want give or take two seconds: exp has whole
// seconds, and the clock runs on while a request is answered.
func near(got, want time.Time) bool { return math.Abs(got.Sub(want).Seconds()) <= 2 }

// background runs the instance's periodic jobs (policy and key reloads)
// as Serve does, until the test ends.
func (in *instance) background() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.srv.Background(ctx) }()
	in.t.Cleanup(func() { cancel(); <-done })
}

// jwks returns the kids the instance publishes.
func (in *instance) jwks() []string {
	in.t.Helper()
	resp, err := http.Get(in.issuer + "/.well-known/jwks.json")
	if err != nil {
		in.t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(readBody(in.t, resp)), &set); err != nil {
		in.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func kidOf(t testing.TB, jws string) string {
	t.Helper()
	head, _, _ := strings.Cut(jws, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	return h.Kid
}

func idTokenOf(t testing.TB, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("token response has no id_token")
	}
	return raw
}

func TestPolicyAccessTokenLifetime(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		adm := f.admin()
		view := decodeView(t, adm.patch("/admin/policies", `{"token":{"access_token_ttl":"5m","id_token_ttl":"10m"}}`))
		if view.Policy.Token.AccessTokenTTL.D() != 5*time.Minute {
			t.Fatalf("PATCH answered access_token_ttl %s, want 5m", view.Policy.Token.AccessTokenTTL)
		}

		issued := f.clock.Now()
		tok := f.login(f.browser(), "alice", alicePass)
		if got := expiresIn(t, tok); got < 298 || got > 300 {
			t.Errorf("expires_in = %d, want 300", got)
		}
		if exp := f.expOf(tok.AccessToken); !near(exp, issued.Add(5*time.Minute)) {
			t.Errorf("introspection exp = %v, want issue time + 5m = %v", exp, issued.Add(5*time.Minute))
		}
		provider, err := oidc.NewProvider(context.Background(), f.issuer)
		if err != nil {
			t.Fatal(err)
		}
		// The library checks expiry against the wall clock, which is where
		// the injected clock still is.
		idt, err := provider.Verifier(&oidc.Config{ClientID: f.clientID}).Verify(context.Background(), idTokenOf(t, tok))
		if err != nil {
			t.Fatalf("ID token: %v", err)
		}
		if !near(idt.Expiry, issued.Add(10*time.Minute)) {
			t.Errorf("ID token exp = %v, want issue time + 10m", idt.Expiry)
		}

		f.clock.Advance(5*time.Minute - time.Second)
		if !active(f.introspect(tok.AccessToken)) {
			t.Fatal("access token inactive at 4m59s under a 5m policy")
		}
		f.clock.Advance(2 * time.Second)
		if active(f.introspect(tok.AccessToken)) {
			t.Fatal("access token still active at 5m01s under a 5m policy")
		}
		// The refresh token (168h by default) outlives it.
		if _, err := f.refresh(tok.RefreshToken); err != nil {
			t.Fatalf("refresh after the access token expired: %v", err)
		}
	})
}

func TestPolicyRefreshWindow(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		f.admin().patch("/admin/policies", `{"token":{"access_token_ttl":"5m","refresh_token_ttl":"0s","refresh_window":"30m"}}`)
		b := f.browser()

		// The refresh token lives until the access token's expiry plus the
		// window: 35 minutes. (Introspection cannot show it; see
		// TestIntrospectedRefreshTokenExpiry.)
		tok := f.login(b, "alice", alicePass)
		f.clock.Advance(35*time.Minute - time.Second)
		refreshed := f.clock.Now()
		tok2, err := f.refresh(tok.RefreshToken)
		if err != nil {
			t.Fatalf("refresh 29m59s after the access token expired, inside a 30m window: %v", err)
		}
		if exp := f.expOf(tok2.AccessToken); !near(exp, refreshed.Add(5*time.Minute)) {
			t.Errorf("refreshed access token exp = %v, want refresh + 5m", exp)
		}
		// A new window opens with each refresh.
		f.clock.Advance(35*time.Minute + time.Second)
		if _, err := f.refresh(tok2.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("refresh 30m01s after the access token expired: err = %v, want invalid_grant", err)
		}

		// Same from a fresh login: just past the window fails.
		tok = f.login(b, "alice", alicePass)
		f.clock.Advance(35*time.Minute + time.Second)
		if _, err := f.refresh(tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("refresh outside the window: err = %v, want invalid_grant", err)
		}
	})
}

func TestPolicyAbsoluteTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		f.admin().patch("/admin/policies", `{"token":{"access_token_ttl":"15m"},"session":{"absolute_timeout":"1h"}}`)

		b := f.browser()
		tok := f.login(b, "alice", alicePass)
		provider, err := oidc.NewProvider(context.Background(), f.issuer)
		if err != nil {
			t.Fatal(err)
		}
		idt, err := provider.Verifier(&oidc.Config{ClientID: f.clientID}).Verify(context.Background(), idTokenOf(t, tok))
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			AuthTime int64 `json:"auth_time"`
		}
		if err := idt.Claims(&claims); err != nil || claims.AuthTime == 0 {
			t.Fatalf("ID token auth_time: %v %v", claims.AuthTime, err)
		}
		end := time.Unix(claims.AuthTime, 0).Add(time.Hour)

		// Refreshes along the way never reach past login + 1h.
		for _, step := range []time.Duration{14 * time.Minute, 14 * time.Minute, 14 * time.Minute, 8 * time.Minute} {
			f.clock.Advance(step)
			next, err := f.refresh(tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh within the absolute timeout: %v", err)
			}
			tok = next
		}
		// 50 minutes in: 15m would reach 65m, so the access token is cut
		// to the session's end.
		if exp := f.expOf(tok.AccessToken); !near(exp, end) {
			t.Errorf("access token from a late refresh: exp = %v, want login + 1h = %v", exp, end)
		}
		// expires_in is not checked here: fosite computes it against the
		// wall clock, which the injected clock is now 50 minutes ahead of,
		// so it reads 60m instead of 10m. With the real clock in
		// production the two agree.
		if raw, _ := tok.Extra("id_token").(string); raw != "" {
			// Signature only: the exp claim is judged by the injected clock,
			// which is ahead of the library's.
			keys := oidc.NewRemoteKeySet(context.Background(), f.issuer+"/.well-known/jwks.json")
			payload, err := keys.VerifySignature(context.Background(), raw)
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				Exp int64 `json:"exp"`
			}
			_ = json.Unmarshal(payload, &c)
			if got := time.Unix(c.Exp, 0); !near(got, end) {
				t.Errorf("ID token from a late refresh: exp = %v, want login + 1h = %v", got, end)
			}
		}

		f.clock.Advance(end.Sub(f.clock.Now()) + time.Second)
		if active(f.introspect(tok.AccessToken)) {
			t.Error("access token active after login + absolute timeout")
		}
		if _, err := f.refresh(tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("refresh after the absolute timeout: err = %v, want invalid_grant", err)
		}
		// The browser's login ends with it.
		if resp, _ := b.get(f.conf.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); resp.Request.URL.Path != "/login" {
			t.Errorf("after the absolute timeout, authorize landed on %s, want /login", resp.Request.URL.Path)
		}
	})
}

func TestPolicyIdleTimeout(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.admin().patch("/admin/policies", `{"token":{"access_token_ttl":"10m"},"session":{"idle_timeout":"30m"}}`)
	b := f.browser()
	signedIn := func() bool {
		resp, _ := b.get(f.conf.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		return resp.Request.URL.Path != "/login"
	}
	tok := f.login(b, "alice", alicePass)
	// Each use inside the idle timeout keeps the family (and the browser
	// session) going, well past 30 minutes in all.
	for i := range 2 {
		f.clock.Advance(29 * time.Minute)
		next, err := f.refresh(tok.RefreshToken)
		if err != nil {
			t.Fatalf("refresh %d after 29m idle: %v", i+1, err)
		}
		tok = next
		if !signedIn() {
			t.Fatalf("browser signed out after 29m idle (round %d)", i+1)
		}
	}
	f.clock.Advance(30*time.Minute + time.Second)
	if _, err := f.refresh(tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("refresh after 30m01s idle: err = %v, want invalid_grant", err)
	}
	if signedIn() {
		t.Error("browser still signed in after 30m01s idle")
	}
}

func TestPolicyAdministratorLifetimes(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		f.createUser(authn.UserSpec{Username: "root", Password: "root's long password", Admin: true})
		f.admin().patch("/admin/policies", `{"token":{"access_token_ttl":"15m","admin":{"access_token_ttl":"5m","refresh_token_ttl":"1h"}}}`)

		issued := f.clock.Now()
		user := f.login(f.browser(), "alice", alicePass)
		root := f.login(f.browser(), "root", "root's long password")
		for _, tc := range []struct {
			name   string
			tok    *oauth2.Token
			access time.Duration
		}{
			{"user", user, 15 * time.Minute},
			{"administrator", root, 5 * time.Minute},
		} {
			if got := expiresIn(t, tc.tok); math.Abs(float64(got)-tc.access.Seconds()) > 2 {
				t.Errorf("%s: expires_in = %d, want %v", tc.name, got, tc.access.Seconds())
			}
			if exp := f.expOf(tc.tok.AccessToken); !near(exp, issued.Add(tc.access)) {
				t.Errorf("%s: access exp = %v, want issue + %s", tc.name, exp, tc.access)
			}
		}
		f.clock.Advance(5*time.Minute + time.Second)
		if active(f.introspect(root.AccessToken)) {
			t.Error("administrator's access token active past token.admin.access_token_ttl")
		}
		if !active(f.introspect(user.AccessToken)) {
			t.Error("user's access token expired with the administrators' lifetime")
		}
		// token.admin.refresh_token_ttl: the administrator's refresh token
		// ends after 1h, the user's does not.
		f.clock.Advance(time.Hour - 5*time.Minute)
		if _, err := f.refresh(root.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Errorf("administrator's refresh token past token.admin.refresh_token_ttl: err = %v, want invalid_grant", err)
		}
		if _, err := f.refresh(user.RefreshToken); err != nil {
			t.Errorf("user's refresh token after 1h: %v", err)
		}
	})
}

// TestIntrospectedRefreshTokenExpiry: RFC 7662 section 2.2 makes "exp" the
// expiry of the token introspected.
func TestIntrospectedRefreshTokenExpiry(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.admin().patch("/admin/policies", `{"token":{"access_token_ttl":"5m","refresh_token_ttl":"1h"}}`)
	issued := f.clock.Now()
	tok := f.login(f.browser(), "alice", alicePass)
	if exp := f.expOf(tok.RefreshToken); !near(exp, issued.Add(time.Hour)) {
		t.Errorf("introspected refresh token: exp = %v, want issue + refresh_token_ttl = %v", exp, issued.Add(time.Hour))
	}
}

// TestReuseDetectionIsAudited complements TestRefreshReuseRevokesFamily:
// the reuse shows in the audit trail the admin API serves.
func TestReuseDetectionIsAudited(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	adm := f.admin()
	tok := f.login(f.browser(), "alice", alicePass)
	if _, err := f.refresh(tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.refresh(tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("reuse: err = %v, want invalid_grant", err)
	}
	events := adm.auditEvents(url.Values{"type": {"token.reuse_detected"}, "client_id": {f.clientID}})
	if len(events) != 1 {
		t.Fatalf("GET /admin/audit?type=token.reuse_detected = %v, want one event", events)
	}
	if e := events[0]; e["outcome"] != "failure" || e["reason"] != "refresh_token_replayed" {
		t.Errorf("reuse event = %v, want outcome failure, reason refresh_token_replayed", e)
	}
}

func TestPolicyPerApplication(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		// webapp reads the expiry of other's tokens too: it needs the
		// introspect permission of a resource server.
		f := newFixture(t, dbURL, true, func(s *oauth.ClientSpec) { s.Introspect = true })
		otherSecret := f.createClient(oauth.ClientSpec{ID: "other", GrantTypes: []string{"client_credentials"}, Scopes: []string{"profile"}, SkipConsent: true})
		adm := f.admin()
		ccToken := func(id, secret string) *oauth2.Token {
			t.Helper()
			cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: f.conf.Endpoint.TokenURL}
			tok, err := cc.Token(context.Background())
			if err != nil {
				t.Fatalf("client credentials for %s: %v", id, err)
			}
			return tok
		}
		steps := []struct {
			name             string
			path, patch      string
			webapp, other    time.Duration // access lifetimes then in force
			webappCustomized bool
		}{
			{"global 10m", "/admin/policies", `{"token":{"access_token_ttl":"10m"}}`, 10 * time.Minute, 10 * time.Minute, false},
			{"customize the app", "/admin/clients/webapp/policies", `{"customized":true}`, 10 * time.Minute, 10 * time.Minute, true},
			{"global 5m: the app keeps its snapshot", "/admin/policies", `{"token":{"access_token_ttl":"5m"}}`, 10 * time.Minute, 5 * time.Minute, true},
			{"the app's own rule", "/admin/clients/webapp/policies", `{"token":{"access_token_ttl":"20m"}}`, 20 * time.Minute, 5 * time.Minute, true},
			{"un-customize: the global rule again", "/admin/clients/webapp/policies", `{"customized":false}`, 5 * time.Minute, 5 * time.Minute, false},
			{"global 7m reaches the app", "/admin/policies", `{"token":{"access_token_ttl":"7m"}}`, 7 * time.Minute, 7 * time.Minute, false},
		}
		for _, st := range steps {
			adm.patch(st.path, st.patch)
			view := decodeView(t, adm.get("/admin/clients/webapp/policies"))
			if view.Customized != st.webappCustomized || view.Policy.Token.AccessTokenTTL.D() != st.webapp {
				t.Errorf("%s: GET client policies = customized %v access %s, want %v %s", st.name, view.Customized, view.Policy.Token.AccessTokenTTL, st.webappCustomized, st.webapp)
			}
			for _, c := range []struct {
				id, secret string
				want       time.Duration
			}{{f.clientID, f.secret, st.webapp}, {"other", otherSecret, st.other}} {
				issued := f.clock.Now()
				tok := ccToken(c.id, c.secret)
				if got := expiresIn(t, tok); math.Abs(float64(got)-c.want.Seconds()) > 2 {
					t.Errorf("%s: %s's token expires_in = %d, want %v", st.name, c.id, got, c.want.Seconds())
				}
				if exp := f.expOf(tok.AccessToken); !near(exp, issued.Add(c.want)) {
					t.Errorf("%s: %s's token introspects exp %v, want issue + %s", st.name, c.id, exp, c.want)
				}
			}
		}
		// Tokens from a browser sign-in follow the same rules.
		adm.patch("/admin/clients/webapp/policies", `{"customized":true,"token":{"access_token_ttl":"12m"}}`)
		if got := expiresIn(t, f.login(f.browser(), "alice", alicePass)); got < 718 || got > 720 {
			t.Errorf("authorization code grant for the customized app: expires_in = %d, want 720", got)
		}
	})
}

// TestPolicyPerSectionCustomization: an application that customizes its
// token rules only keeps them through a global token change, and a later
// global session change reaches it, on every entry point that asks.
func TestPolicyPerSectionCustomization(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		otherSecret := f.createClient(oauth.ClientSpec{ID: "other", GrantTypes: []string{"client_credentials"}, Scopes: []string{"profile"}, SkipConsent: true})
		adm := f.admin()
		const app = "/admin/clients/webapp/policies"
		lifetime := func(id, secret string) time.Duration {
			t.Helper()
			cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: f.conf.Endpoint.TokenURL}
			tok, err := cc.Token(context.Background())
			if err != nil {
				t.Fatalf("client credentials for %s: %v", id, err)
			}
			return time.Duration(expiresIn(t, tok)) * time.Second
		}
		about := func(got, want time.Duration) bool { return got > want-3*time.Second && got <= want }

		// Changing the token rules of an application that customizes
		// nothing customizes token only.
		view := decodeView(t, adm.patch(app, `{"token":{"access_token_ttl":"12m"}}`))
		if !view.Customized || !slices.Equal(view.CustomizedSections, []string{"token"}) {
			t.Fatalf("PATCH token rules: customized %v sections %q, want true [token]", view.Customized, view.CustomizedSections)
		}

		adm.patch("/admin/policies", `{"token":{"access_token_ttl":"5m"},"session":{"max_concurrent":1,"on_limit":"evict_oldest"}}`)
		view = decodeView(t, adm.get(app))
		if !view.Customized || !slices.Equal(view.CustomizedSections, []string{"token"}) {
			t.Errorf("GET: customized %v sections %q, want true [token]", view.Customized, view.CustomizedSections)
		}
		if view.Policy.Token.AccessTokenTTL.D() != 12*time.Minute || view.Policy.Session.MaxConcurrent != 1 || view.Policy.Session.OnLimit != policies.OnLimitEvictOldest {
			t.Errorf("GET: access %s, max_concurrent %d %s; want the app's 12m and the global 1 evict_oldest",
				view.Policy.Token.AccessTokenTTL, view.Policy.Session.MaxConcurrent, view.Policy.Session.OnLimit)
		}

		// The global token change does not reach the application; it does
		// reach another one.
		if got := lifetime(f.clientID, f.secret); !about(got, 12*time.Minute) {
			t.Errorf("customized app's access lifetime %s after a global token change, want its own 12m", got)
		}
		if got := lifetime("other", otherSecret); !about(got, 5*time.Minute) {
			t.Errorf("other app's access lifetime %s, want the global 5m", got)
		}
		// The global session change does: a second sign-in through the
		// application ends the first.
		signedIn := func(b *browser) bool {
			t.Helper()
			resp, _ := b.get(f.conf.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			return resp.Request.URL.Path != "/login"
		}
		first, second := f.browser(), f.browser()
		tok := f.login(first, "alice", alicePass)
		if got := expiresIn(t, tok); got < 718 || got > 720 {
			t.Errorf("authorization code grant for the app: expires_in = %d, want its own 720", got)
		}
		f.login(second, "alice", alicePass)
		if signedIn(first) || !signedIn(second) {
			t.Errorf("after a second sign-in under the global max_concurrent 1: first signed in %v, second %v; want false true", signedIn(first), signedIn(second))
		}

		// Returning token to the global rules (keeping the list otherwise
		// empty) makes the global token lifetime reach the app too.
		view = decodeView(t, adm.patch(app, `{"customized_sections":[]}`))
		if view.Customized || len(view.CustomizedSections) != 0 || view.CustomizedSections == nil {
			t.Errorf("customized_sections []: customized %v sections %v, want false []", view.Customized, view.CustomizedSections)
		}
		if got := lifetime(f.clientID, f.secret); !about(got, 5*time.Minute) {
			t.Errorf("app's access lifetime %s after un-customizing, want the global 5m", got)
		}
	})
}

func TestRevokeOnChangeThroughTheAPI(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	adm := f.admin()
	if v := decodeView(t, adm.patch("/admin/policies", `{"token":{"revoke_on_change":true}}`)); v.TokensRevoked != 0 {
		t.Errorf("switching revoke_on_change on revoked %d tokens", v.TokensRevoked)
	}
	tok := f.login(f.browser(), "alice", alicePass)
	if v := decodeView(t, adm.patch("/admin/policies", `{"session":{"max_concurrent":5}}`)); v.TokensRevoked != 0 || !active(f.introspect(tok.AccessToken)) {
		t.Errorf("a change of no lifetime revoked %d tokens", v.TokensRevoked)
	}
	// The user's access and refresh token, and the operator's own.
	if v := decodeView(t, adm.patch("/admin/policies", `{"token":{"access_token_ttl":"20m"}}`)); v.TokensRevoked < 2 {
		t.Errorf("lifetime change under revoke_on_change: tokens_revoked = %d, want at least the user's 2", v.TokensRevoked)
	}
	if active(f.introspect(tok.AccessToken)) {
		t.Error("access token issued under the old rules still active")
	}
	if _, err := f.refresh(tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh token issued under the old rules: err = %v, want invalid_grant", err)
	}
	if got := expiresIn(t, f.login(f.browser(), "alice", alicePass)); got < 1198 || got > 1200 {
		t.Errorf("new token under the new rules: expires_in = %d, want 1200", got)
	}
}

// TestPolicyPropagation runs two instances on one PostgreSQL database: a
// change made through either is in force on the other within 2 seconds.
func TestPolicyPropagation(t *testing.T) {
	dbURL := storagetest.RequirePostgres(t)
	a := newFixture(t, dbURL, true)
	b := start(t, dbURL, &testClock{})
	a.background()
	b.background()
	secret := a.createAdminClient()
	admA, admB := a.adminAPI(secret), b.adminAPI(secret)
	ccB := clientcredentials.Config{ClientID: a.clientID, ClientSecret: a.secret, TokenURL: b.issuer + "/oauth2/token"}
	ccA := ccB
	ccA.TokenURL = a.issuer + "/oauth2/token"
	lifetime := func(cc clientcredentials.Config) time.Duration {
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("client credentials: %v", err)
		}
		return time.Duration(expiresIn(t, tok)) * time.Second
	}
	// within polls until check holds, for at most 2 seconds, and returns how
	// long it took.
	within := func(what string, check func() bool) time.Duration {
		t.Helper()
		began := time.Now()
		for !check() {
			if time.Since(began) > 2*time.Second {
				t.Fatalf("%s: not in force on the other instance after 2s", what)
			}
			time.Sleep(20 * time.Millisecond) // polling interval, not a wait for a result
		}
		return time.Since(began)
	}
	about := func(got, want time.Duration) bool { return got > want-2*time.Second && got <= want }

	if got := lifetime(ccB); !about(got, 15*time.Minute) {
		t.Fatalf("B before any change: access lifetime %s, want the default 15m", got)
	}
	admA.patch("/admin/policies", `{"token":{"access_token_ttl":"7m"}}`)
	d := within("global PATCH through A, tokens issued by B", func() bool { return about(lifetime(ccB), 7*time.Minute) })
	t.Logf("global policy change through instance A in force on instance B (tokens) after %s", d)
	want := admA.get("/admin/policies")
	d = within("global PATCH through A, GET /admin/policies on B", func() bool { return bytes.Equal(admB.get("/admin/policies"), want) })
	t.Logf("GET /admin/policies on B byte-identical to A's %s after the token check", d)

	admB.patch("/admin/clients/webapp/policies", `{"customized":true,"token":{"access_token_ttl":"9m"}}`)
	d = within("client PATCH through B, tokens issued by A", func() bool { return about(lifetime(ccA), 9*time.Minute) })
	t.Logf("application policy change through instance B in force on instance A after %s", d)

	admA.patch("/admin/clients/webapp/policies", `{"customized":false}`)
	d = within("un-customize through A, tokens issued by B", func() bool { return about(lifetime(ccB), 7*time.Minute) })
	t.Logf("un-customization through instance A in force on instance B after %s", d)

	// Key rotations reach the other instance's JWKS the same way.
	oldKids := b.jwks()
	status, body := admA.do(http.MethodPost, "/admin/keys/rotate", "application/json", `{"revoke_existing":true}`)
	var rotated struct {
		KID string `json:"kid"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &rotated) != nil {
		t.Fatalf("rotate through A: %d %s", status, body)
	}
	d = within("revoking rotation through A, JWKS of B", func() bool { return slices.Equal(b.jwks(), []string{rotated.KID}) })
	t.Logf("revoking key rotation through instance A published alone by instance B after %s (was %v)", d, oldKids)
}

func TestKeyRotation(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		adm := f.admin()
		ctx := context.Background()
		b := f.browser()
		verify := func(raw string) error {
			// A fresh provider fetches the JWKS as it is now.
			p, err := oidc.NewProvider(ctx, f.issuer)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Verifier(&oidc.Config{ClientID: f.clientID}).Verify(ctx, raw)
			return err
		}
		rotate := func(revoke bool) string {
			t.Helper()
			body := `{"revoke_existing":false}`
			if revoke {
				body = `{"revoke_existing":true}`
			}
			status, resp := adm.do(http.MethodPost, "/admin/keys/rotate", "application/json", body)
			var out struct {
				KID string `json:"kid"`
			}
			if status != http.StatusOK || json.Unmarshal(resp, &out) != nil || out.KID == "" {
				t.Fatalf("POST /admin/keys/rotate %s: %d %s", body, status, resp)
			}
			return out.KID
		}

		tok1 := f.login(b, "alice", alicePass)
		id1 := idTokenOf(t, tok1)
		kid1 := kidOf(t, id1)
		if kids := f.jwks(); !slices.Equal(kids, []string{kid1}) {
			t.Fatalf("JWKS = %v, want [%s]", kids, kid1)
		}

		// A plain rotation: the old key stays published, so what it signed
		// still verifies; tokens stay valid; new ones use the new key.
		kid2 := rotate(false)
		if kids := f.jwks(); !slices.Contains(kids, kid1) || !slices.Contains(kids, kid2) {
			t.Fatalf("JWKS after a plain rotation = %v, want %s and %s", kids, kid1, kid2)
		}
		if err := verify(id1); err != nil {
			t.Fatalf("ID token signed before a plain rotation does not verify: %v", err)
		}
		if !active(f.introspect(tok1.AccessToken)) {
			t.Fatal("access token inactive after a plain rotation")
		}
		tok2 := f.login(b, "alice", alicePass)
		id2 := idTokenOf(t, tok2)
		if got := kidOf(t, id2); got != kid2 {
			t.Fatalf("ID token after rotation signed by %s, want the new key %s", got, kid2)
		}
		if err := verify(id2); err != nil {
			t.Fatalf("ID token signed by the new key: %v", err)
		}

		// A revoking rotation: every earlier token is dead and the old keys
		// leave the JWKS at once.
		kid3 := rotate(true)
		for name, tk := range map[string]string{"access 1": tok1.AccessToken, "access 2": tok2.AccessToken, "refresh 2": tok2.RefreshToken} {
			if active(f.introspect(tk)) {
				t.Errorf("%s still active after a revoking rotation", name)
			}
		}
		if _, err := f.refresh(tok2.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Errorf("refresh after a revoking rotation: err = %v, want invalid_grant", err)
		}
		if kids := f.jwks(); !slices.Equal(kids, []string{kid3}) {
			t.Errorf("JWKS after a revoking rotation = %v, want only [%s]", kids, kid3)
		}
		for name, raw := range map[string]string{"before the plain rotation": id1, "by the replaced key": id2} {
			if err := verify(raw); err == nil {
				t.Errorf("ID token signed %s still verifies after a revoking rotation", name)
			}
		}
		tok3 := f.login(b, "alice", alicePass)
		if err := verify(idTokenOf(t, tok3)); err != nil || !active(f.introspect(tok3.AccessToken)) {
			t.Fatalf("tokens issued after a revoking rotation: verify %v, active %v", err, active(f.introspect(tok3.AccessToken)))
		}

		// A retired key leaves the JWKS once nothing it signed can be valid:
		// the longest signed lifetime (the ID token's 1h) after retirement.
		kid4 := rotate(false)
		var since time.Duration
		for _, tc := range []struct {
			advance time.Duration
			want    []string
		}{
			{59 * time.Minute, []string{kid3, kid4}},
			{2 * time.Minute, []string{kid4}},
		} {
			f.clock.Advance(tc.advance)
			since += tc.advance
			// The reload Background runs every second, done here at once.
			if err := f.srv.Keys().Reload(ctx); err != nil {
				t.Fatal(err)
			}
			kids := f.jwks()
			slices.Sort(kids)
			slices.Sort(tc.want)
			if !slices.Equal(kids, tc.want) {
				t.Errorf("JWKS %s after the retirement of %s = %v, want %v", since, kid3, kids, tc.want)
			}
		}

		events := adm.auditEvents(url.Values{"type": {"key.rotated"}})
		var reasons []string
		for _, e := range events {
			if e["actor"] == adminClientID {
				reasons = append(reasons, e["reason"].(string))
			}
		}
		if want := []string{"rotate", "revoke_existing", "rotate"}; !slices.Equal(reasons, want) {
			t.Errorf("key.rotated events by the operator, newest first = %v, want %v", reasons, want)
		}
	})
}

// TestRetiredKeyOutlivesWhatItSigned: a retired key must stay published
// until nothing it signed can still be valid, even when the policy is
// shortened after the rotation.
func TestRetiredKeyOutlivesWhatItSigned(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	adm := f.admin()
	ctx := context.Background()
	tok := f.login(f.browser(), "alice", alicePass) // ID token valid for the default 1h
	raw := idTokenOf(t, tok)
	kid := kidOf(t, raw)
	if status, body := adm.do(http.MethodPost, "/admin/keys/rotate", "application/json", `{"revoke_existing":false}`); status != http.StatusOK {
		t.Fatalf("rotate: %d %s", status, body)
	}
	// Shorter lifetimes from now on: the longest signed lifetime under the
	// new policy is 15m, but the ID token signed before is valid for 1h.
	adm.patch("/admin/policies", `{"token":{"id_token_ttl":"10m"}}`)
	f.clock.Advance(20 * time.Minute)
	if err := f.srv.Keys().Reload(ctx); err != nil { // Background does this every second
		t.Fatal(err)
	}
	// Every instance must agree, including one started now (a restart, or
	// a new instance behind the load balancer), which has no cached set.
	fresh := start(t, f.dbURL, f.clock)
	for name, in := range map[string]*instance{"running instance": f.instance, "instance started after the change": fresh} {
		if kids := in.jwks(); !slices.Contains(kids, kid) {
			t.Errorf("%s: JWKS 20m after the rotation = %v: the retired key %s is gone while the ID token it signed is valid for 40 more minutes", name, kids, kid)
		}
		keys := oidc.NewRemoteKeySet(ctx, in.issuer+"/.well-known/jwks.json")
		if _, err := keys.VerifySignature(ctx, raw); err != nil {
			t.Errorf("%s: ID token signed before the rotation, still valid, does not verify: %v", name, err)
		}
	}
}

// TestInvalidPolicyPatchesChangeNothing: a refused patch answers 422
// invalid_policy naming the field, and the effective policy reads back
// byte for byte as before.
func TestInvalidPolicyPatchesChangeNothing(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	adm := f.admin()
	adm.patch("/admin/policies", `{"token":{"access_token_ttl":"10m"}}`)
	// The accepted change is audited with who and the before and after.
	changes := adm.auditEvents(url.Values{"type": {"policy.changed"}})
	if len(changes) != 1 {
		t.Fatalf("policy.changed events = %v, want one", changes)
	}
	details, _ := changes[0]["details"].(map[string]any)
	before, _ := details["before"].(map[string]any)
	after, _ := details["after"].(map[string]any)
	if changes[0]["actor"] != adminClientID || before == nil || after == nil ||
		before["token"].(map[string]any)["access_token_ttl"] != "15m" || after["token"].(map[string]any)["access_token_ttl"] != "10m" {
		t.Errorf("policy.changed event = %v, want actor %s with before 15m and after 10m", changes[0], adminClientID)
	}
	tests := []struct {
		name, path, patch, field string
	}{
		{"unknown key", "/admin/policies", `{"token":{"acces_token_ttl":"5m"}}`, "token.acces_token_ttl"},
		{"wrong type", "/admin/policies", `{"token":{"access_token_ttl":300}}`, "token.access_token_ttl"},
		{"refresh not above access", "/admin/policies", `{"token":{"refresh_token_ttl":"10m"}}`, "token.refresh_token_ttl"},
		{"both refresh modes", "/admin/policies", `{"token":{"refresh_window":"1h"}}`, "token.refresh_window"},
		{"unknown on_limit", "/admin/policies", `{"session":{"on_limit":"drop"}}`, "session.on_limit"},
		{"valid key with an invalid one", "/admin/policies", `{"token":{"id_token_ttl":"5m","access_token_ttl":"-1m"}}`, "token.access_token_ttl"},
		{"app rules with customized false", "/admin/clients/webapp/policies", `{"customized":false,"token":{"access_token_ttl":"5m"}}`, "customized"},
		{"app rules of a section left out", "/admin/clients/webapp/policies", `{"customized_sections":["session"],"token":{"access_token_ttl":"5m"}}`, "customized_sections"},
		{"unknown section to customize", "/admin/clients/webapp/policies", `{"customized_sections":["tokens"]}`, "customized_sections[0]"},
		{"invalid app rules", "/admin/clients/webapp/policies", `{"token":{"refresh_token_ttl":"1m"}}`, "token.refresh_token_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			global, app := adm.get("/admin/policies"), adm.get("/admin/clients/webapp/policies")
			changes := len(adm.auditEvents(url.Values{"type": {"policy.changed"}}))
			status, body := adm.do(http.MethodPatch, tt.path, "application/merge-patch+json", tt.patch)
			var e struct {
				Error  string `json:"error"`
				Fields []struct {
					Field, Message string
				} `json:"fields"`
			}
			if err := json.Unmarshal(body, &e); err != nil || status != http.StatusUnprocessableEntity || e.Error != "invalid_policy" {
				t.Fatalf("PATCH %s: %d %s, want 422 invalid_policy", tt.patch, status, body)
			}
			if len(e.Fields) == 0 || e.Fields[0].Field != tt.field || e.Fields[0].Message == "" {
				t.Errorf("fields = %+v, want the first to name %s", e.Fields, tt.field)
			}
			if got := adm.get("/admin/policies"); !bytes.Equal(got, global) {
				t.Errorf("GET /admin/policies changed:\n got %s\nwant %s", got, global)
			}
			if got := adm.get("/admin/clients/webapp/policies"); !bytes.Equal(got, app) {
				t.Errorf("GET /admin/clients/webapp/policies changed:\n got %s\nwant %s", got, app)
			}
			if got := len(adm.auditEvents(url.Values{"type": {"policy.changed"}})); got != changes {
				t.Errorf("%d policy.changed events, want %d", got, changes)
			}
		})
	}
	// And the tokens issued still follow the policy in force.
	if got := expiresIn(t, f.login(f.browser(), "alice", alicePass)); got < 598 || got > 600 {
		t.Errorf("expires_in after refused patches = %d, want 600", got)
	}
}

func TestSessionPolicy(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	adm := f.admin()
	signedIn := func(b *browser) bool {
		t.Helper()
		resp, _ := b.get(f.conf.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		return resp.Request.URL.Path != "/login"
	}

	t.Run("max_concurrent evicts the oldest", func(t *testing.T) {
		adm.patch("/admin/policies", `{"session":{"max_concurrent":1,"on_limit":"evict_oldest"}}`)
		first, second := f.browser(), f.browser()
		tok1 := f.login(first, "alice", alicePass)
		if !signedIn(first) {
			t.Fatal("first browser not signed in")
		}
		tok2 := f.login(second, "alice", alicePass)
		if signedIn(first) {
			t.Error("first browser still signed in after a second login under max_concurrent=1")
		}
		if !signedIn(second) {
			t.Error("second browser not signed in")
		}
		if _, err := f.refresh(tok1.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Errorf("refresh token of the evicted session: err = %v, want invalid_grant", err)
		}
		if !active(f.introspect(tok2.AccessToken)) {
			t.Error("the new session's access token is inactive")
		}
		adm.patch("/admin/policies", `{"session":{"max_concurrent":0}}`)
	})

	t.Run("password change ends the other sessions", func(t *testing.T) {
		here, there := f.browser(), f.browser()
		f.login(here, "alice", alicePass)
		other := f.login(there, "alice", alicePass)

		resp, page := here.get(f.issuer + authn.PasswordPath)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "current_password") {
			t.Fatalf("GET %s: %d %.300s", authn.PasswordPath, resp.StatusCode, page)
		}
		form := hiddenFields(page)
		const newPass = "a brand new passphrase"
		form.Set("current_password", alicePass)
		form.Set("new_password", newPass)
		form.Set("confirm_password", newPass)
		resp, page = here.postForm(f.issuer+authn.PasswordPath, form)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Your password has been changed.") {
			t.Fatalf("POST %s: %d %.500s", authn.PasswordPath, resp.StatusCode, page)
		}

		if signedIn(there) {
			t.Error("the other browser is still signed in after a password change")
		}
		if _, err := f.refresh(other.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Errorf("the other browser's refresh token after a password change: err = %v, want invalid_grant", err)
		}
		if active(f.introspect(other.AccessToken)) {
			t.Error("the other browser's access token is active after a password change")
		}
		if !signedIn(here) {
			t.Error("the browser that changed the password was signed out")
		}
		// The new password signs in; the old one no longer does.
		if tok := f.login(f.browser(), "alice", newPass); tok.AccessToken == "" {
			t.Error("no token with the new password")
		}
	})
}
