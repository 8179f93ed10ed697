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

// policyCalls exercise the policy routes beyond their shared cases.
func policyCalls() []apiCall {
	padded := func(open, close string) string { return open + strings.Repeat(" ", maxBodyBytes) + close }
	global, client := "/admin/policies", "/admin/clients/"+seedClient+"/policies"
	return []apiCall{
		{name: "patch policy, application/json", method: "PATCH", path: global, token: adminToken,
			body: `{"session":{"max_concurrent":3,"on_limit":"reject","reauth_for":["password_change"]}}`, status: 200, docAccepts: true},
		{name: "patch policy, with warnings", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `{"token":{"access_token_ttl":"30s"}}`, status: 200, docAccepts: true},
		{name: "patch policy, null resets", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `{"session":{"idle_timeout":null,"reauth_for":null},"token":{"admin":null}}`, status: 200, docAccepts: true},
		{name: "patch policy, nonsensical value", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `{"token":{"access_token_ttl":"0s"}}`, status: 422, docAccepts: true},
		{name: "patch policy, unknown key", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `{"token":{"acces_token_ttl":"1m"}}`, status: 422},
		{name: "patch policy, wrong type", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `{"token":{"access_token_ttl":15}}`, status: 422},
		{name: "patch policy, malformed", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `{"token":`, status: 400},
		{name: "patch policy, not an object", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `[]`, status: 400},
		{name: "patch policy, null", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: `null`, status: 400},
		{name: "patch policy, too large", method: "PATCH", path: global, token: adminToken, contentType: mergePatchType,
			body: padded(`{"token":{`, `}}`), status: 413, docAccepts: true},
		{name: "patch policy, text/plain", method: "PATCH", path: global, token: adminToken, contentType: "text/plain",
			body: `{}`, status: 415},

		{name: "get policy of missing client", method: "GET", path: missingClient + "/policies", token: adminToken, status: 404, docAccepts: true},
		{name: "patch policy of missing client", method: "PATCH", path: missingClient + "/policies", token: adminToken,
			body: `{"customized":true}`, status: 404, docAccepts: true},
		{name: "customize token by changing it", method: "PATCH", path: client, token: adminToken,
			body: `{"token":{"access_token_ttl":"5m"}}`, status: 200, docAccepts: true},
		{name: "customize client", method: "PATCH", path: client, token: adminToken, contentType: mergePatchType,
			body: `{"customized":true}`, status: 200, docAccepts: true},
		{name: "client policy, customized not a boolean", method: "PATCH", path: client, token: adminToken,
			body: `{"customized":"yes"}`, status: 422},
		{name: "client policy, malformed", method: "PATCH", path: client, token: adminToken, body: `{"customized":tru}`, status: 400},
		{name: "client policy, too large", method: "PATCH", path: client, token: adminToken,
			body: padded(`{"customized":true`, `}`), status: 413, docAccepts: true},
		{name: "client policy, form encoded", method: "PATCH", path: client, token: adminToken,
			contentType: "application/x-www-form-urlencoded", body: `customized=true`, status: 415},
		{name: "uncustomize client", method: "PATCH", path: client, token: adminToken,
			body: `{"customized":false}`, status: 200, docAccepts: true},
	}
}

// sessionCalls exercise the session, token, key and password routes
// beyond their shared cases.
func sessionCalls() []apiCall {
	padded := func(open, close string) string { return open + strings.Repeat(" ", maxBodyBytes) + close }
	password := "/admin/users/" + seedUserID + "/password"
	return []apiCall{
		{name: "sessions of missing user", method: "GET", path: missingUser + "/sessions", token: adminToken, status: 404, docAccepts: true},
		{name: "end sessions of missing user", method: "DELETE", path: missingUser + "/sessions", token: adminToken, status: 404, docAccepts: true},
		{name: "end missing session", method: "DELETE", path: "/admin/sessions/nothing", token: adminToken, status: 404, docAccepts: true},

		{name: "revoke by user", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{"user_id":"` + seedUserID + `"}`, status: 200, docAccepts: true},
		{name: "revoke every token", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{}`, status: 200, docAccepts: true},
		{name: "revoke, unknown client", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{"client_id":"nobody"}`, status: 404, docAccepts: true},
		{name: "revoke, unknown user", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{"client_id":"` + seedClient + `","user_id":"nobody"}`, status: 404, docAccepts: true},
		{name: "revoke, empty client_id", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{"client_id":""}`, status: 422},
		{name: "revoke, null user_id", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{"user_id":null}`, status: 422},
		{name: "revoke, unknown field", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{"client":"x"}`, status: 400},
		{name: "revoke, wrong type", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: `{"user_id":5}`, status: 400},
		{name: "revoke, no body", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			contentType: "application/json", status: 400},
		{name: "revoke, too large", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			body: padded(`{`, `}`), status: 413, docAccepts: true},
		{name: "revoke, text/plain", method: "POST", path: "/admin/tokens/revoke", token: adminToken,
			contentType: "text/plain", body: `{}`, status: 415},

		{name: "rotate, no body", method: "POST", path: "/admin/keys/rotate", token: adminToken, status: 200, docAccepts: true},
		{name: "rotate, revoking", method: "POST", path: "/admin/keys/rotate", token: adminToken,
			body: `{"revoke_existing":true}`, status: 200, docAccepts: true},
		{name: "rotate, wrong type", method: "POST", path: "/admin/keys/rotate", token: adminToken,
			body: `{"revoke_existing":"yes"}`, status: 400},
		{name: "rotate, unknown field", method: "POST", path: "/admin/keys/rotate", token: adminToken,
			body: `{"revoke":true}`, status: 400},
		{name: "rotate, too large", method: "POST", path: "/admin/keys/rotate", token: adminToken,
			body: padded(`{"revoke_existing":false`, `}`), status: 413, docAccepts: true},
		{name: "rotate, text/plain", method: "POST", path: "/admin/keys/rotate", token: adminToken,
			contentType: "text/plain", body: `{}`, status: 415},

		{name: "reset password", method: "PUT", path: password, token: adminToken,
			body: `{"password":"a new passphrase"}`, status: 204, docAccepts: true},
		{name: "reset password of missing user", method: "PUT", path: missingUser + "/password", token: adminToken,
			body: `{"password":"a new passphrase"}`, status: 404, docAccepts: true},
		{name: "reset password, too short", method: "PUT", path: password, token: adminToken,
			body: `{"password":"short"}`, status: 422, docAccepts: true},
		{name: "reset password, too long", method: "PUT", path: password, token: adminToken,
			body: `{"password":"` + strings.Repeat("a", 1025) + `"}`, status: 422, docAccepts: true},
		{name: "reset password, unknown field", method: "PUT", path: password, token: adminToken,
			body: `{"password":"a new passphrase","confirm":"a new passphrase"}`, status: 400},
		{name: "reset password, too large", method: "PUT", path: password, token: adminToken,
			body: padded(`{"password":"a new passphrase"`, `}`), status: 413, docAccepts: true},
		{name: "reset password, text/plain", method: "PUT", path: password, token: adminToken,
			contentType: "text/plain", body: `{"password":"a new passphrase"}`, status: 415},
	}
}

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
	refused     bool // served where the IP rules refuse the caller's address on the admin API
	method      string
	path        string
	token       string // "" sends no Authorization header
	contentType string // overrides application/json
	body        string
	status      int
	docAccepts  bool
	infallible  bool // answered from memory, so a failing store cannot make it fail
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
	policyClient  = "policy-client"
	sessionUserID = "0190a4b6-1111-7000-8000-000000000003"
	seedSession   = "seed-session"
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
		{method: "GET", path: "/admin/users/" + sessionUserID + "/lockout", status: 200},
		{method: "POST", path: "/admin/users/" + sessionUserID + "/unlock", status: 200},
		{method: "GET", path: "/admin/audit", status: 200},
		{method: "GET", path: "/admin/policies", status: 200, infallible: true},
		{method: "PATCH", path: "/admin/policies", contentType: mergePatchType, body: `{"token":{"access_token_ttl":"10m"}}`, status: 200},
		{method: "GET", path: "/admin/clients/" + policyClient + "/policies", status: 200},
		{method: "PATCH", path: "/admin/clients/" + policyClient + "/policies", contentType: mergePatchType,
			body: `{"customized":true,"token":{"access_token_ttl":"5m"}}`, status: 200},
		{method: "GET", path: "/admin/users/" + sessionUserID + "/sessions", status: 200},
		{method: "DELETE", path: "/admin/sessions/" + seedSession, status: 204},
		{method: "DELETE", path: "/admin/users/" + sessionUserID + "/sessions", status: 200},
		{method: "POST", path: "/admin/tokens/revoke", body: `{"client_id":"` + policyClient + `","user_id":"` + sessionUserID + `"}`, status: 200},
		{method: "POST", path: "/admin/keys/rotate", body: `{"revoke_existing":false}`, status: 200},
		{method: "PUT", path: "/admin/users/" + sessionUserID + "/password", body: `{"password":"correct horse"}`, status: 204},
		{method: "POST", path: "/admin/policies/password/preview", body: `{"min_length":10}`, status: 200},
		{method: "PUT", path: "/admin/users/" + sessionUserID + "/expiry", body: `{"expires_at":"2099-01-01T00:00:00Z"}`, status: 200},
		{method: "POST", path: "/admin/users/" + sessionUserID + "/password-reset", body: `{"send_link":false}`, status: 200},
		{method: "POST", path: "/admin/users/" + activationUserID + "/activation", status: 200},
		{method: "GET", path: "/admin/users/" + sessionUserID + "/mfa", status: 200},
		{method: "GET", path: "/admin/mfa/stats", status: 200},
		{method: "DELETE", path: "/admin/users/" + sessionUserID + "/mfa/" + seedFactorID, status: 204},
		{method: "DELETE", path: "/admin/users/" + sessionUserID + "/mfa", status: 200},
		{method: "GET", path: "/admin/users/" + sessionUserID + "/devices", status: 200},
		{method: "DELETE", path: "/admin/users/" + sessionUserID + "/devices/" + seedDeviceID, status: 200},
	}
}

func apiCalls() []apiCall {
	huge := `{"client_id":"big","grant_types":["client_credentials"],"client_name":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	hugeUser := `{"username":"big","password":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	calls := []apiCall{
		{name: "openapi document", method: "GET", path: "/admin/openapi.json", status: 200, docAccepts: true},
		{name: "openapi document, address refused", refused: true, method: "GET", path: "/admin/openapi.json", status: 403, docAccepts: true},
		{name: "list clients, address refused", refused: true, method: "GET", path: "/admin/clients", token: adminToken, status: 403, docAccepts: true},
		{name: "patch policy, locking the caller out", method: "PATCH", path: "/admin/policies", token: adminToken, contentType: mergePatchType,
			body: `{"ip":{"mode":"allowlist","allow":["198.51.100.0/24"],"apply_to":["admin"]}}`, status: 422, docAccepts: true},

		{name: "create client, generated secret", method: "POST", path: "/admin/clients", token: adminToken,
			body:   `{"client_id":"gen","client_name":"Generated","grant_types":["client_credentials"],"scopes":["reports:read"],"audience":["https://api.example.com"]}`,
			status: 201, docAccepts: true},
		{name: "create client, every field", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"full","client_name":"Full","client_secret":"a-secret-of-my-choosing",` +
				`"redirect_uris":["https://app.example.com/cb"],"post_logout_redirect_uris":["https://app.example.com/"],` +
				`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"scopes":["openid","profile"],` +
				`"audience":[],"public":false,"skip_consent":true,"token_endpoint_auth_method":"client_secret_post","access_token_format":"opaque"}`,
			status: 201, docAccepts: true},
		{name: "create client, private_key_jwt with every metadata field", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"signer","client_name":"Signer","grant_types":["client_credentials"],` +
				`"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"ES256","jwks":` + testJWKS(false) + `,` +
				`"allowed_cors_origins":["https://app.example.com"],"logo_uri":"https://app.example.com/logo.png",` +
				`"policy_uri":"https://app.example.com/privacy","tos_uri":"https://app.example.com/terms"}`,
			status: 201, docAccepts: true},
		{name: "client metadata validation", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"meta","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt",` +
				`"jwks":` + testJWKS(true) + `,"allowed_cors_origins":["https://app.example.com/path"],"logo_uri":"http://app.example.com/logo.png"}`,
			status: 422, docAccepts: true},
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
	calls = append(calls, policyCalls()...)
	calls = append(calls, sessionCalls()...)
	calls = append(calls, lockoutCalls()...)
	calls = append(calls, lifecycleCalls()...)
	calls = append(calls, mfaCalls()...)
	calls = append(calls, deviceCalls()...)
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
		if !c.infallible {
			broken := c
			broken.name, broken.token, broken.broken, broken.status, broken.docAccepts = op+" with a failing store", adminToken, true, 500, true
			calls = append(calls, broken)
		}
		// Every operation refuses a NUL in its URL, even in a parameter it
		// does not read (storabletext_test.go has the other places).
		// JSON Schema cannot say "no NUL, valid UTF-8" short of a pattern
		// on every string, so the document says it in words and accepts
		// the request.
		unstorable := c
		unstorable.name, unstorable.token, unstorable.status, unstorable.docAccepts = op+" with a NUL in the query", adminToken, 400, true
		unstorable.path += "?x=%00"
		calls = append(calls, unstorable)
	}
	calls = append(calls, unstorableCalls()...)
	// The successes go last: they delete the seeds the calls above read.
	for _, c := range protectedCalls() {
		c.name, c.token, c.docAccepts = c.method+" "+c.path, adminToken, true
		calls = append(calls, c)
	}
	return calls
}

// unstorableCalls refuse text no database can store in path values and
// bodies; the document accepts them, as the query case above explains,
// unless another rule of its refuses them.
func unstorableCalls() []apiCall {
	return []apiCall{
		{name: "openapi document, NUL in the query", method: "GET", path: "/admin/openapi.json?x=%00", status: 400, docAccepts: true},
		{name: "get client, NUL id", method: "GET", path: "/admin/clients/%00", token: adminToken, status: 400, docAccepts: true},
		{name: "delete user, invalid UTF-8 id", method: "DELETE", path: "/admin/users/%FF", token: adminToken, status: 400, docAccepts: true},
		{name: "end session, NUL sid", method: "DELETE", path: "/admin/sessions/%00", token: adminToken, status: 400, docAccepts: true},
		{name: "create client, NUL in client_name", method: "POST", path: "/admin/clients", token: adminToken,
			body: `{"client_id":"nul","client_name":"\u0000","grant_types":["client_credentials"]}`, status: 400, docAccepts: true},
		{name: "create user, invalid UTF-8 body", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"` + "\xff" + `","password":"correct horse"}`, status: 400, docAccepts: true},
		{name: "patch policy, NUL in a value", method: "PATCH", path: "/admin/policies", token: adminToken, contentType: mergePatchType,
			body: `{"session":{"on_limit":"reject\u0000"}}`, status: 400}, // not one of the enum's values
	}
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
	for id, name := range map[string]string{seedUserID: "seed", doomedUserID: "doomed", sessionUserID: "sessions"} {
		if err := store.CreateUser(ctx, &storage.User{ID: id, Username: name, PasswordHash: "$argon2id$x"}); err != nil {
			t.Fatal(err)
		}
	}
	createClient(t, store, policyClient)
	createSession(t, store, seedSession, sessionUserID)
	createToken(t, store, policyClient, sessionUserID, seedSession)
	seedLockout(t, store, sessionUserID)
	seedFactor(t, store, sessionUserID)
	seedDevice(t, store, policyClient, sessionUserID, seedDeviceID, "seed-device-session")
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
	seedLifecycle(t, e)
	broken := newEnvWith(t, brokenStore{}, nil)
	// newRequest's address, 192.0.2.1, is outside the allowlist.
	refused := newGuardedEnv(t, `{"ip":{"mode":"allowlist","allow":["198.51.100.0/24"],"apply_to":["admin"]}}`)
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
			if c.refused {
				env = refused
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
