package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const (
	textClient  = "text-client"
	textUserID  = "0190a4b6-2222-7000-8000-000000000001"
	textSession = "text-session"
)

// TestUnstorableTextRefused sends NUL bytes and invalid UTF-8 through every
// kind of text the API takes. PostgreSQL cannot store either (it answered
// 500) and SQLite can (it answered 200 or 201, storing them): both must
// answer 400 naming the field, and change nothing.
func TestUnstorableTextRefused(t *testing.T) {
	validClientBody := `{"client_id":"fresh","grant_types":["client_credentials"]`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string // "" is application/json when there is a body
		body        string
		fields      []string
	}{
		// Path values.
		{name: "get client, NUL id", method: "GET", path: "/admin/clients/%00", fields: []string{"id"}},
		{name: "get client, invalid UTF-8 id", method: "GET", path: "/admin/clients/%FF", fields: []string{"id"}},
		{name: "delete client, NUL in id", method: "DELETE", path: "/admin/clients/" + textClient + "%00", fields: []string{"id"}},
		{name: "get user, NUL id", method: "GET", path: "/admin/users/%00", fields: []string{"id"}},
		{name: "delete user, invalid UTF-8 id", method: "DELETE", path: "/admin/users/%C3%28", fields: []string{"id"}},
		{name: "user sessions, NUL id", method: "GET", path: "/admin/users/%00/sessions", fields: []string{"id"}},
		{name: "end user sessions, invalid UTF-8 id", method: "DELETE", path: "/admin/users/%ff/sessions", fields: []string{"id"}},
		{name: "end session, NUL sid", method: "DELETE", path: "/admin/sessions/" + textSession + "%00", fields: []string{"sid"}},
		{name: "reset password, NUL user id", method: "PUT", path: "/admin/users/%00/password",
			body: `{"password":"correct horse"}`, fields: []string{"id"}},
		{name: "client policies, invalid UTF-8 id", method: "GET", path: "/admin/clients/%FF/policies", fields: []string{"id"}},
		{name: "patch client policies, NUL id", method: "PATCH", path: "/admin/clients/%00/policies", contentType: mergePatchType,
			body: `{"customized":true}`, fields: []string{"id"}},

		// Query parameters, used by the handler or not.
		{name: "list clients, NUL after", method: "GET", path: "/admin/clients?after=%00", fields: []string{"after"}},
		{name: "list clients, invalid UTF-8 after", method: "GET", path: "/admin/clients?after=%ff", fields: []string{"after"}},
		{name: "list users, NUL after", method: "GET", path: "/admin/users?limit=5&after=a%00", fields: []string{"after"}},
		{name: "list clients, every problem", method: "GET", path: "/admin/clients?limit=%ff&after=%00", fields: []string{"after", "limit"}},
		{name: "list clients, the second value", method: "GET", path: "/admin/clients?after=a&after=%00", fields: []string{"after"}},
		{name: "list clients, NUL parameter name", method: "GET", path: "/admin/clients?%00=1", fields: []string{"%00"}},
		{name: "list users, invalid UTF-8 parameter name", method: "GET", path: "/admin/users?a%FFb=1", fields: []string{"a%FFb"}},
		{name: "audit, NUL client_id", method: "GET", path: "/admin/audit?client_id=%00", fields: []string{"client_id"}},
		{name: "audit, NUL user_id", method: "GET", path: "/admin/audit?user_id=" + textUserID + "%00", fields: []string{"user_id"}},
		{name: "audit, invalid UTF-8 type", method: "GET", path: "/admin/audit?type=client.created%ff", fields: []string{"type"}},
		{name: "audit, NUL ip and cursor", method: "GET", path: "/admin/audit?ip=%00&cursor=%00", fields: []string{"cursor", "ip"}},
		{name: "global policy, unused parameter", method: "GET", path: "/admin/policies?x=%00", fields: []string{"x"}},
		{name: "rotate keys, unused parameter", method: "POST", path: "/admin/keys/rotate?revoke_existing=%00", fields: []string{"revoke_existing"}},
		{name: "openapi document, unused parameter", method: "GET", path: "/admin/openapi.json?v=%ff", fields: []string{"v"}},

		// JSON bodies.
		{name: "create client, NUL in client_name", method: "POST", path: "/admin/clients",
			body: validClientBody + `,"client_name":"Fresh\u0000"}`, fields: []string{"client_name"}},
		{name: "create client, NUL in a redirect URI", method: "POST", path: "/admin/clients",
			body:   `{"client_id":"fresh","grant_types":["authorization_code"],"redirect_uris":["https://app.example.com/cb","https://app.example.com/\u0000"]}`,
			fields: []string{"redirect_uris[1]"}},
		{name: "create client, NUL in client_id and a scope", method: "POST", path: "/admin/clients",
			body:   `{"client_id":"fresh\u0000","grant_types":["client_credentials"],"scopes":["read","wr\u0000ite"]}`,
			fields: []string{"client_id", "scopes[1]"}},
		{name: "create client, NUL deep in jwks", method: "POST", path: "/admin/clients",
			body:   validClientBody + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","kid":"k\u0000"}]}}`,
			fields: []string{"jwks.keys[0].kid"}},
		{name: "create client, NUL in a key in jwks", method: "POST", path: "/admin/clients",
			body:   validClientBody + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[],"x\u0000":1}}`,
			fields: []string{`jwks.x\u0000`}},
		{name: "create client, invalid UTF-8", method: "POST", path: "/admin/clients",
			body: validClientBody + `,"client_name":"Caf` + "\xe9" + `"}`, fields: []string{"body"}},
		{name: "create user, NUL in username", method: "POST", path: "/admin/users",
			body: `{"username":"ali\u0000ce","password":"correct horse"}`, fields: []string{"username"}},
		{name: "create user, NUL in password and email", method: "POST", path: "/admin/users",
			body: `{"username":"alice","password":"correct horse\u0000","email":"alice@example.com\u0000"}`, fields: []string{"password", "email"}},
		{name: "create user, invalid UTF-8 username", method: "POST", path: "/admin/users",
			body: `{"username":"` + "\xc0\xaf" + `","password":"correct horse"}`, fields: []string{"body"}},
		{name: "reset password, NUL in password", method: "PUT", path: "/admin/users/" + textUserID + "/password",
			body: `{"password":"correct horse\u0000"}`, fields: []string{"password"}},
		{name: "revoke tokens, NUL user_id", method: "POST", path: "/admin/tokens/revoke",
			body: `{"user_id":"\u0000"}`, fields: []string{"user_id"}},
		{name: "revoke tokens, invalid UTF-8 client_id", method: "POST", path: "/admin/tokens/revoke",
			body: `{"client_id":"` + textClient + "\xff" + `"}`, fields: []string{"body"}},
		{name: "global policy, NUL in a list entry", method: "PATCH", path: "/admin/policies", contentType: mergePatchType,
			body: `{"session":{"reauth_for":["password_change","mfa_removal\u0000"]}}`, fields: []string{"session.reauth_for[1]"}},
		{name: "global policy, NUL in a key", method: "PATCH", path: "/admin/policies", contentType: mergePatchType,
			body: `{"tok\u0000en":{"access_token_ttl":"5m"}}`, fields: []string{`tok\u0000en`}},
		{name: "global policy, invalid UTF-8", method: "PATCH", path: "/admin/policies", contentType: mergePatchType,
			body: `{"session":{"on_limit":"reject` + "\xff" + `"}}`, fields: []string{"body"}},
		{name: "client policy, NUL in a string value", method: "PATCH", path: "/admin/clients/" + textClient + "/policies",
			contentType: mergePatchType, body: `{"token":{"access_token_ttl":"5m","format":"jwt\u0000"}}`, fields: []string{"token.format"}},
		{name: "client policy, NUL in customized_sections", method: "PATCH", path: "/admin/clients/" + textClient + "/policies",
			body: `{"customized_sections":["token\u0000"]}`, fields: []string{"customized_sections[0]"}},
	}
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			store := storagetest.Open(t, b.URL)
			e := newEnvWith(t, store, store)
			createClient(t, store, textClient)
			createUser(t, store, textUserID)
			createSession(t, store, textSession, textUserID)
			sig := createToken(t, store, textClient, textUserID, textSession)
			before := storedState(t, e, sig)

			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ct := tt.contentType
					if ct == "" && tt.body != "" {
						ct = "application/json"
					}
					rec := e.doAs(t, tt.method, tt.path, ct, tt.body)
					wantStatus(t, rec, http.StatusBadRequest)
					got := decode[errorBody](t, rec)
					if got.Error != "invalid_request" || got.Description == "" {
						t.Errorf("error = %q, description %q; want invalid_request and a description", got.Error, got.Description)
					}
					if names := fieldNames(t, rec); !slices.Equal(names, tt.fields) {
						t.Errorf("fields = %q, want %q; body %s", names, tt.fields, rec.Body)
					}
					for _, f := range got.Fields {
						if f.Message == "" || !storage.StorableText(f.Field) || !storage.StorableText(f.Message) {
							t.Errorf("field %q: message %q; want a message, both storable text", f.Field, f.Message)
						}
					}
					if after := storedState(t, e, sig); after != before {
						t.Errorf("a refused request changed the state:\nbefore %s\nafter  %s", before, after)
					}
				})
			}
		})
	}
}

// storedState renders, through the API and the store, everything the
// refused requests could change: clients, users, policies, the session
// and token, and the audit trail.
func storedState(t *testing.T, e *testEnv, sig string) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{
		"/admin/clients?limit=500",
		"/admin/users?limit=500",
		"/admin/policies",
		"/admin/clients/" + textClient + "/policies",
		"/admin/users/" + textUserID + "/sessions",
	} {
		b.WriteString(e.get(t, path))
	}
	fmt.Fprintf(&b, "active tokens %q\n", activeTokens(t, e.store, sig))
	for _, ev := range auditEvents(t, e.store, "") {
		fmt.Fprintf(&b, "event %d %s\n", ev.ID, ev.Type)
	}
	return b.String()
}

// TestUnstorableTextNeedsAToken checks the order of the checks: a caller
// without a valid admin token learns nothing but 401 or 403, whatever its
// URL holds.
func TestUnstorableTextNeedsAToken(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name   string
		token  string
		status int
	}{
		{name: "no token", status: http.StatusUnauthorized},
		{name: "unknown token", token: "forged", status: http.StatusUnauthorized},
		{name: "no admin scope", token: plainToken, status: http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, e.do(t, "GET", "/admin/clients/%00?after=%ff", tt.token, ""), tt.status)
		})
	}
}

// TestCheckJSONText covers the walk's paths and what it leaves alone.
func TestCheckJSONText(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{name: "clean", body: `{"a":"x","b":[1,2e400,true,null,{"c":"\u00e9\ud83d\ude00"}],"d":{}}`},
		{name: "lone surrogate becomes U+FFFD", body: `{"a":"\ud800"}`},
		{name: "top-level string", body: `"\u0000"`, fields: []string{"body"}},
		{name: "top-level array", body: `["ok","\u0000"]`, fields: []string{"[1]"}},
		{name: "nested", body: `{"a":{"b":[[],["x","y\u0000"]]}}`, fields: []string{"a.b[1][1]"}},
		{name: "key and its value", body: `{"\u0000":"\u0000"}`, fields: []string{`\u0000`, `\u0000`}},
		{name: "every problem in document order", body: `{"z":"\u0000","a":["\u0000"]}`, fields: []string{"z", "a[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkJSONText([]byte(tt.body))
			var names []string
			if err != nil {
				for _, f := range classify(err).fields {
					names = append(names, f.Field)
				}
			}
			if (err != nil) != (tt.fields != nil) || !slices.Equal(names, tt.fields) {
				t.Errorf("checkJSONText(%s) = %v, fields %q; want fields %q", tt.body, err, names, tt.fields)
			}
		})
	}
}

func TestPathWildcards(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{"GET /admin/clients", nil},
		{"GET /admin/clients/{id}", []string{"id"}},
		{"GET /admin/users/{id}/sessions", []string{"id"}},
		{"DELETE /admin/a/{x}/b/{y}", []string{"x", "y"}},
		{"GET /static/{path...}", []string{"path"}},
		{"GET /admin/{$}", nil},
	}
	for _, tt := range tests {
		if got := pathWildcards(tt.pattern); !slices.Equal(got, tt.want) {
			t.Errorf("pathWildcards(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

// spyTokens is a verifier that records the tokens it is asked about.
type spyTokens struct {
	fakeTokens
	asked *[]string
}

func (s spyTokens) VerifyAccessToken(ctx context.Context, token string) (*oauth.TokenInfo, error) {
	*s.asked = append(*s.asked, token)
	return s.fakeTokens.VerifyAccessToken(ctx, token)
}

// TestUnstorableBearerToken checks that a bearer token no database can
// store is refused as invalid without being looked up: the lookup would
// fail on PostgreSQL and answer 503, telling the caller to retry.
func TestUnstorableBearerToken(t *testing.T) {
	store := storagetest.Open(t, storagetest.SQLiteURL(t))
	var asked []string
	h := New(Config{Store: store, Tokens: spyTokens{fakeTokens: testTokens(), asked: &asked}})
	for _, token := range []string{"a.\xff", "admin-token\xc3"} {
		r := newRequest("GET", "/admin/clients", token, "")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		wantStatus(t, rec, http.StatusUnauthorized)
		if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("token %q: WWW-Authenticate = %q", token, got)
		}
	}
	if len(asked) != 0 {
		t.Errorf("the verifier was asked about %q", asked)
	}
}
