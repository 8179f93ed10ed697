package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// Bearer tokens known to fakeTokens.
const (
	adminToken   = "admin-token"
	plainToken   = "plain-token" // valid, without the admin scope
	expiredToken = "expired-token"
)

// fakeTokens verifies tokens by looking them up.
type fakeTokens map[string]oauth.TokenInfo

func (f fakeTokens) VerifyAccessToken(_ context.Context, token string) (*oauth.TokenInfo, error) {
	info, ok := f[token]
	if !ok {
		return nil, errors.New("fake verifier: unknown token")
	}
	return &info, nil
}

func testTokens() fakeTokens {
	later := time.Now().Add(time.Hour)
	return fakeTokens{
		adminToken:   {ClientID: "ops-cli", Subject: "root", Scopes: []string{"openid", "admin"}, ExpiresAt: later},
		plainToken:   {ClientID: "app", Subject: "alice", Scopes: []string{"openid", "profile"}, ExpiresAt: later},
		expiredToken: {ClientID: "ops-cli", Subject: "root", Scopes: []string{"admin"}, ExpiresAt: time.Now().Add(-time.Minute)},
	}
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testEnv struct {
	handler  http.Handler
	store    *storage.Store
	logs     *lockedBuffer
	policies *policystore.Engine // nil when served from a failing store
	keys     *oauth.KeyManager   // likewise
}

// newEnv serves the API over a fresh SQLite database, with a real policy
// engine, key manager and audit trail over it.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	store := storagetest.Open(t, storagetest.SQLiteURL(t))
	return newEnvWith(t, store, store)
}

// newEnvWith serves the API from s; store, if not nil, is the same data for
// direct inspection, and the policy engine, key manager, session and
// password stores run over it. Without it they fail every call.
func newEnvWith(t *testing.T, s Store, store *storage.Store) *testEnv {
	t.Helper()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	trail := testRecorder(s, logger)
	cfg := Config{
		Store:  s,
		Tokens: testTokens(),
		// Cheap parameters keep tests fast; hashing is not under test.
		Hasher: hashing.Argon2{Memory: 64, Iterations: 1, Parallelism: 1},
		Logger: logger,
		Audit:  trail,
	}
	e := &testEnv{store: store, logs: logs}
	if store != nil {
		var err error
		if e.policies, err = policystore.New(t.Context(), store, policies.Defaults(), trail, logger, time.Now); err != nil {
			t.Fatalf("policy engine: %v", err)
		}
		if e.keys, err = oauth.NewKeyManager(t.Context(), store, oauth.AlgES256, logger, time.Now, oauth.WithKeyAudit(trail)); err != nil {
			t.Fatalf("key manager: %v", err)
		}
		cfg.Policies, cfg.Keys, cfg.Sessions = e.policies, e.keys, store
		cfg.Accounts = authn.NewAccounts(authn.AccountsConfig{
			Store: store, Sessions: store, Hasher: cfg.Hasher, Recorder: trail, Policies: e.policies.For,
		})
		cfg.MFA = authn.NewSecondFactors(store, nil, "Portcullis", trail, logger, time.Now)
	} else {
		cfg.Policies, cfg.Keys, cfg.Sessions = brokenPolicies{}, brokenKeys{}, brokenStore{}
		cfg.Accounts = authn.NewAccounts(authn.AccountsConfig{Store: brokenStore{}, Sessions: brokenStore{}, Hasher: cfg.Hasher, Recorder: trail})
		cfg.MFA = brokenMFA{}
	}
	e.handler = New(cfg)
	return e
}

// newRequest builds a request with a bearer token (unless token is empty)
// and, when there is a body, Content-Type application/json.
func newRequest(method, path, token, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	// The server's middleware resolves the client address; here it is
	// httptest's peer.
	return r.WithContext(reqinfo.With(r.Context(), reqinfo.Info{IP: netip.MustParseAddr("192.0.2.1")}))
}

// serve runs r and checks what every response must have.
func (e *testEnv) serve(t *testing.T, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, r)
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s %s: Cache-Control = %q, want no-store", r.Method, r.URL, got)
	}
	if rec.Code == http.StatusNoContent {
		if rec.Body.Len() != 0 {
			t.Errorf("%s %s: 204 with body %q", r.Method, r.URL, rec.Body)
		}
		return rec
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", r.Method, r.URL, got)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Errorf("%s %s: body is not JSON: %q", r.Method, r.URL, rec.Body)
	}
	return rec
}

func (e *testEnv) do(t *testing.T, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	return e.serve(t, newRequest(method, path, token, body))
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	return v
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
}

// fieldNames lists the "field" of each entry in an error body's fields.
func fieldNames(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	var names []string
	for _, f := range decode[errorBody](t, rec).Fields {
		names = append(names, f.Field)
	}
	return names
}

// wantNoKeys fails if the JSON object in raw has any of keys.
func wantNoKeys(t *testing.T, raw []byte, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	for _, k := range keys {
		if _, ok := m[k]; ok {
			t.Errorf("response has %q: %s", k, raw)
		}
	}
}

func TestClientLifecycle(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantSecret  bool
		wantAuth    string
		wantMethods []string
	}{
		{
			name:        "confidential with generated secret",
			body:        `{"client_id":"backend","client_name":"Backend","grant_types":["client_credentials"],"scopes":["reports"]}`,
			wantSecret:  true,
			wantAuth:    "client_secret_basic",
			wantMethods: []string{"client_secret_basic", "client_secret_post"},
		},
		{
			name:        "confidential with chosen secret",
			body:        `{"client_id":"web","grant_types":["authorization_code","refresh_token"],"redirect_uris":["https://app.example.com/cb"],"client_secret":"a-secret-of-my-choosing","token_endpoint_auth_method":"client_secret_post"}`,
			wantAuth:    "client_secret_post",
			wantMethods: []string{"client_secret_post"},
		},
		{
			name:        "public",
			body:        `{"client_id":"spa","public":true,"grant_types":["authorization_code"],"redirect_uris":["http://localhost:5173/cb"],"access_token_format":"jwt","allowed_cors_origins":["http://localhost:5173"]}`,
			wantAuth:    "none",
			wantMethods: []string{"none"},
		},
		{
			name: "private_key_jwt with page links",
			body: `{"client_id":"signer","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt",` +
				`"token_endpoint_auth_signing_alg":"ES256","jwks":` + testJWKS(false) + `,` +
				`"allowed_cors_origins":["https://app.example.com","https://admin.example.com:8443"],` +
				`"logo_uri":"https://app.example.com/logo.png","policy_uri":"https://app.example.com/privacy","tos_uri":"https://app.example.com/terms"}`,
			wantAuth:    "private_key_jwt",
			wantMethods: []string{"private_key_jwt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var spec oauth.ClientSpec
			if err := json.Unmarshal([]byte(tt.body), &spec); err != nil {
				t.Fatal(err)
			}

			rec := e.do(t, "POST", "/admin/clients", adminToken, tt.body)
			wantStatus(t, rec, http.StatusCreated)
			created := decode[ClientView](t, rec)
			if created.ClientID != spec.ID || created.TokenEndpointAuthMethod != tt.wantAuth ||
				created.Public != spec.Public || created.AccessTokenFormat != spec.AccessTokenFormat ||
				!slices.Equal(created.GrantTypes, spec.GrantTypes) || created.CreatedAt.IsZero() {
				t.Errorf("created = %+v, from spec %+v", created, spec)
			}
			if slices.Contains(spec.GrantTypes, "authorization_code") && !slices.Equal(created.ResponseTypes, []string{"code"}) {
				t.Errorf("response_types = %q, want [code]", created.ResponseTypes)
			}
			if !slices.Equal(created.TokenEndpointAuthMethods, tt.wantMethods) {
				t.Errorf("token_endpoint_auth_methods = %q, want %q", created.TokenEndpointAuthMethods, tt.wantMethods)
			}
			if created.LogoURI != spec.LogoURI || created.PolicyURI != spec.PolicyURI || created.TosURI != spec.TosURI ||
				!slices.Equal(created.AllowedCORSOrigins, nonNil(spec.AllowedCORSOrigins)) ||
				created.TokenEndpointAuthSigningAlg != spec.TokenEndpointAuthSigningAlg {
				t.Errorf("client metadata = %+v, from spec %+v", created, spec)
			}
			if hasKeys := len(spec.JWKS) > 0; hasKeys != (len(created.JWKS) > 0) {
				t.Errorf("jwks = %s, want one: %v", created.JWKS, hasKeys)
			} else if hasKeys && !sameJSON(t, created.JWKS, spec.JWKS) {
				t.Errorf("jwks = %s, want %s", created.JWKS, spec.JWKS)
			}
			if len(spec.JWKS) == 0 {
				wantNoKeys(t, rec.Body.Bytes(), "jwks")
			}
			wantNoKeys(t, rec.Body.Bytes(), "secret_hash", "SecretHash")
			if tt.wantSecret != (created.ClientSecret != "") {
				t.Fatalf("client_secret = %q, want one: %v", created.ClientSecret, tt.wantSecret)
			}
			if tt.wantSecret {
				stored, err := e.store.Client(t.Context(), spec.ID)
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := hashing.Verify(stored.SecretHash, created.ClientSecret); !ok || err != nil {
					t.Errorf("returned secret does not match the stored hash: %v, %v", ok, err)
				}
			} else {
				wantNoKeys(t, rec.Body.Bytes(), "client_secret")
			}

			rec = e.do(t, "GET", "/admin/clients/"+spec.ID, adminToken, "")
			wantStatus(t, rec, http.StatusOK)
			wantNoKeys(t, rec.Body.Bytes(), "client_secret", "secret_hash", "SecretHash")
			got := decode[ClientView](t, rec)
			created.ClientSecret = ""
			if !got.CreatedAt.Equal(created.CreatedAt) {
				t.Errorf("created_at = %v, want %v", got.CreatedAt, created.CreatedAt)
			}
			got.CreatedAt, got.UpdatedAt = created.CreatedAt, created.UpdatedAt
			if fmt.Sprint(got) != fmt.Sprint(created) {
				t.Errorf("GET = %+v\nwant %+v", got, created)
			}

			rec = e.do(t, "GET", "/admin/clients", adminToken, "")
			wantStatus(t, rec, http.StatusOK)
			if strings.Contains(rec.Body.String(), `"client_secret":`) || strings.Contains(rec.Body.String(), "$sha256$") {
				t.Errorf("list leaks a secret: %s", rec.Body)
			}
			list := decode[listPage[ClientView]](t, rec)
			if len(list.Items) != 1 || list.Items[0].ClientID != spec.ID || list.Next != "" {
				t.Errorf("list = %+v", list)
			}

			wantStatus(t, e.do(t, "DELETE", "/admin/clients/"+spec.ID, adminToken, ""), http.StatusNoContent)
			wantStatus(t, e.do(t, "GET", "/admin/clients/"+spec.ID, adminToken, ""), http.StatusNotFound)
			wantStatus(t, e.do(t, "DELETE", "/admin/clients/"+spec.ID, adminToken, ""), http.StatusNotFound)
			if !strings.Contains(e.logs.String(), "admin: client created") || !strings.Contains(e.logs.String(), "actor_subject=root") {
				t.Errorf("no audit line in log:\n%s", e.logs)
			}
		})
	}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return fmt.Sprint(va) == fmt.Sprint(vb)
}

func TestUserLifecycle(t *testing.T) {
	tests := []struct {
		name string
		body string
		want UserView
	}{
		{
			name: "minimal",
			body: `{"username":"bob","password":"correct horse"}`,
			want: UserView{Username: "bob"},
		},
		{
			name: "everything, username folded",
			body: `{"username":"  Alice ","password":"correct horse battery","email":"alice@example.com","email_verified":true,"admin":true}`,
			want: UserView{Username: "alice", Email: "alice@example.com", EmailVerified: true, Admin: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(t, "POST", "/admin/users", adminToken, tt.body)
			wantStatus(t, rec, http.StatusCreated)
			wantNoKeys(t, rec.Body.Bytes(), "password", "password_hash", "PasswordHash")
			if strings.Contains(rec.Body.String(), "argon2") {
				t.Errorf("response leaks the hash: %s", rec.Body)
			}
			created := decode[UserView](t, rec)
			if created.ID == "" || created.CreatedAt.IsZero() {
				t.Errorf("created = %+v, want an id and created_at", created)
			}
			want := tt.want
			want.ID, want.CreatedAt, want.UpdatedAt = created.ID, created.CreatedAt, created.UpdatedAt
			if created.PasswordChangedAt == nil {
				t.Errorf("created = %+v, want password_changed_at", created)
			}
			want.PasswordChangedAt = created.PasswordChangedAt
			if created != want {
				t.Errorf("created = %+v, want %+v", created, want)
			}

			rec = e.do(t, "GET", "/admin/users/"+created.ID, adminToken, "")
			wantStatus(t, rec, http.StatusOK)
			wantNoKeys(t, rec.Body.Bytes(), "password", "password_hash", "PasswordHash")
			if got := decode[UserView](t, rec); got.ID != created.ID || got.Username != want.Username || !got.CreatedAt.Equal(created.CreatedAt) {
				t.Errorf("GET = %+v, want %+v", got, created)
			}

			rec = e.do(t, "GET", "/admin/users", adminToken, "")
			wantStatus(t, rec, http.StatusOK)
			if list := decode[listPage[UserView]](t, rec); len(list.Items) != 1 || list.Items[0].ID != created.ID || list.Next != "" {
				t.Errorf("list = %+v", list)
			}

			wantStatus(t, e.do(t, "DELETE", "/admin/users/"+created.ID, adminToken, ""), http.StatusNoContent)
			wantStatus(t, e.do(t, "GET", "/admin/users/"+created.ID, adminToken, ""), http.StatusNotFound)
			wantStatus(t, e.do(t, "DELETE", "/admin/users/"+created.ID, adminToken, ""), http.StatusNotFound)
		})
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	var clientIDs, userIDs []string
	for _, name := range []string{"c", "a", "e", "b", "d"} {
		rec := e.do(t, "POST", "/admin/clients", adminToken,
			`{"client_id":"`+name+`","grant_types":["client_credentials"]}`)
		wantStatus(t, rec, http.StatusCreated)
		rec = e.do(t, "POST", "/admin/users", adminToken, `{"username":"user-`+name+`","password":"password"}`)
		wantStatus(t, rec, http.StatusCreated)
		userIDs = append(userIDs, decode[UserView](t, rec).ID)
		clientIDs = append(clientIDs, name)
	}
	slices.Sort(clientIDs)
	slices.Sort(userIDs)

	type page struct {
		ids  []string
		next string
	}
	list := func(t *testing.T, path string) page {
		rec := e.do(t, "GET", path, adminToken, "")
		wantStatus(t, rec, http.StatusOK)
		var p listPage[map[string]any]
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, item := range p.Items {
			id, _ := item["client_id"].(string)
			if id == "" {
				id, _ = item["id"].(string)
			}
			ids = append(ids, id)
		}
		return page{ids, p.Next}
	}

	for _, kind := range []struct {
		path string
		ids  []string
	}{
		{"/admin/clients", clientIDs},
		{"/admin/users", userIDs},
	} {
		tests := []struct {
			name  string
			query string
			want  page
		}{
			{"default limit", "", page{kind.ids, ""}},
			{"first page", "?limit=2", page{kind.ids[:2], kind.ids[1]}},
			{"middle page", "?limit=2&after=" + kind.ids[1], page{kind.ids[2:4], kind.ids[3]}},
			{"last page", "?limit=2&after=" + kind.ids[3], page{kind.ids[4:], ""}},
			{"exact fit leaves no next", "?limit=5", page{kind.ids, ""}},
			{"past the end", "?after=" + kind.ids[4], page{nil, ""}},
			{"max limit", "?limit=500", page{kind.ids, ""}},
		}
		for _, tt := range tests {
			t.Run(kind.path+" "+tt.name, func(t *testing.T) {
				got := list(t, kind.path+tt.query)
				if !slices.Equal(got.ids, tt.want.ids) || got.next != tt.want.next {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			})
		}
		t.Run(kind.path+" walk", func(t *testing.T) {
			var walked []string
			after := ""
			for range len(kind.ids) + 1 {
				p := list(t, kind.path+"?limit=2&after="+after)
				walked = append(walked, p.ids...)
				if after = p.next; after == "" {
					break
				}
			}
			if !slices.Equal(walked, kind.ids) {
				t.Errorf("walked %q, want %q", walked, kind.ids)
			}
		})
	}

	// An empty list is [], not null.
	empty := newEnv(t)
	for _, path := range []string{"/admin/clients", "/admin/users"} {
		rec := empty.do(t, "GET", path, adminToken, "")
		wantStatus(t, rec, http.StatusOK)
		if got := strings.TrimSpace(rec.Body.String()); got != `{"items":[],"next":""}` {
			t.Errorf("GET %s on empty store = %s", path, got)
		}
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	routes := []struct{ method, path, body string }{
		{"POST", "/admin/clients", `{"client_id":"x","grant_types":["client_credentials"]}`},
		{"GET", "/admin/clients", ""},
		{"GET", "/admin/clients/x", ""},
		{"DELETE", "/admin/clients/x", ""},
		{"POST", "/admin/users", `{"username":"x","password":"password"}`},
		{"GET", "/admin/users", ""},
		{"GET", "/admin/users/x", ""},
		{"DELETE", "/admin/users/x", ""},
		{"GET", "/admin/policies", ""},
		{"PATCH", "/admin/policies", `{"token":{"access_token_ttl":"1m"}}`},
		{"GET", "/admin/clients/x/policies", ""},
		{"PATCH", "/admin/clients/x/policies", `{"customized":true}`},
		{"GET", "/admin/users/x/sessions", ""},
		{"DELETE", "/admin/users/x/sessions", ""},
		{"DELETE", "/admin/sessions/x", ""},
		{"POST", "/admin/tokens/revoke", `{}`},
		{"POST", "/admin/keys/rotate", `{"revoke_existing":true}`},
		{"PUT", "/admin/users/x/password", `{"password":"correct horse"}`},
	}
	createClient(t, e.store, "web")
	token := createToken(t, e.store, "web", "", "")
	policy := e.get(t, "/admin/policies")
	keys := e.keys.JWKS()
	tests := []struct {
		name          string
		authorization string
		status        int
		challenge     string
		code          string
	}{
		{"no header", "", http.StatusUnauthorized, "Bearer", "invalid_token"},
		{"other scheme", "Basic YWRtaW46YWRtaW4=", http.StatusUnauthorized, "Bearer", "invalid_token"},
		{"empty token", "Bearer ", http.StatusUnauthorized, `Bearer error="invalid_token"`, "invalid_token"},
		{"unknown token", "Bearer forged", http.StatusUnauthorized, `Bearer error="invalid_token"`, "invalid_token"},
		{"expired token", "Bearer " + expiredToken, http.StatusUnauthorized, `Bearer error="invalid_token"`, "invalid_token"},
		{"no admin scope", "Bearer " + plainToken, http.StatusForbidden, `Bearer error="insufficient_scope", scope="admin"`, "insufficient_scope"},
	}
	for _, tt := range tests {
		for _, rt := range routes {
			t.Run(tt.name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				r := newRequest(rt.method, rt.path, "", rt.body)
				if tt.authorization != "" {
					r.Header.Set("Authorization", tt.authorization)
				}
				rec := e.serve(t, r)
				wantStatus(t, rec, tt.status)
				if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
					t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
				}
				if got := decode[errorBody](t, rec).Error; got != tt.code {
					t.Errorf("error = %q, want %q", got, tt.code)
				}
			})
		}
	}
	// Nothing was created by all those refused requests.
	for _, path := range []string{"/admin/users"} {
		rec := e.do(t, "GET", path, adminToken, "")
		if got := strings.TrimSpace(rec.Body.String()); got != `{"items":[],"next":""}` {
			t.Errorf("after refused requests, GET %s = %s", path, got)
		}
	}
	if got := decode[listPage[ClientView]](t, e.do(t, "GET", "/admin/clients", adminToken, "")); len(got.Items) != 1 {
		t.Errorf("after refused requests, %d clients, want only the fixture", len(got.Items))
	}
	// Nor was anything changed or revoked.
	if got := e.get(t, "/admin/policies"); got != policy {
		t.Errorf("refused requests changed the policy: %s", got)
	}
	if !bytes.Equal(e.keys.JWKS(), keys) || !tokenActive(t, e.store, token) {
		t.Error("refused requests rotated keys or revoked tokens")
	}

	t.Run("lower-case scheme accepted", func(t *testing.T) {
		r := newRequest("GET", "/admin/clients", "", "")
		r.Header.Set("Authorization", "bearer "+adminToken)
		wantStatus(t, e.serve(t, r), http.StatusOK)
	})
	t.Run("openapi.json is public", func(t *testing.T) {
		rec := e.do(t, "GET", "/admin/openapi.json", "", "")
		wantStatus(t, rec, http.StatusOK)
		if !bytes.Equal(rec.Body.Bytes(), openAPIDocument) {
			t.Error("served document differs from the embedded one")
		}
	})
}

// snapshot is every client and user, to prove a refused request changed
// nothing.
func snapshot(t *testing.T, store *storage.Store) string {
	t.Helper()
	clients, err := store.ListClients(t.Context(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	users, err := store.ListUsers(t.Context(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal([]any{clients, users})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.do(t, "POST", "/admin/clients", adminToken, `{"client_id":"taken","grant_types":["client_credentials"]}`), http.StatusCreated)
	wantStatus(t, e.do(t, "POST", "/admin/users", adminToken, `{"username":"taken","password":"password"}`), http.StatusCreated)

	huge := `{"client_id":"big","grant_types":["client_credentials"],"client_name":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string // "-" sends none; "" means application/json
		body        string
		status      int
		code        string
		fields      []string
	}{
		{name: "client unknown field", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"],"redirect_uri":"https://x.example/cb"}`,
			status: 400, code: "invalid_request", fields: []string{"redirect_uri"}},
		{name: "client id wrong type", path: "/admin/clients",
			body:   `{"client_id":5,"grant_types":["client_credentials"]}`,
			status: 400, code: "invalid_request", fields: []string{"client_id"}},
		{name: "client list given a string", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":"client_credentials"}`,
			status: 400, code: "invalid_request", fields: []string{"grant_types"}},
		{name: "client list element wrong type", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["authorization_code"],"redirect_uris":[42]}`,
			status: 400, code: "invalid_request", fields: []string{"redirect_uris"}},
		{name: "client bool given a string", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"],"public":"yes"}`,
			status: 400, code: "invalid_request", fields: []string{"public"}},
		{name: "user unknown field", path: "/admin/users",
			body:   `{"username":"n","password":"password","role":"admin"}`,
			status: 400, code: "invalid_request", fields: []string{"role"}},
		{name: "user bool given a string", path: "/admin/users",
			body:   `{"username":"n","password":"password","admin":"true"}`,
			status: 400, code: "invalid_request", fields: []string{"admin"}},
		{name: "malformed JSON", path: "/admin/clients", body: `{"client_id":"n",`, status: 400, code: "invalid_request"},
		{name: "syntax error", path: "/admin/users", body: `{"username":'n'}`, status: 400, code: "invalid_request"},
		{name: "empty body", path: "/admin/users", body: "", status: 400, code: "invalid_request"},
		{name: "two JSON values", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"]} {}`,
			status: 400, code: "invalid_request"},
		{name: "array instead of object", path: "/admin/users", body: `[]`, status: 400, code: "invalid_request"},
		{name: "text/plain", path: "/admin/clients", contentType: "text/plain",
			body: `{"client_id":"n","grant_types":["client_credentials"]}`, status: 415, code: "invalid_request"},
		{name: "form encoded", path: "/admin/users", contentType: "application/x-www-form-urlencoded",
			body: `username=n&password=password`, status: 415, code: "invalid_request"},
		{name: "no content type", path: "/admin/users", contentType: "-",
			body: `{"username":"n","password":"password"}`, status: 415, code: "invalid_request"},
		{name: "oversized body", path: "/admin/clients", body: huge, status: 413, code: "invalid_request"},
		{name: "client validation", path: "/admin/clients",
			body:   `{"client_id":"bad id","grant_types":["implicit","authorization_code"],"redirect_uris":["http://example.com/cb#frag"],"access_token_format":"xml"}`,
			status: 422, code: "invalid_request",
			fields: []string{"client_id", "grant_types[0]", "redirect_uris[0]", "access_token_format"}},
		{name: "client id dot-dot", path: "/admin/clients",
			body:   `{"client_id":"..","grant_types":["client_credentials"]}`,
			status: 422, code: "invalid_request", fields: []string{"client_id"}},
		{name: "client id dot-dot and more", path: "/admin/clients",
			body:   `{"client_id":"..","grant_types":["client_credentials"],"client_secret":"short"}`,
			status: 422, code: "invalid_request", fields: []string{"client_id", "client_secret"}},
		{name: "public client with secret", path: "/admin/clients",
			body:   `{"client_id":"n","public":true,"grant_types":["client_credentials"],"client_secret":"0123456789abcdefghij"}`,
			status: 422, code: "invalid_request", fields: []string{"client_secret", "grant_types"}},
		{name: "client metadata validation", path: "/admin/clients",
			body: `{"client_id":"n","grant_types":["client_credentials"],"jwks":` + testJWKS(false) + `,"token_endpoint_auth_signing_alg":"ES256",` +
				`"allowed_cors_origins":["https://App.example.com","http://app.example.com","https://app.example.com/cb"],` +
				`"logo_uri":"http://app.example.com/logo.png","policy_uri":"/privacy","tos_uri":"https://user@app.example.com/terms"}`,
			status: 422, code: "invalid_request",
			fields: []string{"jwks", "token_endpoint_auth_signing_alg", "allowed_cors_origins[0]", "allowed_cors_origins[1]",
				"allowed_cors_origins[2]", "logo_uri", "policy_uri", "tos_uri"}},
		{name: "cors origin twice", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"],"allowed_cors_origins":["https://app.example.com","https://app.example.com"]}`,
			status: 422, code: "invalid_request", fields: []string{"allowed_cors_origins[1]"}},
		{name: "private_key_jwt without keys", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"HS256"}`,
			status: 422, code: "invalid_request", fields: []string{"jwks", "token_endpoint_auth_signing_alg"}},
		{name: "private_key_jwt with a secret", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","client_secret":"0123456789abcdefghij","jwks":` + testJWKS(false) + `}`,
			status: 422, code: "invalid_request", fields: []string{"client_secret"}},
		{name: "private_key_jwt with a private key", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":` + testJWKS(true) + `}`,
			status: 422, code: "invalid_request", fields: []string{"jwks"}},
		{name: "jwks not a key set", path: "/admin/clients",
			body:   `{"client_id":"n","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":"keys"}`,
			status: 422, code: "invalid_request", fields: []string{"jwks"}},
		{name: "null body", path: "/admin/clients", body: `null`,
			status: 422, code: "invalid_request", fields: []string{"client_id", "grant_types"}},
		{name: "user validation", path: "/admin/users",
			body:   `{"username":" ","password":"short","email":"not an address"}`,
			status: 422, code: "invalid_request", fields: []string{"username", "password", "email"}},
		{name: "user verified without email", path: "/admin/users",
			body:   `{"username":"n","password":"password","email_verified":true}`,
			status: 422, code: "invalid_request", fields: []string{"email_verified"}},
		{name: "duplicate client", path: "/admin/clients",
			body:   `{"client_id":"taken","grant_types":["client_credentials"]}`,
			status: 409, code: "conflict"},
		{name: "duplicate username, other case", path: "/admin/users",
			body:   `{"username":"TAKEN","password":"password"}`,
			status: 409, code: "conflict"},
		{name: "limit zero", method: "GET", path: "/admin/clients?limit=0", status: 400, code: "invalid_request", fields: []string{"limit"}},
		{name: "limit too big", method: "GET", path: "/admin/users?limit=501", status: 400, code: "invalid_request", fields: []string{"limit"}},
		{name: "limit not a number", method: "GET", path: "/admin/clients?limit=ten", status: 400, code: "invalid_request", fields: []string{"limit"}},
		{name: "limit empty", method: "GET", path: "/admin/users?limit=", status: 400, code: "invalid_request", fields: []string{"limit"}},
		{name: "missing client", method: "GET", path: "/admin/clients/nobody", status: 404, code: "not_found"},
		{name: "delete missing client", method: "DELETE", path: "/admin/clients/nobody", status: 404, code: "not_found"},
		{name: "missing user", method: "GET", path: "/admin/users/0190a4b6-0000-7000-8000-000000000000", status: 404, code: "not_found"},
		{name: "delete missing user", method: "DELETE", path: "/admin/users/nobody", status: 404, code: "not_found"},
		{name: "unknown path", method: "GET", path: "/admin/keys", status: 404, code: "not_found"},
		{name: "unknown method", method: "PUT", path: "/admin/clients/taken", body: `{}`, status: 405, code: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, e.store)
			method := tt.method
			if method == "" {
				method = "POST"
			}
			r := newRequest(method, tt.path, adminToken, tt.body)
			switch tt.contentType {
			case "":
				r.Header.Set("Content-Type", "application/json")
			case "-":
				r.Header.Del("Content-Type")
			default:
				r.Header.Set("Content-Type", tt.contentType)
			}
			rec := e.serve(t, r)
			wantStatus(t, rec, tt.status)
			body := decode[errorBody](t, rec)
			if body.Error != tt.code {
				t.Errorf("error = %q, want %q", body.Error, tt.code)
			}
			if tt.status == 400 || tt.status == 409 || tt.status == 413 || tt.status == 415 {
				if body.Description == "" {
					t.Errorf("no error_description: %s", rec.Body)
				}
			}
			if got := fieldNames(t, rec); !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q; body %s", got, tt.fields, rec.Body)
			}
			if after := snapshot(t, e.store); after != before {
				t.Errorf("bad input changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	t.Run("405 names the allowed methods", func(t *testing.T) {
		rec := e.do(t, "PATCH", "/admin/users", adminToken, "")
		wantStatus(t, rec, http.StatusMethodNotAllowed)
		if got := rec.Header().Get("Allow"); !strings.Contains(got, "GET") || !strings.Contains(got, "POST") {
			t.Errorf("Allow = %q", got)
		}
	})
	t.Run("charset parameter accepted", func(t *testing.T) {
		r := newRequest("POST", "/admin/clients", adminToken, `{"client_id":"charset","grant_types":["client_credentials"]}`)
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
		wantStatus(t, e.serve(t, r), http.StatusCreated)
	})
}

// brokenStore fails every call, as a database that went away would.
type brokenStore struct{}

const brokenMsg = "database is on fire"

func (brokenStore) fail(op string) error { return fmt.Errorf("%s: %s", op, brokenMsg) }
func (s brokenStore) CreateClient(context.Context, *storage.Client) error {
	return s.fail("create client")
}
func (s brokenStore) Client(context.Context, string) (*storage.Client, error) {
	return nil, s.fail("get client")
}
func (s brokenStore) ListClients(context.Context, string, int) ([]storage.Client, error) {
	return nil, s.fail("list clients")
}
func (s brokenStore) DeleteClient(context.Context, string) error { return s.fail("delete client") }
func (s brokenStore) CreateUser(context.Context, *storage.User) error {
	return s.fail("create user")
}
func (s brokenStore) User(context.Context, string) (*storage.User, error) {
	return nil, s.fail("get user")
}
func (s brokenStore) ListUsers(context.Context, string, int) ([]storage.User, error) {
	return nil, s.fail("list users")
}
func (s brokenStore) DeleteUser(context.Context, string) error { return s.fail("delete user") }
func (s brokenStore) UserBrowserSessions(context.Context, string) ([]storage.BrowserSession, error) {
	return nil, s.fail("list browser sessions")
}
func (s brokenStore) BrowserSessionIncludingExpired(context.Context, string) (*storage.BrowserSession, error) {
	return nil, s.fail("get browser session")
}
func (s brokenStore) EndBrowserSession(context.Context, string) (bool, error) {
	return false, s.fail("end browser session")
}
func (s brokenStore) EndUserSessions(context.Context, string, string) ([]string, error) {
	return nil, s.fail("end user sessions")
}
func (s brokenStore) RevokeTokens(context.Context, storage.TokenFilter) (int64, error) {
	return 0, s.fail("revoke tokens")
}
func (s brokenStore) SetPassword(context.Context, string, storage.PasswordWrite) error {
	return s.fail("set password")
}

func (s brokenStore) InvalidateAccountLinks(context.Context, string, string) (int64, error) {
	return 0, s.fail("invalidate account links")
}

func (s brokenStore) PasswordHistory(context.Context, string, int) ([]storage.PasswordHistoryEntry, error) {
	return nil, s.fail("get password history")
}

// brokenPolicies is a policy engine whose database went away: it still
// answers from memory, but every change fails.
type brokenPolicies struct{}

func (brokenPolicies) Global() policies.Policy { return policies.Defaults() }
func (brokenPolicies) Client(string) (bool, policies.Policy) {
	return false, policies.Defaults()
}
func (brokenPolicies) PatchGlobal(context.Context, string, []byte) (*policystore.Change, error) {
	return nil, brokenStore{}.fail("patch global policy")
}
func (brokenPolicies) PatchClient(context.Context, string, string, []byte) (*policystore.Change, error) {
	return nil, brokenStore{}.fail("patch client policy")
}

// brokenKeys is a key manager whose database went away.
type brokenKeys struct{}

func (brokenKeys) RotateBy(context.Context, string, bool) (string, int64, error) {
	return "", 0, brokenStore{}.fail("rotate signing key")
}
func (brokenKeys) Algorithm() string { return oauth.AlgES256 }

func TestServerError(t *testing.T) {
	e := newEnvWith(t, brokenStore{}, nil)
	tests := []struct{ method, path, body string }{
		{"POST", "/admin/clients", `{"client_id":"x","grant_types":["client_credentials"]}`},
		{"GET", "/admin/clients", ""},
		{"GET", "/admin/clients/x", ""},
		{"DELETE", "/admin/clients/x", ""},
		{"POST", "/admin/users", `{"username":"x","password":"password"}`},
		{"GET", "/admin/users", ""},
		{"GET", "/admin/users/x", ""},
		{"DELETE", "/admin/users/x", ""},
		{"PATCH", "/admin/policies", `{"token":{"access_token_ttl":"1m"}}`},
		{"GET", "/admin/clients/x/policies", ""},
		{"PATCH", "/admin/clients/x/policies", `{"customized":true}`},
		{"GET", "/admin/users/x/sessions", ""},
		{"DELETE", "/admin/users/x/sessions", ""},
		{"DELETE", "/admin/sessions/x", ""},
		{"POST", "/admin/tokens/revoke", `{}`},
		{"POST", "/admin/keys/rotate", ""},
		{"PUT", "/admin/users/x/password", `{"password":"correct horse"}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			logged := len(e.logs.String())
			rec := e.do(t, tt.method, tt.path, adminToken, tt.body)
			wantStatus(t, rec, http.StatusInternalServerError)
			if got := strings.TrimSpace(rec.Body.String()); got != `{"error":"server_error"}` {
				t.Errorf("body = %s, want only the error code", got)
			}
			if log := e.logs.String()[logged:]; !strings.Contains(log, brokenMsg) || !strings.Contains(log, "level=ERROR") {
				t.Errorf("the cause was not logged as an error:\n%s", log)
			}
		})
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no store", Config{Tokens: fakeTokens{}}},
		{"no verifier", Config{Store: brokenStore{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			New(tt.cfg)
		})
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	// The message of a type error says what was expected, not Go types.
	tests := []struct {
		body string
		want string
	}{
		{`{"client_id":5}`, "got JSON number, want a string"},
		{`{"public":"yes"}`, "got JSON string, want a boolean"},
		{`{"scopes":{}}`, "got JSON object, want an array"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var spec oauth.ClientSpec
			err := json.Unmarshal([]byte(tt.body), &spec)
			ae := classify(decodeError(err))
			if len(ae.fields) != 1 || ae.fields[0].Message != tt.want {
				t.Errorf("fields = %+v, want message %q", ae.fields, tt.want)
			}
		})
	}
}
