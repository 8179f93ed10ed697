package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// rawToken posts body as is to the token endpoint with the fixture's
// client credentials.
func (f *fixture) rawToken(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.issuer+"/oauth2/token", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.clientID, f.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("status %d: body is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// A refresh token is a credential for the token endpoint, never a bearer
// token: userinfo and the admin API refuse it, whatever the access token
// format.
func TestRefreshTokenIsNotABearerToken(t *testing.T) {
	for _, format := range []string{"opaque", "jwt"} {
		t.Run(format, func(t *testing.T) {
			f := newFixture(t, storagetest.SQLiteURL(t), true, func(s *oauth.ClientSpec) {
				s.Scopes = append(s.Scopes, oauth.ScopeAdmin)
				s.AccessTokenFormat = format
			})
			f.createUser(authn.UserSpec{Username: "root", Password: alicePass, Admin: true})
			conf := *f.conf
			conf.Scopes = append(conf.Scopes, oauth.ScopeAdmin)
			verifier := oauth2.GenerateVerifier()
			loc := f.browser().signIn(conf.AuthCodeURL("abcdefghij", oauth2.S256ChallengeOption(verifier)), "root", alicePass, "")
			tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil || tok.RefreshToken == "" {
				t.Fatalf("exchange: %v (refresh token %q)", err, tok.RefreshToken)
			}
			for _, path := range []string{"/userinfo", "/admin/clients"} {
				for _, tc := range []struct {
					kind, token string
					want        int
				}{
					{"access token", tok.AccessToken, http.StatusOK},
					{"refresh token", tok.RefreshToken, http.StatusUnauthorized},
				} {
					req, _ := http.NewRequest(http.MethodGet, f.issuer+path, nil)
					req.Header.Set("Authorization", "Bearer "+tc.token)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					readBody(t, resp)
					if resp.StatusCode != tc.want {
						t.Errorf("%s with the %s: %d, want %d", path, tc.kind, resp.StatusCode, tc.want)
					}
				}
			}
		})
	}
}

// Two near-simultaneous redemptions of one code never leave the winner's
// tokens active, whichever step the loser fails at (the code, or its PKCE
// data already deleted by the winner).
func TestCodeRaceRevokesWhatWasIssued(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		b := f.browser()
		for round := range 15 {
			code, verifier := f.code(b)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {callback}}.Encode()
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				issued   []string
				statuses []int
			)
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest(http.MethodPost, f.issuer+"/oauth2/token", strings.NewReader(form))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(f.clientID, f.secret)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					var body map[string]any
					_ = json.NewDecoder(resp.Body).Decode(&body)
					resp.Body.Close()
					mu.Lock()
					defer mu.Unlock()
					statuses = append(statuses, resp.StatusCode)
					if at, ok := body["access_token"].(string); ok {
						issued = append(issued, at)
					}
				}()
			}
			wg.Wait()
			if len(issued) > 1 {
				t.Fatalf("round %d: the code was redeemed twice (%v)", round, statuses)
			}
			for _, at := range issued {
				if active(f.introspect(at)) {
					t.Fatalf("round %d: a code redeemed twice left its access token active (%v)", round, statuses)
				}
			}
		}
	})
}

// RFC 6749 3.1/3.2: no parameter twice; malformed encoding is not
// silently dropped; an oversized body is 413, in RFC 6749's error shape.
func TestMalformedOAuthParameters(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	for _, tc := range []struct {
		name, body string
		status     int
		error      string
	}{
		{"grant_type twice", "grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request"},
		{"scope twice", "grant_type=client_credentials&scope=openid&scope=profile", 400, "invalid_request"},
		{"client_id twice", "grant_type=client_credentials&client_id=webapp&client_id=webapp", 400, "invalid_request"},
		{"undecodable scope", "grant_type=client_credentials&scope=%zz", 400, "invalid_request"},
		{"oversized body", "grant_type=client_credentials&scope=" + strings.Repeat("a", 10<<20), 413, "invalid_request"},
		{"well-formed", "grant_type=client_credentials&scope=openid", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.rawToken(t, tc.body)
			if status != tc.status || (tc.error != "" && body["error"] != tc.error) {
				t.Fatalf("%d %v, want %d %s", status, body, tc.status, tc.error)
			}
			if tc.error != "" {
				if d, _ := body["error_description"].(string); d == "" {
					t.Errorf("no error_description: %v", body)
				}
			}
		})
	}
	t.Run("authorize with redirect_uri twice shows a page, redirects nowhere", func(t *testing.T) {
		q := url.Values{"client_id": {"webapp"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"abcdefghij"},
			"redirect_uri": {callback, "https://evil.example/cb"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
		resp, body := f.browser().get(f.issuer + "/oauth2/auth?" + q.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "redirect_uri") {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// A client introspects its own tokens; another client's only with the
// introspect permission (a resource server), and to anyone else such a
// token is simply inactive — nothing about it leaks.
func TestIntrospectionIsLimitedToOwnTokens(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	code, verifier := f.code(f.browser())
	tok, err := f.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	otherSecret := f.createClient(oauth.ClientSpec{ID: "other-app", GrantTypes: []string{"client_credentials"}})
	rsSecret := f.createClient(oauth.ClientSpec{ID: "api", GrantTypes: []string{"client_credentials"}, Introspect: true})
	for _, tc := range []struct {
		client, secret string
		active         bool
	}{
		{f.clientID, f.secret, true},
		{"other-app", otherSecret, false},
		{"api", rsSecret, true},
	} {
		got := postOAuth(t, f.issuer+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, tc.client, tc.secret)
		if got.status != http.StatusOK || active(got.body) != tc.active {
			t.Errorf("%s introspecting webapp's token: %d %v, want active=%v", tc.client, got.status, got.body, tc.active)
		}
		if !tc.active && len(got.body) != 1 {
			t.Errorf("%s learned more than active=false: %v", tc.client, got.body)
		}
	}
	if _, _, err := oauth.NewClient(oauth.ClientSpec{ID: "spa2", Public: true, Introspect: true, RedirectURIs: []string{callback}}, cheapHash); err == nil || !strings.Contains(err.Error(), "introspect") {
		t.Errorf("a public client with introspect: %v, want an error naming introspect", err)
	}
}

// NUL bytes and invalid UTF-8 are the sender's mistake: 400 naming the
// field, on both backends (PostgreSQL refuses them in text; SQLite would
// store them).
func TestUnstorableInputIsBadRequest(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		for _, tc := range []struct{ name, body, field string }{
			{"NUL in scope", "grant_type=client_credentials&scope=openid%00", "scope"},
			{"invalid UTF-8 in scope", "grant_type=client_credentials&scope=%ff", "scope"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, body := f.rawToken(t, tc.body)
				desc, _ := body["error_description"].(string)
				if status != http.StatusBadRequest || body["error"] != "invalid_request" || !strings.Contains(desc, tc.field) {
					t.Fatalf("%d %v, want 400 invalid_request naming %s", status, body, tc.field)
				}
			})
		}
		t.Run("NUL in the login form", func(t *testing.T) {
			resp, body := f.browser().postLogin(f.conf.AuthCodeURL("abcdefghij", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice\x00", alicePass)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "username") {
				t.Fatalf("%d, want 400 naming username", resp.StatusCode)
			}
		})
		// A header cannot carry NUL, but it can carry bytes that are not
		// UTF-8: such a token is no token, not an outage.
		for _, path := range []string{"/userinfo", "/admin/clients"} {
			t.Run("invalid UTF-8 bearer token on "+path, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, f.issuer+path, nil)
				req.Header.Set("Authorization", "Bearer ory_at_\xff\xfe.\xff")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("%d, want 401", resp.StatusCode)
				}
			})
		}
	})
}
