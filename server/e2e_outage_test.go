package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// When the database is gone, every endpoint says so — 503 (or
// server_error) — and never answers with a credential error a client
// would act on by dropping its tokens or alerting a user.
func TestDatabaseOutageIsNotACredentialError(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) { outageAnswers(t, dbURL) })
}

func outageAnswers(t *testing.T, dbURL string) {
	f := newFixture(t, dbURL, true)
	code, verifier := f.code(f.browser())
	tok, err := f.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Store().Close(); err != nil {
		t.Fatal(err)
	}
	form := func(v url.Values) (string, http.Header) {
		return v.Encode(), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	}
	basicAuth := "Basic " + basic(f.clientID, f.secret)
	for _, tc := range []struct {
		name, method, path string
		body               url.Values
		bearer             string
	}{
		{"client credentials", http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, ""},
		{"refresh", http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, ""},
		{"introspection", http.MethodPost, "/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, ""},
		{"revocation", http.MethodPost, "/oauth2/revoke", url.Values{"token": {tok.RefreshToken}}, ""},
		{"userinfo", http.MethodGet, "/userinfo", nil, tok.AccessToken},
		{"admin API", http.MethodGet, "/admin/clients", nil, tok.AccessToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, hdr := form(tc.body)
			req, _ := http.NewRequest(tc.method, f.issuer+tc.path, strings.NewReader(body))
			for k, v := range hdr {
				req.Header[k] = v
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			} else {
				req.Header.Set("Authorization", basicAuth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&out)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d %v, want 503", resp.StatusCode, out)
			}
			switch out["error"] {
			case "temporarily_unavailable", "server_error":
			default:
				t.Errorf("error %v, want temporarily_unavailable or server_error", out)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		})
	}
}
