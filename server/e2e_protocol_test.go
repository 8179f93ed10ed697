package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const (
	spaOrigin   = "https://spa.example:8443"
	otherOrigin = "https://other.example"
)

// corsRequest sends method to path with an Origin header and returns the
// response headers and status.
func corsRequest(t *testing.T, method, u, origin string, hdr http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	readBody(t, resp)
	return resp
}

func TestCORS(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.createClient(oauth.ClientSpec{ID: "spa", Public: true, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"openid", "offline_access"}, RedirectURIs: []string{spaOrigin + "/cb"}, SkipConsent: true,
		AllowedCORSOrigins: []string{spaOrigin}})
	form := func(v url.Values) (http.Header, string) {
		return http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, v.Encode()
	}

	t.Run("public documents", func(t *testing.T) {
		for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
			resp := corsRequest(t, http.MethodGet, f.issuer+p, otherOrigin, nil, "")
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" || resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %d, Allow-Origin %q; want 200 and *", p, resp.StatusCode, got)
			}
			resp = corsRequest(t, http.MethodOptions, f.issuer+p, otherOrigin, http.Header{"Access-Control-Request-Method": {"GET"}}, "")
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" || resp.StatusCode != http.StatusNoContent {
				t.Errorf("OPTIONS %s: %d, Allow-Origin %q; want 204 and *", p, resp.StatusCode, got)
			}
		}
	})

	t.Run("preflight", func(t *testing.T) {
		pre := http.Header{"Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"content-type"}}
		for _, tc := range []struct {
			path, origin string
			allowed      bool
		}{
			{"/oauth2/token", spaOrigin, true},
			{"/oauth2/revoke", spaOrigin, true},
			{"/userinfo", spaOrigin, true},
			{"/oauth2/token", otherOrigin, false},
			{"/userinfo", otherOrigin, false},
			// An origin is scheme, host and port: a different port is
			// another origin.
			{"/oauth2/token", "https://spa.example:8444", false},
		} {
			resp := corsRequest(t, http.MethodOptions, f.issuer+tc.path, tc.origin, pre, "")
			got := resp.Header.Get("Access-Control-Allow-Origin")
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("OPTIONS %s from %s: status %d, want 204", tc.path, tc.origin, resp.StatusCode)
			}
			if tc.allowed && (got != tc.origin || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type")) {
				t.Errorf("OPTIONS %s from %s: Allow-Origin %q, Allow-Headers %q", tc.path, tc.origin, got, resp.Header.Get("Access-Control-Allow-Headers"))
			}
			if !tc.allowed && got != "" {
				t.Errorf("OPTIONS %s from unregistered %s: Allow-Origin %q, want none", tc.path, tc.origin, got)
			}
			if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("OPTIONS %s: no Vary: Origin", tc.path)
			}
		}
	})

	t.Run("token endpoint answers only the client's own origins", func(t *testing.T) {
		// webapp registered no origin: a page on the SPA's origin may not
		// read webapp's token responses, though the origin is registered
		// for another client.
		h, body := form(url.Values{"grant_type": {"client_credentials"}})
		h.Set("Authorization", "Basic "+basic(f.clientID, f.secret))
		resp := corsRequest(t, http.MethodPost, f.issuer+"/oauth2/token", spaOrigin, h, body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("webapp from spa origin: %d, Allow-Origin %q; want 200 without CORS", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		h, body = form(url.Values{"grant_type": {"authorization_code"}, "client_id": {"spa"}, "code": {"bogus"}, "redirect_uri": {spaOrigin + "/cb"}, "code_verifier": {oauth2.GenerateVerifier()}})
		resp = corsRequest(t, http.MethodPost, f.issuer+"/oauth2/token", spaOrigin, h, body)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin {
			t.Errorf("spa from its origin: %d, Allow-Origin %q; want 400 readable by %s", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), spaOrigin)
		}
		resp = corsRequest(t, http.MethodPost, f.issuer+"/oauth2/token", otherOrigin, h, body)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("spa from another origin: Allow-Origin %q, want none", got)
		}
	})

	t.Run("userinfo answers the token's client's origins", func(t *testing.T) {
		code, verifier := f.code(f.browser())
		tok, err := f.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
		resp := corsRequest(t, http.MethodGet, f.issuer+"/userinfo", spaOrigin, h, "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("webapp's token from spa origin: %d, Allow-Origin %q; want no CORS", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
}

func TestLogoutAsksUnlessTheHintProvesTheApplication(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	bob := f.createUser(authn.UserSpec{Username: "bob", Password: alicePass})
	_ = bob
	signedIn := func(b *browser) bool {
		t.Helper()
		resp, _ := b.get(f.conf.AuthCodeURL("abcdefghijk", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		return resp.Request.URL.Path != "/login"
	}
	idToken := func(b *browser, user string) string {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		loc := b.signIn(f.conf.AuthCodeURL("abcdefghijk", oauth2.S256ChallengeOption(verifier)), user, alicePass, "")
		tok, err := f.conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := tok.Extra("id_token").(string)
		return s
	}

	t.Run("without a hint a page asks, and a forged post does nothing", func(t *testing.T) {
		b := f.browser()
		idToken(b, "alice")
		resp, body := b.get(f.issuer + "/oauth2/logout?post_logout_redirect_uri=http://127.0.0.1:9999/bye&client_id=webapp&state=s2")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="yes"`) {
			t.Fatalf("GET logout without hint: %d, want the confirmation page: %s", resp.StatusCode, body)
		}
		if !signedIn(b) {
			t.Fatal("a GET without id_token_hint ended the session")
		}
		// The confirmation posted without its CSRF token (as another site
		// would) is refused.
		form := hiddenFields(body)
		form.Del(authn.CSRFField)
		form.Set("confirm", "yes")
		resp, _ = b.postForm(f.issuer+"/oauth2/logout", form)
		if resp.StatusCode != http.StatusForbidden || !signedIn(b) {
			t.Fatalf("confirmation without CSRF token: %d, signed in %v; want 403 and still signed in", resp.StatusCode, signedIn(b))
		}
		form = hiddenFields(body)
		form.Set("confirm", "yes")
		resp, _ = b.postForm(f.issuer+"/oauth2/logout", form)
		loc, err := resp.Location()
		if err != nil || loc.String() != "http://127.0.0.1:9999/bye?state=s2" {
			t.Fatalf("confirmed logout: %d %v", resp.StatusCode, loc)
		}
		if signedIn(b) {
			t.Fatal("still signed in after confirming")
		}
	})

	t.Run("another user's hint asks", func(t *testing.T) {
		other := f.browser()
		bobs := idToken(other, "bob")
		b := f.browser()
		idToken(b, "alice")
		resp, body := b.get(f.issuer + "/oauth2/logout?id_token_hint=" + url.QueryEscape(bobs))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="yes"`) || !signedIn(b) {
			t.Fatalf("logout with bob's hint in alice's browser: %d, want the confirmation page and alice still signed in", resp.StatusCode)
		}
	})

	t.Run("a forged hint is refused", func(t *testing.T) {
		b := f.browser()
		tok := idToken(b, "alice")
		parts := strings.Split(tok, ".")
		forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		resp, _ := b.get(f.issuer + "/oauth2/logout?id_token_hint=" + forged)
		if resp.StatusCode != http.StatusBadRequest || !signedIn(b) {
			t.Fatalf("forged hint: %d, signed in %v", resp.StatusCode, signedIn(b))
		}
	})

	t.Run("not signed in", func(t *testing.T) {
		resp, body := f.browser().get(f.issuer + "/oauth2/logout")
		if resp.StatusCode != http.StatusOK || strings.Contains(body, `value="yes"`) {
			t.Fatalf("logout when signed out: %d, want the signed-out page", resp.StatusCode)
		}
	})
}

// Requests that can never succeed are refused before the login page, so no
// one types a password for nothing.
func TestAuthorizeFailsBeforeLogin(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.createClient(oauth.ClientSpec{ID: "spa", Public: true, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, RedirectURIs: []string{callback}, SkipConsent: true})
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	for _, tc := range []struct {
		name  string
		q     url.Values
		error string
	}{
		{"public client without code_challenge", url.Values{"client_id": {"spa"}}, "invalid_request"},
		{"plain method", url.Values{"client_id": {"spa"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}}, "invalid_request"},
		{"challenge without method means plain", url.Values{"client_id": {"webapp"}, "code_challenge": {challenge}}, "invalid_request"},
		{"unknown scope", url.Values{"client_id": {"webapp"}, "scope": {"openid payroll"}}, "invalid_scope"},
		{"response type the client lacks", url.Values{"client_id": {"webapp"}, "response_type": {"token"}}, "unsupported_response_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"response_type": {"code"}, "scope": {"openid"}, "state": {"abcdefghij"}, "redirect_uri": {callback}}
			for k, v := range tc.q {
				q[k] = v
			}
			resp, _ := f.browser().get(f.issuer + "/oauth2/auth?" + q.Encode())
			loc, err := resp.Location()
			if err != nil {
				t.Fatalf("no redirect to the client: %d at %s", resp.StatusCode, resp.Request.URL)
			}
			// Errors for response types other than code travel in the
			// fragment (OAuth 2.0 Multiple Response Types 5).
			got := loc.Query()
			if frag, _ := url.ParseQuery(loc.Fragment); frag.Has("error") {
				got = frag
			}
			if got.Get("error") != tc.error || !strings.HasPrefix(loc.String(), callback) {
				t.Fatalf("redirected to %s, want %s?error=%s", loc, callback, tc.error)
			}
		})
	}
}

// basic is an HTTP Basic credential, form-encoded first as RFC 6749 2.3.1
// asks.
func basic(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}
