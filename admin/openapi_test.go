package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/portcullis/portcullis/storage"
)

func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// apiCall is one real request, what the API must answer, and whether the
// document accepts the request. Requests the server refuses as malformed
// must be refused by the document too, which proves it is as strict.
type apiCall struct {
	name        string
	broken      bool // served from a store that fails every call
	method      string
	path        string
	token       string // "" sends no Authorization header
	contentType string // overrides application/json
	body        string
	status      int
	docAccepts  bool
}

const (
	seedClient    = "seed-client"
	doomedClient  = "doomed-client"
	seedUserID    = "0190a4b6-1111-7000-8000-000000000001"
	doomedUserID  = "0190a4b6-1111-7000-8000-000000000002"
	validClient   = `{"client_id":"%s","grant_types":["client_credentials"]}`
	validUser     = `{"username":"%s","password":"correct horse"}`
	missingClient = "/admin/clients/nobody"
	missingUser   = "/admin/users/0190a4b6-0000-7000-8000-000000000000"
)

// protectedCalls are, per protected operation, a call that would succeed
// with an admin token; the failure cases every operation shares are derived
// from them.
func protectedCalls() []apiCall {
	return []apiCall{
		{method: "POST", path: "/admin/clients", body: fmt.Sprintf(validClient, "shared"), status: 201},
		{method: "GET", path: "/admin/clients", status: 200},
		{method: "GET", path: "/admin/clients/" + seedClient, status: 200},
		{method: "DELETE", path: "/admin/clients/" + seedClient, status: 204},
		{method: "POST", path: "/admin/users", body: fmt.Sprintf(validUser, "shared"), status: 201},
		{method: "GET", path: "/admin/users", status: 200},
		{method: "GET", path: "/admin/users/" + seedUserID, status: 200},
		{method: "DELETE", path: "/admin/users/" + seedUserID, status: 204},
		{method: "GET", path: "/admin/audit", status: 200},
	}
}

func apiCalls() []apiCall {
	huge := `{"client_id":"big","grant_types":["client_credentials"],"client_name":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	hugeUser := `{"username":"big","password":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	calls := []apiCall{
		{name: "openapi document", method: "GET", path: "/admin/openapi.json", status: 200, docAccepts: true},

		{name: "create client, generated secret", method: "POST", path: "/admin/clients", token: adminToken,
			body:   `{"client_id":"gen","client_name":"Generated","grant_types":["client_credentials"],"scopes":["reports:read"],"audience":["https://api.example.com"]}`,
			status: 201, docAccepts: true},
		{name: "create client, every field", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"full","client_name":"Full","client_secret":"a-secret-of-my-choosing",` +
				`"redirect_uris":["https://app.example.com/cb"],"post_logout_redirect_uris":["https://app.example.com/"],` +
				`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"scopes":["openid","profile"],` +
				`"audience":[],"public":false,"skip_consent":true,"token_endpoint_auth_method":"client_secret_post","access_token_format":"opaque"}`,
			status: 201, docAccepts: true},
		{name: "create public client", method: "POST", path: "/admin/clients", token: adminToken,
			body:   `{"client_id":"spa","public":true,"grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1:8080/cb"],"token_endpoint_auth_method":"none"}`,
			status: 201, docAccepts: true},
		{name: "client unknown field", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"x","grant_types":["client_credentials"],"secret":"x"}`, status: 400},
		{name: "client wrong type", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"x","grant_types":["client_credentials"],"skip_consent":"yes"}`, status: 400},
		{name: "client malformed JSON", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":`, status: 400},
		{name: "client conflict", method: "POST", path: "/admin/clients", token: adminToken,
			body: fmt.Sprintf(validClient, doomedClient), status: 409, docAccepts: true},
		{name: "client too large", method: "POST", path: "/admin/clients", token: adminToken,
			body: huge, status: 413, docAccepts: true},
		{name: "client wrong content type", method: "POST", path: "/admin/clients", token: adminToken,
			contentType: "text/plain", body: fmt.Sprintf(validClient, "x"), status: 415},
		{name: "client semantic validation", method: "POST", path: "/admin/clients", token: adminToken,
			body:   `{"client_id":"x","grant_types":["authorization_code"],"post_logout_redirect_uris":["ftp:relative"]}`,
			status: 422, docAccepts: true},
		{name: "client schema and semantic validation", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"bad id","grant_types":["implicit"]}`, status: 422},
		{name: "list clients, page", method: "GET", path: "/admin/clients?limit=1&after=a", token: adminToken,
			status: 200, docAccepts: true},
		{name: "list clients, bad limit", method: "GET", path: "/admin/clients?limit=0", token: adminToken, status: 400},
		{name: "list clients, limit too big", method: "GET", path: "/admin/clients?limit=501", token: adminToken, status: 400},
		{name: "get missing client", method: "GET", path: missingClient, token: adminToken, status: 404, docAccepts: true},
		{name: "delete client", method: "DELETE", path: "/admin/clients/" + doomedClient, token: adminToken,
			status: 204, docAccepts: true},
		{name: "delete missing client", method: "DELETE", path: missingClient, token: adminToken, status: 404, docAccepts: true},

		{name: "create user", method: "POST", path: "/admin/users", token: adminToken,
			body:   `{"username":"Carol","password":"correct horse","email":"carol@example.com","email_verified":true,"admin":true}`,
			status: 201, docAccepts: true},
		{name: "user unknown field", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"x","password":"correct horse","disabled":true}`, status: 400},
		{name: "user wrong type", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"x","password":12345678}`, status: 400},
		{name: "user not an object", method: "POST", path: "/admin/users", token: adminToken,
			body: `["x"]`, status: 400},
		{name: "user conflict", method: "POST", path: "/admin/users", token: adminToken,
			body: fmt.Sprintf(validUser, "DOOMED"), status: 409, docAccepts: true},
		{name: "user too large", method: "POST", path: "/admin/users", token: adminToken,
			body: hugeUser, status: 413, docAccepts: true},
		{name: "user wrong content type", method: "POST", path: "/admin/users", token: adminToken,
			contentType: "application/xml", body: `<user/>`, status: 415},
		{name: "user semantic validation", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"x","password":"correct horse","email_verified":true}`, status: 422, docAccepts: true},
		{name: "user schema and semantic validation", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"","password":"short"}`, status: 422},
		{name: "list users, page", method: "GET", path: "/admin/users?limit=1", token: adminToken, status: 200, docAccepts: true},
		{name: "list users, bad limit", method: "GET", path: "/admin/users?limit=many", token: adminToken, status: 400},
		{name: "get missing user", method: "GET", path: missingUser, token: adminToken, status: 404, docAccepts: true},
		{name: "delete user", method: "DELETE", path: "/admin/users/" + doomedUserID, token: adminToken,
			status: 204, docAccepts: true},
		{name: "delete missing user", method: "DELETE", path: missingUser, token: adminToken, status: 404, docAccepts: true},

		{name: "audit events, filtered", method: "GET", token: adminToken, status: 200, docAccepts: true,
			path: "/admin/audit?type=client.created&user_id=&client_id=gen&ip=192.0.2.1&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00.5%2B01:00&limit=2"},
		{name: "audit events, bad cursor", method: "GET", path: "/admin/audit?cursor=not-a-cursor", token: adminToken, status: 400, docAccepts: true},
		{name: "audit events, bad limit", method: "GET", path: "/admin/audit?limit=0", token: adminToken, status: 400},
		{name: "audit events, bad time", method: "GET", path: "/admin/audit?from=yesterday", token: adminToken, status: 400},
	}
	for _, c := range protectedCalls() {
		op := c.method + " " + c.path
		refused := c
		refused.status = http.StatusUnauthorized
		refused.name, refused.docAccepts = op+" without a token", false
		calls = append(calls, refused)
		refused.name, refused.token, refused.docAccepts = op+" with an unknown token", "forged", true
		calls = append(calls, refused)
		refused.name, refused.token, refused.status = op+" without the admin scope", plainToken, http.StatusForbidden
		calls = append(calls, refused)
		broken := c
		broken.name, broken.token, broken.broken, broken.status, broken.docAccepts = op+" with a failing store", adminToken, true, 500, true
		calls = append(calls, broken)
	}
	// The successes go last: they delete the seeds the calls above read.
	for _, c := range protectedCalls() {
		c.name, c.token, c.docAccepts = c.method+" "+c.path, adminToken, true
		calls = append(calls, c)
	}
	return calls
}

func seed(t *testing.T, store *storage.Store) {
	t.Helper()
	ctx := t.Context()
	for _, id := range []string{seedClient, doomedClient} {
		c := &storage.Client{ID: id, GrantTypes: []string{"client_credentials"}, SecretHash: "$sha256$x"}
		if err := store.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for id, name := range map[string]string{seedUserID: "seed", doomedUserID: "doomed"} {
		if err := store.CreateUser(ctx, &storage.User{ID: id, Username: name, PasswordHash: "$argon2id$x"}); err != nil {
			t.Fatal(err)
		}
	}
}

// requireBearer stands in for real authentication during request
// validation: the document only promises that a bearer token is sent.
func requireBearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "bearerAuth" {
		return fmt.Errorf("unexpected security scheme %q", in.SecuritySchemeName)
	}
	scheme, token, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// TestOpenAPIMatchesAPI replays real calls through the document: every
// request and response must agree with it, every documented operation and
// status must be exercised, and every served route must be documented.
func TestOpenAPIMatchesAPI(t *testing.T) {
	doc := loadDocument(t)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	e := newEnv(t)
	seed(t, e.store)
	broken := newEnvWith(t, brokenStore{}, nil)
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    requireBearer,
	}

	exercised := map[string]map[string]bool{} // "METHOD /path" → statuses
	for _, c := range apiCalls() {
		t.Run(c.name, func(t *testing.T) {
			env := e
			if c.broken {
				env = broken
			}
			served := newRequest(c.method, c.path, c.token, c.body)
			validated := newRequest(c.method, c.path, c.token, c.body)
			if c.contentType != "" {
				served.Header.Set("Content-Type", c.contentType)
				validated.Header.Set("Content-Type", c.contentType)
			}
			rec := env.serve(t, served)
			if rec.Code != c.status {
				t.Fatalf("status = %d, want %d; body %.300s", rec.Code, c.status, rec.Body)
			}

			route, params, err := router.FindRoute(validated)
			if err != nil {
				t.Fatalf("the document has no route for %s %s: %v", c.method, c.path, err)
			}
			key := route.Method + " " + route.Path
			if exercised[key] == nil {
				exercised[key] = map[string]bool{}
			}
			exercised[key][strconv.Itoa(rec.Code)] = true

			in := &openapi3filter.RequestValidationInput{Request: validated, PathParams: params, Route: route, Options: opts}
			reqErr := openapi3filter.ValidateRequest(t.Context(), in)
			switch {
			case c.docAccepts && reqErr != nil:
				t.Errorf("the document refuses a request the API accepts as well-formed: %v", reqErr)
			case !c.docAccepts && reqErr == nil:
				t.Errorf("the document accepts a request the API refuses as malformed (status %d)", rec.Code)
			case reqErr != nil:
				t.Logf("the document refuses it too: %v", reqErr)
			}

			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: in,
				Status:                 rec.Code,
				Header:                 rec.Header(),
				Options:                opts,
			}
			out.SetBodyBytes(rec.Body.Bytes())
			if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
				t.Errorf("response does not match the document: %v\nbody %.500s", err, rec.Body)
			}
		})
	}

	documented := documentedOperations(doc)
	t.Run("every documented operation and status is exercised", func(t *testing.T) {
		for op, statuses := range documented {
			for _, status := range statuses {
				if !exercised[op][status] {
					t.Errorf("%s → %s is documented but no call exercises it", op, status)
				}
			}
		}
	})
	t.Run("every served route is documented, and only those", func(t *testing.T) {
		var served []string
		for _, rt := range (&handler{}).routes() {
			served = append(served, rt.pattern)
		}
		var docOps []string
		for op := range documented {
			docOps = append(docOps, op)
		}
		slices.Sort(served)
		slices.Sort(docOps)
		if !slices.Equal(served, docOps) {
			t.Errorf("served routes %q\ndocumented   %q", served, docOps)
		}
	})
}

// documentedOperations maps "METHOD /path" to its documented statuses.
func documentedOperations(doc *openapi3.T) map[string][]string {
	ops := map[string][]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			var statuses []string
			for status := range op.Responses.Map() {
				statuses = append(statuses, status)
			}
			ops[method+" "+path] = statuses
		}
	}
	return ops
}

// TestOpenAPISecurity checks the document declares what the handler
// enforces: bearer auth everywhere but on the document itself.
func TestOpenAPISecurity(t *testing.T) {
	doc := loadDocument(t)
	scheme := doc.Components.SecuritySchemes["bearerAuth"]
	if scheme == nil || scheme.Value.Type != "http" || scheme.Value.Scheme != "bearer" {
		t.Fatalf("bearerAuth scheme = %+v", scheme)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			t.Run(method+" "+path, func(t *testing.T) {
				reqs := doc.Security
				if op.Security != nil {
					reqs = *op.Security
				}
				public := path == "/admin/openapi.json"
				protected := len(reqs) == 1 && reqs[0]["bearerAuth"] != nil
				if public != (len(reqs) == 0) || !public && !protected {
					t.Errorf("security = %v", reqs)
				}
				if !public && (op.Responses.Status(401) == nil || op.Responses.Status(403) == nil) {
					t.Error("401 and 403 are not documented")
				}
			})
		}
	}
}
