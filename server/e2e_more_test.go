package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// TestRestartKeepsEverything stops a server and starts a new one on the
// same database: tokens, clients, users and signing keys all survive.
func TestRestartKeepsEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		ctx := context.Background()
		code, verifier := f.code(f.browser())
		tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		f.stop()

		again := start(t, dbURL, &testClock{})
		f2 := *f
		f2.instance = again
		f2.conf = &oauth2.Config{ClientID: f.clientID, ClientSecret: f.secret, RedirectURL: callback, Scopes: f.conf.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: again.issuer + "/oauth2/auth", TokenURL: again.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
		if !active(f2.introspect(tok.AccessToken)) {
			t.Fatal("access token inactive after restart")
		}
		// The ID token issued before the restart verifies against the new
		// instance's JWKS (same key, read from the database). The issuer
		// changed with the port, so check the signature only.
		keys := oidc.NewRemoteKeySet(ctx, again.issuer+"/.well-known/jwks.json")
		if _, err := keys.VerifySignature(ctx, rawID); err != nil {
			t.Fatalf("ID token from before the restart does not verify: %v", err)
		}
		if _, err := f2.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
			t.Fatalf("refresh after restart: %v", err)
		}
		code, verifier = f2.code(f2.browser())
		if _, err := f2.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err != nil {
			t.Fatalf("sign-in after restart: %v", err)
		}
	})
}

func TestAdminAPIAcceptsOnlyAdminTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true, func(s *oauth.ClientSpec) { s.Scopes = append(s.Scopes, "admin") })
		ctx := context.Background()
		adminCall := func(token string) int {
			req, _ := http.NewRequest(http.MethodGet, f.issuer+"/admin/users", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		cc := clientcredentials.Config{ClientID: f.clientID, ClientSecret: f.secret, TokenURL: f.conf.Endpoint.TokenURL, Scopes: []string{"admin"}}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := adminCall(tok.AccessToken); got != http.StatusOK {
			t.Fatalf("admin token: %d", got)
		}
		cc.Scopes = []string{"profile"}
		tok, err = cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := adminCall(tok.AccessToken); got != http.StatusForbidden {
			t.Fatalf("token without admin scope: %d, want 403", got)
		}
		if got := adminCall("pc_at_forged.token"); got != http.StatusUnauthorized {
			t.Fatalf("forged token: %d, want 401", got)
		}

		// A non-administrator signing in through a client that may request
		// "admin" does not receive it.
		f.conf.Scopes = []string{"openid", "admin"}
		code, verifier := f.code(f.browser())
		user, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := user.Extra("scope").(string); strings.Contains(s, "admin") {
			t.Fatalf("non-admin user was granted %q", s)
		}
		if got := adminCall(user.AccessToken); got != http.StatusForbidden {
			t.Fatalf("non-admin user's token: %d, want 403", got)
		}
	})
}

func TestLoginFormNeverRevealsAccounts(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.createUser(authn.UserSpec{Username: "bob", Password: "bob's password"})
	b := f.browser()
	resp, body := b.get(f.conf.AuthCodeURL("abcdefghijk", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("unauthenticated authorize landed on %s", resp.Request.URL)
	}
	form := hiddenFields(body)
	pages := map[string]string{}
	for _, tc := range []struct{ name, user, pass string }{
		{"unknown user", "nobody", "whatever pass"},
		{"wrong password", "bob", "not bob's password"},
	} {
		form.Set("username", "someone")
		form.Set("password", tc.pass)
		if tc.user != "" {
			form.Set("username", tc.user)
		}
		resp, body := b.postForm(f.issuer+"/login", form)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Invalid username or password.") {
			t.Fatalf("%s: status %d body %.300s", tc.name, resp.StatusCode, body)
		}
		pages[tc.name] = strings.NewReplacer(tc.user, "USER").Replace(hiddenInput.ReplaceAllString(body, ""))
	}
	if pages["unknown user"] != pages["wrong password"] {
		t.Fatal("login failure pages differ between an unknown account and a wrong password")
	}

	// A successful POST answers 303 (never 307) and sets a hardened cookie.
	form.Set("username", "bob")
	form.Set("password", "bob's password")
	noFollow := *b.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(f.issuer+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login POST answered %d, want 303", resp.StatusCode)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "portcullis_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie = %+v, want HttpOnly SameSite=Lax", session)
	}
	form.Del(csrfFieldName)
	resp, err = noFollow.PostForm(f.issuer+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF token: %d, want 403", resp.StatusCode)
	}
}

const csrfFieldName = "csrf_token"

func TestConsentDenyAndRPInitiatedLogout(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), false)
	b := f.browser()
	loc := b.signIn(f.conf.AuthCodeURL("abcdefghijk", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass, "deny")
	if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "abcdefghijk" {
		t.Fatalf("denied consent redirected to %s", loc)
	}

	code, verifier := f.code(b)
	tok, err := f.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	q := url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"http://127.0.0.1:9999/bye"}, "state": {"s1"}}
	resp, _ := b.get(f.issuer + "/oauth2/logout?" + q.Encode())
	loc, err = resp.Location()
	if err != nil || loc.String() != "http://127.0.0.1:9999/bye?state=s1" {
		t.Fatalf("logout redirected to %v (%d)", loc, resp.StatusCode)
	}
	// Signed out: authorize sends the browser to the login page again.
	resp, _ = b.get(f.conf.AuthCodeURL("abcdefghijk", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("after logout, authorize landed on %s", resp.Request.URL)
	}
	// An unregistered post-logout URI is refused with a page, not followed.
	q.Set("post_logout_redirect_uri", "https://evil.example/")
	resp, _ = b.get(f.issuer + "/oauth2/logout?" + q.Encode())
	if resp.Header.Get("Location") != "" || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unregistered post_logout_redirect_uri: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
