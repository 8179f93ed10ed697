package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const (
	callback  = "http://127.0.0.1:9999/callback"
	httpsCB   = "https://app.example.com/callback"
	alicePass = "correct horse battery staple"
)

// fixture is a running server with one confidential client and one user.
type fixture struct {
	*instance
	clientID, secret string
	userID           string
	conf             *oauth2.Config
}

func newFixture(t *testing.T, dbURL string, skipConsent bool, mutate ...func(*oauth.ClientSpec)) *fixture {
	return fixtureOn(t, start(t, dbURL, &testClock{}), skipConsent, mutate...)
}

// fixtureOn adds the client and the user to a running instance.
func fixtureOn(t testing.TB, in *instance, skipConsent bool, mutate ...func(*oauth.ClientSpec)) *fixture {
	t.Helper()
	spec := oauth.ClientSpec{
		ID:                     "webapp",
		Name:                   "Web App",
		GrantTypes:             []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes:                 []string{"openid", "offline_access", "profile", "email"},
		RedirectURIs:           []string{callback, httpsCB},
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:9999/bye"},
		SkipConsent:            skipConsent,
	}
	for _, m := range mutate {
		m(&spec)
	}
	secret := in.createClient(spec)
	uid := in.createUser(authn.UserSpec{Username: "Alice", Password: alicePass, Email: "alice@example.com", EmailVerified: true})
	return &fixture{
		instance: in, clientID: spec.ID, secret: secret, userID: uid,
		conf: &oauth2.Config{
			ClientID:     spec.ID,
			ClientSecret: secret,
			Endpoint: oauth2.Endpoint{
				AuthURL:   in.issuer + "/oauth2/auth",
				TokenURL:  in.issuer + "/oauth2/token",
				AuthStyle: oauth2.AuthStyleInHeader,
			},
			RedirectURL: callback,
			Scopes:      []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, "profile", "email"},
		},
	}
}

// code signs alice in through the login form and returns an authorization
// code and the PKCE verifier it is bound to.
func (f *fixture) code(b *browser) (code, verifier string) {
	f.t.Helper()
	verifier = oauth2.GenerateVerifier()
	state := "state-" + oauth2.GenerateVerifier()[:12]
	loc := b.signIn(f.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-12345678")), "alice", alicePass, "allow")
	if got := loc.Query().Get("state"); got != state {
		f.t.Fatalf("state = %q, want %q (redirect %s)", got, state, loc)
	}
	if e := loc.Query().Get("error"); e != "" {
		f.t.Fatalf("authorize error %s: %s", e, loc.Query().Get("error_description"))
	}
	return loc.Query().Get("code"), verifier
}

func (f *fixture) introspect(token string) map[string]any {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.issuer+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.clientID, f.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		f.t.Fatalf("introspect: status %d: %v", resp.StatusCode, err)
	}
	return out
}

func active(m map[string]any) bool { b, _ := m["active"].(bool); return b }

// tokenRequest posts a raw form to the token endpoint with the fixture's
// client credentials and returns the status and decoded JSON.
func (f *fixture) tokenRequest(form url.Values) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.clientID, f.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		f.t.Errorf("token response Cache-Control = %q, want no-store", cc)
	}
	return resp.StatusCode, out
}

func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func TestAuthorizationCodeFlowWithRealClients(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, false)
		ctx := oidc.ClientContext(context.Background(), http.DefaultClient)
		provider, err := oidc.NewProvider(ctx, f.issuer)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		if provider.Endpoint().TokenURL != f.conf.Endpoint.TokenURL {
			t.Fatalf("discovered token endpoint %q", provider.Endpoint().TokenURL)
		}

		b := f.browser()
		code, verifier := f.code(b)
		tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		if tok.RefreshToken == "" || tok.AccessToken == "" {
			t.Fatalf("token response lacks tokens: %+v", tok)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: f.clientID}).Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("ID token does not verify against the JWKS: %v", err)
		}
		if idt.Subject != f.userID || idt.Nonce != "nonce-12345678" {
			t.Fatalf("ID token sub=%q nonce=%q", idt.Subject, idt.Nonce)
		}
		var claims struct {
			Email string `json:"email"`
		}
		_ = idt.Claims(&claims)

		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		if ui.Subject != f.userID || ui.Email != "alice@example.com" || !ui.EmailVerified {
			t.Fatalf("userinfo = %+v", ui)
		}

		// A second sign-in reuses the browser session and the consent.
		code2, verifier2 := f.code(b)
		if _, err := f.conf.Exchange(ctx, code2, oauth2.VerifierOption(verifier2)); err != nil {
			t.Fatalf("second exchange: %v", err)
		}

		// Refresh rotates: the new refresh token differs, the old one is spent.
		expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
		tok2, err := f.conf.TokenSource(ctx, expired).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
			t.Fatal("refresh did not rotate the tokens")
		}
		if active(f.introspect(tok.AccessToken)) {
			t.Fatal("access token from before the refresh is still active")
		}
		if !active(f.introspect(tok2.AccessToken)) {
			t.Fatal("refreshed access token is not active")
		}
	})
}

func TestClientCredentials(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		cc := clientcredentials.Config{ClientID: f.clientID, ClientSecret: f.secret, TokenURL: f.conf.Endpoint.TokenURL, Scopes: []string{"profile"}}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("client credentials: %v", err)
		}
		if tok.RefreshToken != "" {
			t.Fatal("client credentials grant issued a refresh token")
		}
		in := f.introspect(tok.AccessToken)
		if !active(in) || in["client_id"] != f.clientID || in["scope"] != "profile" {
			t.Fatalf("introspection = %v", in)
		}

		wrong := cc
		wrong.ClientSecret = f.secret + "x"
		_, err = wrong.Token(context.Background())
		if oauthErrorCode(err) != "invalid_client" {
			t.Fatalf("wrong secret: err = %v, want invalid_client", err)
		}
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong secret: status %d, want 401", re.Response.StatusCode)
		}

		notAllowed := cc
		notAllowed.Scopes = []string{"admin"}
		if _, err := notAllowed.Token(context.Background()); oauthErrorCode(err) != "invalid_scope" {
			t.Fatalf("unregistered scope: err = %v, want invalid_scope", err)
		}
	})
}

func TestJWTAccessTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true, func(s *oauth.ClientSpec) { s.AccessTokenFormat = "jwt" })
		cc := clientcredentials.Config{ClientID: f.clientID, ClientSecret: f.secret, TokenURL: f.conf.Endpoint.TokenURL}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(tok.AccessToken, ".") != 2 {
			t.Fatalf("access token %q is not a JWT", tok.AccessToken)
		}
		ctx := context.Background()
		keys := oidc.NewRemoteKeySet(ctx, f.issuer+"/.well-known/jwks.json")
		payload, err := keys.VerifySignature(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("JWT access token does not verify against the JWKS: %v", err)
		}
		var claims map[string]any
		_ = json.Unmarshal(payload, &claims)
		for _, c := range []string{"iss", "exp", "aud", "sub", "client_id", "iat", "jti"} {
			if _, ok := claims[c]; !ok {
				t.Errorf("JWT access token lacks RFC 9068 claim %q: %v", c, claims)
			}
		}
		if !active(f.introspect(tok.AccessToken)) {
			t.Fatal("JWT access token does not introspect as active")
		}
		req, _ := http.NewRequest(http.MethodPost, f.issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(f.clientID, f.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %v %v", resp, err)
		}
		resp.Body.Close()
		if active(f.introspect(tok.AccessToken)) {
			t.Fatal("revoked JWT access token still active")
		}
	})
}

func TestRedirectURIMustMatchExactly(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	b := f.browser()
	// Sign in first so any redirect would be immediate.
	code, _ := f.code(b)
	if code == "" {
		t.Fatal("no code")
	}
	for _, uri := range []string{
		"https://APP.example.com/callback",
		"https://app.example.com/Callback",
		"https://app.example.com/callback/extra",
		"https://app.example.com/callback?x=1",
		"https://app.example.com/callback/../callback",
		"https://app.example.com/x/../callback",
		"https://evil@app.example.com/callback",
		"https://app.example.com@evil.example/callback",
		"https://app.example.com.evil.example/callback",
		"https://evil.example/callback",
		"http://app.example.com/callback",
		"https://app.example.com/callback#frag",
	} {
		t.Run(uri, func(t *testing.T) {
			q := url.Values{"client_id": {f.clientID}, "response_type": {"code"}, "scope": {"openid"},
				"state": {"abcdefghij"}, "redirect_uri": {uri},
				"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
			resp, body := b.get(f.issuer + "/oauth2/auth?" + q.Encode())
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Fatalf("redirected to %q", loc)
			}
			if resp.StatusCode < 400 || !strings.Contains(body, "<html") {
				t.Fatalf("status %d, want an HTML error page; body %.200s", resp.StatusCode, body)
			}
		})
	}
}

func TestPKCE(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	ctx := context.Background()
	b := f.browser()

	t.Run("missing verifier", func(t *testing.T) {
		code, _ := f.code(b)
		if _, err := f.conf.Exchange(ctx, code); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("err = %v, want invalid_grant", err)
		}
	})
	t.Run("wrong verifier burns the code", func(t *testing.T) {
		code, verifier := f.code(b)
		if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("wrong verifier: err = %v, want invalid_grant", err)
		}
		if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("right verifier after a wrong one: err = %v, want invalid_grant", err)
		}
	})
	t.Run("public client must use S256", func(t *testing.T) {
		f.createClient(oauth.ClientSpec{ID: "spa", Public: true, GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, RedirectURIs: []string{callback}, SkipConsent: true})
		for name, extra := range map[string]url.Values{
			"none":  {},
			"plain": {"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}},
		} {
			q := url.Values{"client_id": {"spa"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"abcdefghij"}, "redirect_uri": {callback}}
			for k, v := range extra {
				q[k] = v
			}
			resp, _ := b.get(f.issuer + "/oauth2/auth?" + q.Encode())
			loc, err := resp.Location()
			if err != nil || loc.Query().Get("error") != "invalid_request" {
				t.Fatalf("%s: want a redirect with error=invalid_request, got %d %v", name, resp.StatusCode, loc)
			}
		}
	})
}

func TestReplayedCodeRevokesWhatItIssued(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		ctx := context.Background()
		code, verifier := f.code(f.browser())
		tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("replay: err = %v, want invalid_grant", err)
		}
		if active(f.introspect(tok.AccessToken)) || active(f.introspect(tok.RefreshToken)) {
			t.Fatal("tokens issued for a replayed code are still active")
		}
	})
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		ctx := context.Background()
		code, verifier := f.code(f.browser())
		tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		status, fresh := f.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
		if status != http.StatusOK {
			t.Fatalf("refresh: %d %v", status, fresh)
		}
		status, body := f.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
		if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("reuse: %d %v, want 400 invalid_grant", status, body)
		}
		if active(f.introspect(fresh["access_token"].(string))) {
			t.Fatal("descendant access token still active after refresh token reuse")
		}
		status, body = f.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh["refresh_token"].(string)}})
		if status == http.StatusOK {
			t.Fatalf("descendant refresh token still works after reuse: %v", body)
		}
	})
}

func TestExpiryFollowsTheInjectedClock(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	ctx := context.Background()
	b := f.browser()

	code, verifier := f.code(b)
	f.clock.Advance(10*time.Minute + time.Second)
	if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("code older than 10 minutes: err = %v, want invalid_grant", err)
	}

	code, verifier = f.code(b)
	tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if !active(f.introspect(tok.AccessToken)) {
		t.Fatal("fresh access token inactive")
	}
	f.clock.Advance(15*time.Minute + time.Second)
	if active(f.introspect(tok.AccessToken)) {
		t.Fatal("access token active after its 15 minute lifetime")
	}
	// The refresh token (168h) still works.
	if status, body := f.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); status != http.StatusOK {
		t.Fatalf("refresh within its lifetime: %d %v", status, body)
	}
	code, verifier = f.code(b)
	tok, err = f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(168*time.Hour + time.Second)
	if status, body := f.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("expired refresh token: %d %v, want invalid_grant", status, body)
	}
}

func TestMalformedTokenRequests(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	for _, tt := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"no grant_type", url.Values{}, 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"implicit"}, "username": {"alice"}, "password": {alicePass}}, 400, "unsupported_grant_type"},
		{"password grant not registered", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePass}}, 400, "unauthorized_client"},
		{"code missing", url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {callback}}, 400, "invalid_grant"},
		{"garbage code", url.Values{"grant_type": {"authorization_code"}, "code": {"pc_ac_nope.nope"}, "redirect_uri": {callback}}, 400, "invalid_grant"},
		{"garbage refresh", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, 400, "invalid_grant"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := f.tokenRequest(tt.form)
			if status != tt.status || body["error"] != tt.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	resp, err := http.Get(f.issuer + "/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /oauth2/token = %d, want 405", resp.StatusCode)
	}
}

// TestSingleUseUnderConcurrency redeems one code, then one refresh token,
// from 20 goroutines at once: exactly one may succeed.
func TestSingleUseUnderConcurrency(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		code, verifier := f.code(f.browser())
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {callback}}
		if n := f.race(form); n != 1 {
			t.Fatalf("authorization code redeemed %d times by 20 parallel requests, want exactly 1", n)
		}

		code, verifier = f.code(f.browser())
		status, tok := f.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {callback}})
		if status != http.StatusOK {
			t.Fatalf("exchange: %d %v", status, tok)
		}
		if n := f.race(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}); n != 1 {
			t.Fatalf("refresh token redeemed %d times by 20 parallel requests, want exactly 1", n)
		}
	})
}

func (f *fixture) race(form url.Values) int {
	f.t.Helper()
	const n = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok      int
		other   []string
		startCh = make(chan struct{})
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startCh
			req, _ := http.NewRequest(http.MethodPost, f.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(f.clientID, f.secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				mu.Lock()
				other = append(other, err.Error())
				mu.Unlock()
				return
			}
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.StatusCode == http.StatusOK:
				ok++
			case resp.StatusCode == http.StatusBadRequest && body["error"] == "invalid_grant":
			default:
				other = append(other, fmt.Sprintf("%d %v", resp.StatusCode, body))
			}
		}()
	}
	close(startCh)
	wg.Wait()
	if len(other) > 0 {
		f.t.Errorf("losers must get 400 invalid_grant; got %v", other)
	}
	return ok
}
