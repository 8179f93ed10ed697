package admin

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/storage"
)

// Store is the slice of storage the admin API uses; *storage.Store
// satisfies it.
type Store interface {
	CreateClient(ctx context.Context, c *storage.Client) error
	Client(ctx context.Context, id string) (*storage.Client, error)
	ListClients(ctx context.Context, after string, limit int) ([]storage.Client, error)
	DeleteClient(ctx context.Context, id string) error
	CreateUser(ctx context.Context, u *storage.User) error
	User(ctx context.Context, id string) (*storage.User, error)
	ListUsers(ctx context.Context, after string, limit int) ([]storage.User, error)
	DeleteUser(ctx context.Context, id string) error
	// InTx runs fn in one transaction, so a change and its audit event
	// are stored together or not at all.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

var _ Store = (*storage.Store)(nil)

// TokenVerifier checks a bearer access token and says what it grants. Any
// error is treated as an invalid token.
type TokenVerifier interface {
	VerifyAccessToken(ctx context.Context, token string) (*oauth.TokenInfo, error)
}

// Config wires the handler returned by New.
type Config struct {
	Store  Store
	Tokens TokenVerifier
	// Hasher hashes chosen client secrets (passwords are hashed by
	// Accounts); the zero value means hashing.DefaultArgon2.
	Hasher hashing.Argon2
	// Logger receives failures and a line per change; nil discards.
	Logger *slog.Logger
	// Audit records each change as a security event, in the same
	// transaction as the change (so it should write to the same database
	// as Store), and serves GET /admin/audit. When nil, changes are only
	// logged and GET /admin/audit is not served (404, like any unknown
	// path).
	Audit *audit.Recorder
	// Policies serves and changes the security policies (/admin/policies,
	// /admin/clients/{id}/policies). Nil leaves those routes out.
	Policies PolicyEngine
	// Sessions lists and ends browser sessions and revokes tokens
	// (GET /admin/users/{id}/sessions, /admin/sessions/{sid},
	// /admin/tokens/revoke). It must write to the same database as Store,
	// whose transactions it joins. Nil leaves those routes out.
	Sessions SessionStore
	// Accounts creates users (POST /admin/users), resets passwords
	// (PUT /admin/users/{id}/password) and ends everything of a user
	// (DELETE /admin/users/{id}/sessions): the one service every password
	// write and every such end goes through, with the server's password
	// rules. Nil leaves those routes out.
	Accounts AccountService
	// Keys rotates the signing keys (POST /admin/keys/rotate). Nil leaves
	// the route out.
	Keys KeyRotator
	// Links mails account links: activation links (POST
	// /admin/users/{id}/activation, POST /admin/users with
	// send_activation) and reset links (POST
	// /admin/users/{id}/password-reset). It must write to the same
	// database as Store, whose transactions it joins. Nil, or one that
	// cannot mail, answers those requests as mail being unavailable.
	Links LinkSender
	// MFA lists, removes and resets the second factors of accounts
	// (/admin/users/{id}/mfa) and, with a Store that counts them, serves
	// GET /admin/mfa/stats. Nil leaves those routes out.
	MFA MFAService
}

// PolicyEngine is the policy engine as the admin API uses it;
// *policystore.Engine satisfies it. An invalid patch changes nothing and
// returns an error wrapping policystore.ErrInvalid and a *fielderr.Error.
type PolicyEngine interface {
	Global() policies.Policy
	Client(clientID string) (customized bool, p policies.Policy)
	PatchGlobal(ctx context.Context, actor string, patch []byte) (*policystore.Change, error)
	PatchClient(ctx context.Context, actor, clientID string, patch []byte) (*policystore.Change, error)
}

var _ PolicyEngine = (*policystore.Engine)(nil)

// SessionStore ends browser sessions and revokes tokens; *storage.Store
// satisfies it.
type SessionStore interface {
	UserBrowserSessions(ctx context.Context, userID string) ([]storage.BrowserSession, error)
	BrowserSessionIncludingExpired(ctx context.Context, id string) (*storage.BrowserSession, error)
	EndBrowserSession(ctx context.Context, id string) (bool, error)
	EndUserSessions(ctx context.Context, userID, keep string) ([]string, error)
	RevokeTokens(ctx context.Context, f storage.TokenFilter) (int64, error)
}

var _ SessionStore = (*storage.Store)(nil)

// AccountService is the accounts service as the admin API uses it;
// *authn.Accounts satisfies it. It records the events of each change
// itself, in the change's transaction.
type AccountService interface {
	Create(ctx context.Context, spec authn.UserSpec, actor authn.Actor) (*storage.User, error)
	ResetPassword(ctx context.Context, userID, password string, actor authn.Actor) (*authn.Ended, error)
	EndEverything(ctx context.Context, userID, reason string, actor authn.Actor) (authn.Ended, error)
}

var _ AccountService = (*authn.Accounts)(nil)

// KeyRotator makes a new signing key; *oauth.KeyManager satisfies it. It
// records the key.rotated event itself, in the transaction of the rotation.
type KeyRotator interface {
	RotateBy(ctx context.Context, actor string, revokeExisting bool) (kid string, tokensRevoked int64, err error)
	Algorithm() string
}

var _ KeyRotator = (*oauth.KeyManager)(nil)

// Scope is the OAuth scope an access token needs to use the admin API.
const Scope = "admin"

const (
	maxBodyBytes = 1 << 20
	defaultLimit = 100
	maxLimit     = 500
)

//go:embed openapi.json
var openAPIDocument []byte

// handleFunc serves one route. who is the verified token, nil on public
// routes. A returned error is rendered by writeError, never by the handler.
type handleFunc func(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error

type route struct {
	pattern string
	public  bool
	handle  handleFunc
}

type handler struct {
	store    Store
	tokens   TokenVerifier
	hasher   hashing.Argon2
	log      *slog.Logger
	trail    *audit.Recorder
	policies PolicyEngine
	sessions SessionStore
	accounts AccountService
	keys     KeyRotator
	links    LinkSender
	mfa      MFAService
	now      func() time.Time
	mux      *http.ServeMux
	// ipRules parses the global IP rules once per change for checkAddress.
	ipRules policies.IPCache
}

// New returns the admin API handler, serving paths under /admin/. It panics
// when Store or Tokens is missing, a wiring mistake better caught at start-up
// than on the first request.
func New(cfg Config) http.Handler {
	if cfg.Store == nil || cfg.Tokens == nil {
		panic("admin.New: Config.Store and Config.Tokens are required")
	}
	h := &handler{
		store:    cfg.Store,
		tokens:   cfg.Tokens,
		hasher:   cfg.Hasher,
		log:      cfg.Logger,
		trail:    cfg.Audit,
		policies: cfg.Policies,
		sessions: cfg.Sessions,
		accounts: cfg.Accounts,
		keys:     cfg.Keys,
		links:    cfg.Links,
		mfa:      cfg.MFA,
		now:      time.Now,
		mux:      http.NewServeMux(),
	}
	if h.hasher == (hashing.Argon2{}) {
		h.hasher = hashing.DefaultArgon2
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for _, rt := range h.routes() {
		if rt.handle == nil {
			continue // a feature this server runs without
		}
		h.mux.Handle(rt.pattern, h.adapt(rt))
	}
	return h
}

// routes is the single list of what the API can serve; the OpenAPI test
// reads it to prove every route is documented. A route with a nil handle is
// not served by this instance.
func (h *handler) routes() []route {
	return []route{
		{pattern: "GET /admin/openapi.json", public: true, handle: h.openAPI},
		{pattern: "POST /admin/clients", handle: h.createClient},
		{pattern: "GET /admin/clients", handle: h.listClients},
		{pattern: "GET /admin/clients/{id}", handle: h.getClient},
		{pattern: "DELETE /admin/clients/{id}", handle: h.deleteClient},
		{pattern: "POST /admin/users", handle: servedIf(h.accounts != nil, h.createUser)},
		{pattern: "GET /admin/users", handle: h.listUsers},
		{pattern: "GET /admin/users/{id}", handle: h.getUser},
		{pattern: "DELETE /admin/users/{id}", handle: h.deleteUser},
		{pattern: "GET /admin/users/{id}/lockout", handle: servedIf(h.lockouts() != nil, h.getLockout)},
		{pattern: "POST /admin/users/{id}/unlock", handle: servedIf(h.lockouts() != nil, h.unlock)},
		{pattern: "GET /admin/audit", handle: h.ifAudited(h.listAudit)},
		{pattern: "GET /admin/policies", handle: servedIf(h.policies != nil, h.getPolicies)},
		{pattern: "PATCH /admin/policies", handle: servedIf(h.policies != nil, h.patchPolicies)},
		{pattern: "GET /admin/clients/{id}/policies", handle: servedIf(h.policies != nil, h.getClientPolicies)},
		{pattern: "PATCH /admin/clients/{id}/policies", handle: servedIf(h.policies != nil, h.patchClientPolicies)},
		{pattern: "GET /admin/users/{id}/sessions", handle: servedIf(h.sessions != nil, h.listUserSessions)},
		{pattern: "DELETE /admin/users/{id}/sessions", handle: servedIf(h.accounts != nil, h.endUserSessions)},
		{pattern: "DELETE /admin/sessions/{sid}", handle: servedIf(h.sessions != nil, h.endSession)},
		{pattern: "GET /admin/users/{id}/devices", handle: servedIf(h.devices() != nil, h.listUserDevices)},
		{pattern: "DELETE /admin/users/{id}/devices/{device_id}", handle: servedIf(h.devices() != nil, h.deleteUserDevice)},
		{pattern: "POST /admin/tokens/revoke", handle: servedIf(h.sessions != nil, h.revokeTokens)},
		{pattern: "POST /admin/keys/rotate", handle: servedIf(h.keys != nil, h.rotateKeys)},
		{pattern: "PUT /admin/users/{id}/password", handle: servedIf(h.accounts != nil, h.resetPassword)},
		{pattern: "POST /admin/policies/password/preview", handle: servedIf(h.policies != nil, h.previewPassword)},
		{pattern: "PUT /admin/users/{id}/expiry", handle: servedIf(h.lifecycle() != nil && h.accounts != nil, h.setExpiry)},
		{pattern: "POST /admin/users/{id}/password-reset", handle: servedIf(h.lifecycle() != nil, h.requirePasswordReset)},
		{pattern: "POST /admin/users/{id}/activation", handle: h.sendActivation},
		{pattern: "GET /admin/users/{id}/mfa", handle: servedIf(h.mfa != nil, h.getUserMFA)},
		{pattern: "DELETE /admin/users/{id}/mfa", handle: servedIf(h.mfa != nil, h.resetUserMFA)},
		{pattern: "DELETE /admin/users/{id}/mfa/{factor_id}", handle: servedIf(h.mfa != nil, h.deleteUserFactor)},
		{pattern: "GET /admin/mfa/stats", handle: servedIf(h.mfa != nil, h.mfaStats)},
	}
}

// servedIf leaves a route out when the server runs without what it needs.
func servedIf(ok bool, f handleFunc) handleFunc {
	if !ok {
		return nil
	}
	return f
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Responses carry client and user records; no cache should keep them.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Before routing, so that a refused address learns nothing of the API,
	// not even which paths exist.
	if err := h.checkAddress(r); err != nil {
		h.writeError(w, r, err)
		return
	}
	if fallback, pattern := h.mux.Handler(r); pattern == "" {
		// The mux would answer 404 or 405 in text/plain; find out which
		// and answer in JSON like every other response.
		probe := &statusProbe{header: http.Header{}}
		fallback.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			h.writeError(w, r, methodNotAllowed())
			return
		}
		h.writeError(w, r, notFound())
		return
	}
	h.mux.ServeHTTP(w, r)
}

// statusProbe records the status a handler chose and discards the rest.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }

func (p *statusProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

// adapt authorises the request (unless the route is public), refuses its
// path values and query parameters when they hold text no database can
// store (checkURLText), runs the route and renders whatever error it
// returns. Authorisation comes first so that a caller without a token learns
// nothing but 401, whatever it sends.
func (h *handler) adapt(rt route) http.Handler {
	wildcards := pathWildcards(rt.pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			who *oauth.TokenInfo
			err error
		)
		if !rt.public {
			who, err = h.authorize(r)
		}
		if err == nil {
			err = checkURLText(r, wildcards)
		}
		if err == nil {
			err = rt.handle(w, r, who)
		}
		if err != nil {
			h.writeError(w, r, err)
		}
	})
}

// authorize returns the verified token of a request carrying the admin
// scope. Challenges follow RFC 6750 section 3.
func (h *handler) authorize(r *http.Request) (*oauth.TokenInfo, error) {
	token, present := bearerToken(r.Header.Get("Authorization"))
	if !present {
		// No error code when no credentials were offered (RFC 6750 3.1).
		return nil, &apiError{
			status: http.StatusUnauthorized, code: "invalid_token",
			description: "a bearer access token with the admin scope is required",
			challenge:   "Bearer",
		}
	}
	invalid := func(cause error) error {
		return &apiError{
			status: http.StatusUnauthorized, code: "invalid_token",
			description: "the access token is invalid or expired",
			challenge:   `Bearer error="invalid_token"`,
			cause:       cause,
		}
	}
	if token == "" {
		return nil, invalid(errors.New("empty bearer token"))
	}
	if !storage.StorableText(token) {
		// The verifier looks tokens up by a part of their text, which
		// PostgreSQL would refuse and the caller be told 503 to retry a
		// token that can never be valid: RFC 6750's b64token is ASCII.
		return nil, invalid(errors.New("bearer token holds a NUL byte or invalid UTF-8"))
	}
	info, err := h.tokens.VerifyAccessToken(r.Context(), token)
	if errors.Is(err, storage.ErrUnavailable) {
		// The token could not be checked, which is not the same as a bad
		// token: the caller must retry, not discard it.
		return nil, classify(err)
	}
	if err != nil {
		return nil, invalid(err)
	}
	if info == nil {
		return nil, invalid(errors.New("token verifier returned no token info"))
	}
	// Belt and braces: a verifier that forgot to check expiry must not let
	// a stale token administer the server.
	if !info.ExpiresAt.IsZero() && !h.now().Before(info.ExpiresAt) {
		return nil, invalid(errors.New("access token expired"))
	}
	if !slices.Contains(info.Scopes, Scope) {
		return nil, &apiError{
			status: http.StatusForbidden, code: "insufficient_scope",
			description: "the access token lacks the admin scope",
			challenge:   `Bearer error="insufficient_scope", scope="admin"`,
		}
	}
	return info, nil
}

// bearerToken extracts the token of an "Authorization: Bearer" header.
// present is false when the header is absent or uses another scheme, which
// RFC 6750 treats as no credentials at all.
func bearerToken(header string) (token string, present bool) {
	scheme, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

func (h *handler) openAPI(w http.ResponseWriter, _ *http.Request, _ *oauth.TokenInfo) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument) // the client going away is not our error
	return nil
}

// decodeJSON reads a request body holding exactly one JSON object into dst,
// rejecting unknown fields, so that a typo in a field name is an error rather
// than a silently ignored setting, and text no database can store
// (readBody, checkJSONText), so that dst never holds any.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &apiError{
			status: http.StatusUnsupportedMediaType, code: "invalid_request",
			description: "the request body must be application/json",
		}
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return decodeError(err)
	default:
		return badRequest(errors.New("trailing data after JSON value"), "the request body must hold a single JSON value")
	}
	// After decoding, which has proved the body well-formed, so that the
	// walk meets no syntax error of its own.
	return checkJSONText(body)
}

// decodeError turns an encoding/json failure into a 400 (or 413) that names
// the offending field when there is one.
func decodeError(err error) error {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return &apiError{
			status: http.StatusRequestEntityTooLarge, code: "invalid_request",
			description: "the request body exceeds " + strconv.Itoa(maxBodyBytes) + " bytes",
			cause:       err,
		}
	case errors.Is(err, io.EOF):
		return badRequest(err, "the request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(err, "malformed JSON: unexpected end of input")
	case errors.As(err, &syntax):
		return badRequest(err, "malformed JSON at byte "+strconv.FormatInt(syntax.Offset, 10)+": "+syntax.Error())
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badRequest(err, "the request body must be a JSON object")
		}
		msg := "got JSON " + typeErr.Value + ", want " + jsonKind(typeErr)
		return badRequest(err, typeErr.Field+": "+msg, fielderr.Field{Field: typeErr.Field, Message: msg})
	}
	// encoding/json has no typed error for unknown fields; its message is
	// stable: json: unknown field "name".
	if rest, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		name := strings.TrimSuffix(rest, `"`)
		return badRequest(err, "unknown field "+strconv.Quote(name), fielderr.Field{Field: name, Message: "unknown field"})
	}
	return badRequest(err, "malformed request body")
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(e *json.UnmarshalTypeError) string {
	if e.Type == nil {
		return "another type"
	}
	switch e.Type.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "a number"
	}
}

// page reads the cursor pagination parameters.
func page(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	limit = defaultLimit
	if q.Has("limit") {
		n, convErr := strconv.Atoi(q.Get("limit"))
		if convErr != nil || n < 1 || n > maxLimit {
			msg := "must be an integer from 1 to " + strconv.Itoa(maxLimit)
			return "", 0, badRequest(convErr, "limit "+msg, fielderr.Field{Field: "limit", Message: msg})
		}
		limit = n
	}
	return q.Get("after"), limit, nil
}

// listPage is the envelope of a list response; Next is the cursor to pass as
// ?after= for the following page, empty on the last one.
type listPage[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// paginate trims rows, fetched with limit+1 so the presence of another page
// is known without a second query, and builds the response.
func paginate[R, V any](rows []R, limit int, id func(R) string, view func(R) V) listPage[V] {
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = id(rows[limit-1])
	}
	items := make([]V, 0, len(rows))
	for _, row := range rows {
		items = append(items, view(row))
	}
	return listPage[V]{Items: items, Next: next}
}

// nonNil keeps empty lists as [] in responses, as the schema promises.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
