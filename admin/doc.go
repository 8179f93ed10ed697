// Package admin is Portcullis's administration API: a JSON-over-HTTP
// interface for registering OAuth clients, managing users, their sessions
// and tokens, the security policies (global and per application) and the
// signing keys, meant for operators' tooling rather than browsers.
//
// Every route lives under /admin/ (mount the handler from New at "/admin/"
// without stripping the prefix) and, except the OpenAPI document at
// GET /admin/openapi.json, requires a bearer access token carrying the
// "admin" scope. The document embedded as openapi.json is the contract; the
// tests replay real calls through an OpenAPI validator so that it cannot
// drift from what the handlers do.
//
// Every change is recorded in the audit trail with the acting token's
// subject, in the transaction of the change: the policy engine and the key
// manager record their own events, and so does the accounts service
// (authn.Accounts), through which user creation, password resets and ending
// everything of a user go; the handlers here record the rest. Routes whose
// dependency (Config.Policies, Sessions, Accounts, Keys) is missing are not
// served; the account link routes (activation, password reset) are always
// served and answer 503 mail_unavailable when no mail can be sent.
//
// Text no database can store, a NUL (in JSON also the escape \u0000) or
// invalid UTF-8, is refused with 400 naming the field before any handler
// runs, wherever it is: a path value, a query parameter, any string or key
// of a JSON body (text.go). PostgreSQL would fail on it where SQLite stores
// it, so without the check one request would answer differently per backend.
//
// When the global IP rules list "admin" in ip.apply_to, a request from an
// address they refuse gets 403 access_denied before routing or token checks
// (iprules.go), and a global policy patch that would refuse the caller's
// own address there is refused with 422 naming ip.
//
// Handlers return errors instead of writing them: one adapter turns every
// error into a JSON body and status, so all failures look alike and internal
// details reach the log, never the response.
package admin
