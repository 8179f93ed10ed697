package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/hmac"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// BrowserSessions is the signed-in browser, as the authorize and logout
// endpoints need it. authn implements it.
type BrowserSessions interface {
	// Current returns the signed-in user and session, or nils.
	Current(r *http.Request) (*storage.User, *storage.BrowserSession, error)
	// End signs the browser out.
	End(w http.ResponseWriter, r *http.Request) error
}

// LoginFlows hands a person to the login page and back: authn implements
// it with server-side login flows.
type LoginFlows interface {
	// StartAuthorize records request (for clientID) in a new login flow
	// bound to this browser and returns the login page's URL.
	StartAuthorize(ctx context.Context, w http.ResponseWriter, r *http.Request, clientID string, request url.Values, loginHint string) (string, error)
	// Resume takes back, once, the request of a completed flow started in
	// this browser.
	Resume(ctx context.Context, r *http.Request, id string) (clientID string, request url.Values, err error)
	// StartReturn starts a sign-in for clientID that comes back to the
	// local path returnTo (the device verification page).
	StartReturn(ctx context.Context, w http.ResponseWriter, r *http.Request, clientID, returnTo string) (string, error)
	// StartStepUp sends signed-in userID to a second factor for request,
	// whose acr_values ask more than the session reached; ok is false
	// when the account has no factor to step up with.
	StartStepUp(ctx context.Context, w http.ResponseWriter, r *http.Request, clientID string, request url.Values, userID string) (url string, ok bool, err error)
}

// CSRFGuard protects the consent form.
type CSRFGuard interface {
	Token(w http.ResponseWriter, r *http.Request) string
	Verify(r *http.Request) bool
}

// Metrics receives token issuance events.
type Metrics interface {
	TokenIssued(grantType string)
	TokenFailed(grantType, errorCode string)
}

// Store is everything the provider needs from storage: fosite's interfaces
// plus users, consents and family revocation.
type Store interface {
	fosite.Storage
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	openid.OpenIDConnectRequestStorage
	keyStore
	BeginTX(ctx context.Context) (context.Context, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
	GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error)
	CreatePKCERequestSession(ctx context.Context, signature string, requester fosite.Requester) error
	DeletePKCERequestSession(ctx context.Context, signature string) error
	User(ctx context.Context, id string) (*storage.User, error)
	AnyClientAllowsOrigin(ctx context.Context, origin string) (bool, error)
	Consent(ctx context.Context, userID, clientID string) (*storage.Consent, error)
	GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error
	RevokeFamily(ctx context.Context, requestID string) error
	PutRefreshGrace(ctx context.Context, signature, clientID string, response []byte, expiresAt time.Time) error
	RefreshGrace(ctx context.Context, signature string) (clientID string, response []byte, err error)
}

// Recorder receives security events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event) error
	// RecordBatched is for high-volume events (every token issued): written
	// shortly after, with others, rather than in the request.
	RecordBatched(ctx context.Context, e audit.Event) error
}

// Config configures the provider.
type Config struct {
	Issuer string
	// Policies decides token lifetimes and formats per client.
	Policies PolicySource
	// SystemSecrets, newest first, key the HMAC of opaque tokens.
	SystemSecrets []string
	// Devices keeps device codes; nil turns the device authorization
	// grant (RFC 8628) off. Standing re-checks at redemption the account
	// that approved a device; required with Devices.
	Devices  DeviceStore
	Standing AccountStanding
	// Audit records security events; nil records nothing.
	Audit Recorder
	// ScopeDescriptions are shown on the consent page, by scope name; they
	// add to and override the built-in ones.
	ScopeDescriptions map[string]string

	Store     Store
	Keys      *KeyManager
	Browser   BrowserSessions
	Flows     LoginFlows
	CSRF      CSRFGuard
	Templates *templates.Renderer
	Metrics   Metrics
	Logger    *slog.Logger
	Now       func() time.Time
	// HashLimiter bounds the memory of client secret checks, shared with
	// sign-in; nil means no bound.
	HashLimiter *hashing.Limiter
	// PasswordGrant checks passwords for the password grant (the sign-in
	// pipeline, in the server); nil turns the grant off: discovery leaves
	// it out and the token endpoint answers unsupported_grant_type.
	PasswordGrant PasswordAuthenticator
}

// Provider serves the OAuth 2.0 and OpenID Connect endpoints.
type Provider struct {
	cfg       Config
	fc        *clockedConfig
	f         fosite.OAuth2Provider
	strategy  *tokenStrategy
	discovery cachedDoc
	// userCodeKey keys the HMAC under which device user codes are stored.
	userCodeKey []byte
}

// New composes fosite with Portcullis's storage, strategies and keys.
func New(cfg Config) (*Provider, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.SystemSecrets) == 0 {
		return nil, errors.New("oauth: no system secret")
	}
	if cfg.Policies == nil {
		return nil, errors.New("oauth: no policy source")
	}
	// fosite's own lifespans only matter where a request carries no policy
	// lifetimes; they follow the global policy as it was at start.
	global := cfg.Policies.For("")
	issuer := strings.TrimRight(cfg.Issuer, "/")
	cfg.Issuer = issuer
	var hmacKeys [][]byte
	for i, s := range cfg.SystemSecrets {
		k, err := storage.DeriveKey(s, "portcullis/token-hmac/v1", 32)
		if err != nil {
			return nil, fmt.Errorf("oauth: system secret %d: %w", i, err)
		}
		hmacKeys = append(hmacKeys, k)
	}
	fc := &fosite.Config{
		AccessTokenLifespan:            global.Token.AccessTokenTTL.D(),
		RefreshTokenLifespan:           global.Token.RefreshTokenTTL.D(),
		AuthorizeCodeLifespan:          global.Token.AuthorizationCodeTTL.D(),
		IDTokenLifespan:                global.Token.IDTokenTTL.D(),
		IDTokenIssuer:                  issuer,
		AccessTokenIssuer:              issuer,
		TokenURL:                       issuer + "/oauth2/token",
		GlobalSecret:                   hmacKeys[0],
		RotatedGlobalSecrets:           hmacKeys[1:],
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		ClientSecretsHasher:            newSecretHasher(cfg.HashLimiter),
		SendDebugMessagesToClients:     false,
		JWTScopeClaimKey:               jwt.JWTScopeFieldString,
		MinParameterEntropy:            fosite.MinParameterEntropy,
		RefreshTokenScopes:             []string{"offline_access", "offline"},
	}
	signer := newKeySigner(cfg.Keys)
	hmacStrategy := &hmac.HMACStrategy{Config: fc}
	strategy := &tokenStrategy{
		hmac:      hmacStrategy,
		jwt:       &oauth2.DefaultJWTStrategy{Signer: signer, Config: fc},
		policies:  cfg.Policies,
		codeTTL:   global.Token.AuthorizationCodeTTL.D(),
		accessTTL: global.Token.AccessTokenTTL.D(),
		now:       cfg.Now,
	}
	strategy.jwt.HMACSHAStrategy = strategy
	// compose.Compose would hand the handlers the bare *fosite.Config; they
	// get the clock-aware one instead, so the same loop is written here.
	cc := &clockedConfig{Config: fc, now: cfg.Now}
	strategies := &compose.CommonStrategy{
		CoreStrategy:               strategy,
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: signer, Config: cc},
		Signer:                     signer,
	}
	p := &Provider{cfg: cfg, fc: cc, strategy: strategy}
	fc.ClientAuthenticationStrategy = p.authenticateClient
	store := graceStore{Store: cfg.Store, p: p}
	f := fosite.NewOAuth2Provider(store, cc)
	for _, factory := range []compose.Factory{
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2PKCEFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
	} {
		h := factory(cc, store, strategies)
		if ah, ok := h.(fosite.AuthorizeEndpointHandler); ok {
			fc.AuthorizeEndpointHandlers.Append(ah)
		}
		if th, ok := h.(fosite.TokenEndpointHandler); ok {
			fc.TokenEndpointHandlers.Append(th)
		}
		if ti, ok := h.(fosite.TokenIntrospector); ok {
			fc.TokenIntrospectionHandlers.Append(ti)
		}
		if rh, ok := h.(fosite.RevocationHandler); ok {
			fc.RevocationHandlers.Append(rh)
		}
	}
	password := &passwordGrantHandler{
		p: p, auth: cfg.PasswordGrant, store: store, config: cc,
		tokens:  &oauth2.HandleHelper{AccessTokenStrategy: strategy, AccessTokenStorage: store, Config: cc},
		refresh: strategy,
		idToken: &openid.IDTokenHandleHelper{IDTokenStrategy: strategies.OpenIDConnectTokenStrategy},
	}
	fc.TokenEndpointHandlers.Append(password)
	fc.TokenEndpointHandlers.Append(&deviceGrantHandler{p: p, issue: password})
	userCodeKey, err := storage.DeriveKey(cfg.SystemSecrets[0], "portcullis/device-user-code/v1", 32)
	if err != nil {
		return nil, fmt.Errorf("device user codes: %w", err)
	}
	p.userCodeKey = userCodeKey
	p.f = f
	body, err := p.renderDiscovery()
	if err != nil {
		return nil, err
	}
	p.discovery = newCachedDoc(body)
	return p, nil
}

// Handler routes the protocol endpoints.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	p.Register(mux)
	return mux
}

// Register adds the protocol endpoints to mux.
func (p *Provider) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/openid-configuration", p.serveDiscovery)
	mux.HandleFunc("OPTIONS /.well-known/openid-configuration", publicPreflight)
	mux.HandleFunc("GET /.well-known/jwks.json", p.serveJWKS)
	mux.HandleFunc("OPTIONS /.well-known/jwks.json", publicPreflight)
	mux.HandleFunc("OPTIONS /oauth2/token", p.clientPreflight("POST"))
	mux.HandleFunc("OPTIONS /oauth2/revoke", p.clientPreflight("POST"))
	mux.HandleFunc("OPTIONS /userinfo", p.clientPreflight("GET, POST"))
	mux.HandleFunc("GET /oauth2/auth", p.authorize)
	mux.HandleFunc("POST /oauth2/auth", p.authorize)
	mux.HandleFunc("POST /oauth2/token", p.token)
	mux.HandleFunc("POST /oauth2/introspect", p.introspect)
	mux.HandleFunc("POST /oauth2/revoke", p.revoke)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	mux.HandleFunc("POST /userinfo", p.userinfo)
	mux.HandleFunc("GET /oauth2/logout", p.logout)
	mux.HandleFunc("POST /oauth2/logout", p.logout)
	if p.cfg.Devices != nil {
		mux.HandleFunc("POST "+DeviceAuthorizationPath, p.deviceAuthorization)
		mux.HandleFunc("GET "+DeviceVerificationPath, p.deviceVerification)
		mux.HandleFunc("POST "+DeviceVerificationPath, p.deviceVerification)
	}
}

func (p *Provider) renderDiscovery() ([]byte, error) {
	iss := p.cfg.Issuer
	doc := map[string]any{
		"issuer":                                                   iss,
		"authorization_endpoint":                                   iss + "/oauth2/auth",
		"token_endpoint":                                           iss + "/oauth2/token",
		"introspection_endpoint":                                   iss + "/oauth2/introspect",
		"revocation_endpoint":                                      iss + "/oauth2/revoke",
		"userinfo_endpoint":                                        iss + "/userinfo",
		"end_session_endpoint":                                     iss + "/oauth2/logout",
		"jwks_uri":                                                 iss + "/.well-known/jwks.json",
		"scopes_supported":                                         []string{"openid", "offline_access", "profile", "email"},
		"response_types_supported":                                 []string{"code"},
		"response_modes_supported":                                 []string{"query"},
		"grant_types_supported":                                    p.grantTypes(),
		"subject_types_supported":                                  []string{"public"},
		"id_token_signing_alg_values_supported":                    []string{p.cfg.Keys.Algorithm()},
		"token_endpoint_auth_methods_supported":                    []string{"client_secret_basic", "client_secret_post", methodPrivateKeyJWT, "none"},
		"introspection_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", methodPrivateKeyJWT},
		"revocation_endpoint_auth_methods_supported":               []string{"client_secret_basic", "client_secret_post", methodPrivateKeyJWT, "none"},
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgNames(),
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgNames(),
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgNames(),
		"code_challenge_methods_supported":                         []string{"S256"},
		"claims_supported":                                         []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "preferred_username", "email", "email_verified", "amr", "acr"},
		"acr_values_supported":                                     []string{policies.ACRPassword, policies.ACRMultiFactor},
		"claims_parameter_supported":                               false,
		"request_parameter_supported":                              false,
		"request_uri_parameter_supported":                          false,
		"authorization_response_iss_parameter_supported":           false,
		"frontchannel_logout_supported":                            false,
		"backchannel_logout_supported":                             false,
	}
	if p.cfg.Devices != nil {
		doc["device_authorization_endpoint"] = iss + DeviceAuthorizationPath
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render discovery: %w", err)
	}
	return b, nil
}

// grantTypes are the grant types discovery advertises: every one the
// server serves to some client (the password grant to those registered
// for it), unless the grant is turned off.
func (p *Provider) grantTypes() []string {
	return slices.DeleteFunc(GrantTypes(), func(g string) bool {
		return g == GrantPassword && p.cfg.PasswordGrant == nil || g == GrantDeviceCode && p.cfg.Devices == nil
	})
}

// serveDiscovery and serveJWKS write pre-rendered bytes with a precomputed
// ETag: these are the most requested documents and need no per-request work.
func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	p.discovery.serve(w, r, "public, max-age=3600")
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	// Short max-age: a rotation must reach relying parties quickly.
	p.cfg.Keys.jwks().serve(w, r, "public, max-age=60")
}

// cachedDoc is a rendered JSON document and its ETag.
type cachedDoc struct {
	body []byte
	etag string
}

func newCachedDoc(body []byte) cachedDoc {
	sum := sha256.Sum256(body)
	return cachedDoc{body: body, etag: fmt.Sprintf(`"%x"`, sum[:12])}
}

func (d cachedDoc) serve(w http.ResponseWriter, r *http.Request, cacheControl string) {
	h := w.Header()
	publicCORS(w)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", d.etag)
	if r.Header.Get("If-None-Match") == d.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(d.body)
}

// VerifyAccessToken checks a bearer access token (for the admin API).
func (p *Provider) VerifyAccessToken(ctx context.Context, token string) (*TokenInfo, error) {
	ar, err := p.accessToken(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("verify access token: %w", err)
	}
	info := &TokenInfo{
		ClientID: ar.GetClient().GetID(),
		Subject:  ar.GetSession().GetSubject(),
		Scopes:   ar.GetGrantedScopes(),
	}
	info.ExpiresAt = ar.GetSession().GetExpiresAt(fosite.AccessToken)
	return info, nil
}

// errNotAccessToken refuses a refresh token presented as a bearer token.
var errNotAccessToken = fosite.ErrInactiveToken.WithHint("The token is not an access token.")

// accessToken checks a bearer token. fosite's introspection falls back to
// the refresh token strategy when the token is not an access token, so the
// kind it found is checked: a refresh token is a credential for the token
// endpoint only, never a bearer token.
func (p *Provider) accessToken(ctx context.Context, token string) (fosite.AccessRequester, error) {
	tu, ar, err := p.f.IntrospectToken(ctx, token, fosite.AccessToken, newSession())
	if err != nil {
		return nil, err
	}
	if tu != fosite.AccessToken {
		return nil, errNotAccessToken
	}
	return ar, nil
}

// localPath is the authorize URL to come back to after login.
func authorizePath(form url.Values) string {
	return "/oauth2/auth?" + form.Encode()
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// record writes a security event; a failure to audit is logged, not fatal
// to the request it describes.
func (p *Provider) record(ctx context.Context, e audit.Event) {
	if p.cfg.Audit == nil {
		return
	}
	if err := p.cfg.Audit.Record(ctx, e); err != nil {
		p.cfg.Logger.ErrorContext(ctx, "record audit event", "type", e.Type, "err", err.Error())
	}
}

// recordIssued writes the event of a routine issuance, batched.
func (p *Provider) recordIssued(ctx context.Context, e audit.Event) {
	if p.cfg.Audit == nil {
		return
	}
	if err := p.cfg.Audit.RecordBatched(ctx, e); err != nil {
		p.cfg.Logger.ErrorContext(ctx, "record audit event", "type", e.Type, "err", err.Error())
	}
}

// clockedConfig makes fosite's expiry stamps follow the injected clock.
// fosite computes an expiry as time.Now() plus the lifespan; adding the
// injected clock's offset from the wall clock turns that into now() plus
// the lifespan. In production the clock is the wall clock and the offset
// is zero.
type clockedConfig struct {
	*fosite.Config
	now func() time.Time
}

func (c *clockedConfig) skew(d time.Duration) time.Duration {
	if d <= 0 {
		return d // fosite's "no expiry" (-1) stays as it is
	}
	off := time.Until(c.now())
	if off > -time.Second && off < time.Second {
		return d
	}
	return d + off
}

func (c *clockedConfig) GetAccessTokenLifespan(ctx context.Context) time.Duration {
	return c.skew(c.Config.GetAccessTokenLifespan(ctx))
}

func (c *clockedConfig) GetRefreshTokenLifespan(ctx context.Context) time.Duration {
	return c.skew(c.Config.GetRefreshTokenLifespan(ctx))
}

// GetAuthorizeCodeLifespan follows the client's policy when the request
// carries it (see withLifetimes).
func (c *clockedConfig) GetAuthorizeCodeLifespan(ctx context.Context) time.Duration {
	if l, ok := lifetimesFrom(ctx); ok && !l.CodeExpiresAt.IsZero() {
		return time.Until(l.CodeExpiresAt)
	}
	return c.skew(c.Config.GetAuthorizeCodeLifespan(ctx))
}

// GetIDTokenLifespan follows the client's policy when the request carries
// it (see withLifetimes).
func (c *clockedConfig) GetIDTokenLifespan(ctx context.Context) time.Duration {
	if l, ok := lifetimesFrom(ctx); ok && !l.IDTokenExpiresAt.IsZero() {
		return time.Until(l.IDTokenExpiresAt)
	}
	return c.skew(c.Config.GetIDTokenLifespan(ctx))
}
