package storage

import "time"

// Client is an OAuth 2.0 client registration. It implements fosite.Client and
// fosite.OpenIDConnectClient (see client.go).
type Client struct {
	ID                     string   `gorm:"column:id;primaryKey"`
	Name                   string   `gorm:"column:name"`
	SecretHash             string   `gorm:"column:secret_hash"`
	RedirectURIs           []string `gorm:"column:redirect_uris;serializer:json"`
	PostLogoutRedirectURIs []string `gorm:"column:post_logout_redirect_uris;serializer:json"`
	GrantTypes             []string `gorm:"column:grant_types;serializer:json"`
	ResponseTypes          []string `gorm:"column:response_types;serializer:json"`
	Scopes                 []string `gorm:"column:scopes;serializer:json"`
	Audience               []string `gorm:"column:audience;serializer:json"`
	Public                 bool     `gorm:"column:public"`
	SkipConsent            bool     `gorm:"column:skip_consent"`
	// Introspect lets the client (a resource server) introspect tokens
	// issued to any client; without it, only its own.
	Introspect              bool   `gorm:"column:introspect"`
	TokenEndpointAuthMethod string `gorm:"column:token_endpoint_auth_method"`
	AccessTokenFormat       string `gorm:"column:access_token_format"` // "" (server default), "opaque" or "jwt"
	LogoURI                 string `gorm:"column:logo_uri"`
	PolicyURI               string `gorm:"column:policy_uri"`
	TosURI                  string `gorm:"column:tos_uri"`
	// AllowedCORSOrigins are the browser origins (scheme://host[:port])
	// allowed to call the token, revocation and userinfo endpoints for this
	// client. Mirrored, for preflight lookups, in client_cors_origins.
	AllowedCORSOrigins []string `gorm:"column:allowed_cors_origins;serializer:json"`
	// JWKS is the client's public JSON Web Key Set (private_key_jwt).
	JWKS                        string    `gorm:"column:jwks"`
	TokenEndpointAuthSigningAlg string    `gorm:"column:token_endpoint_auth_signing_alg"`
	CreatedAt                   time.Time `gorm:"column:created_at"`
	UpdatedAt                   time.Time `gorm:"column:updated_at"`
}

// TableName pins the table name so it does not depend on gorm's pluraliser.
func (Client) TableName() string { return "clients" }

// User is a person who signs in. Username is stored in its canonical form
// (see NormalizeUsername).
type User struct {
	ID            string    `gorm:"column:id;primaryKey"`
	Username      string    `gorm:"column:username"`
	Email         string    `gorm:"column:email"`
	EmailVerified bool      `gorm:"column:email_verified"`
	PasswordHash  string    `gorm:"column:password_hash"`
	Admin         bool      `gorm:"column:admin"`
	Disabled      bool      `gorm:"column:disabled"`
	CreatedAt     time.Time `gorm:"column:created_at"`
	UpdatedAt     time.Time `gorm:"column:updated_at"`
	// PasswordChangedAt is when the password was last set; nil for one set
	// before this was recorded.
	PasswordChangedAt *time.Time `gorm:"column:password_changed_at"`
	// PasswordFacts are the password policy's facts of the current
	// password, as JSON (policies.PasswordFacts); "" when not recorded.
	PasswordFacts string `gorm:"column:password_facts"`
	// PasswordMustChange makes the next sign-in change the password first
	// (an administrator asked for it).
	PasswordMustChange bool `gorm:"column:password_must_change"`
	// ExpiresAt is an administrator's expiry date for the account; nil
	// follows the registration policy.
	ExpiresAt *time.Time `gorm:"column:expires_at"`
}

// TableName pins the table name.
func (User) TableName() string { return "users" }

// SigningKey is one asymmetric key pair used to sign ID tokens and JWT access
// tokens. PrivateKey holds the private JWK encrypted with the system secret;
// PublicJWK is the public half in JSON, served by the JWKS endpoint.
type SigningKey struct {
	ID         string     `gorm:"column:id;primaryKey"` // the JWK "kid"
	Algorithm  string     `gorm:"column:algorithm"`
	PrivateKey string     `gorm:"column:private_key"`
	PublicJWK  string     `gorm:"column:public_jwk"`
	CreatedAt  time.Time  `gorm:"column:created_at"`
	RetiredAt  *time.Time `gorm:"column:retired_at"` // no longer signs; still published
	// PublishUntil is when a retired key leaves the JWKS (nil: when revoked).
	PublishUntil *time.Time `gorm:"column:publish_until"`
	RevokedAt    *time.Time `gorm:"column:revoked_at"` // no longer published either
}

// TableName pins the table name.
func (SigningKey) TableName() string { return "signing_keys" }

// BrowserSession is a signed-in browser. ID is the SHA-256 of the cookie
// value, so a database leak does not hand out live sessions.
type BrowserSession struct {
	ID         string    `gorm:"column:id;primaryKey"`
	UserID     string    `gorm:"column:user_id"`
	AuthTime   time.Time `gorm:"column:auth_time"`
	CreatedAt  time.Time `gorm:"column:created_at"`
	LastSeenAt time.Time `gorm:"column:last_seen_at"`
	ExpiresAt  time.Time `gorm:"column:expires_at"`
	IP         string    `gorm:"column:ip"`
	UserAgent  string    `gorm:"column:user_agent"`
	// AMR and ACR say how the person proved who they are (RFC 8176
	// methods, and the assurance level they reach).
	AMR []string `gorm:"column:amr;serializer:json"`
	ACR string   `gorm:"column:acr"`
	// SecondFactorAt is when the person last passed a second factor in
	// this session (sign-in or step-up); nil when they never did, so a
	// step-up rule can ask "how long ago" without trusting AMR alone.
	SecondFactorAt *time.Time `gorm:"column:second_factor_at"`
	// DeviceID is the registry device (UserDevice) the session was started
	// from, "" when the sign-in named none (stored as NULL).
	DeviceID string `gorm:"column:device_id;default:null"`
}

// TableName pins the table name.
func (BrowserSession) TableName() string { return "browser_sessions" }

// Consent records the scopes a user granted a client, so the consent page is
// shown once per new scope rather than on every sign-in.
type Consent struct {
	UserID    string    `gorm:"column:user_id;primaryKey"`
	ClientID  string    `gorm:"column:client_id;primaryKey"`
	Scopes    []string  `gorm:"column:scopes;serializer:json"`
	CreatedAt time.Time `gorm:"column:created_at"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
}

// TableName pins the table name.
func (Consent) TableName() string { return "consents" }

// tokenRow is one fosite request persisted under a token signature: an
// authorization code, access token, refresh token, PKCE or OIDC session.
// Tokens are stored by signature only, never in the clear.
type tokenRow struct {
	Kind            string     `gorm:"column:kind;primaryKey"`
	Signature       string     `gorm:"column:signature;primaryKey"`
	RequestID       string     `gorm:"column:request_id"`
	ClientID        string     `gorm:"column:client_id"`
	Subject         string     `gorm:"column:subject"`
	SessionID       string     `gorm:"column:session_id"`
	Active          bool       `gorm:"column:active"`
	RequestedAt     time.Time  `gorm:"column:requested_at"`
	ExpiresAt       *time.Time `gorm:"column:expires_at"`
	AccessSignature string     `gorm:"column:access_signature"`
	Scopes          []string   `gorm:"column:scopes;serializer:json"`
	GrantedScopes   []string   `gorm:"column:granted_scopes;serializer:json"`
	Audience        []string   `gorm:"column:audience;serializer:json"`
	GrantedAudience []string   `gorm:"column:granted_audience;serializer:json"`
	Form            string     `gorm:"column:form"`
	Session         []byte     `gorm:"column:session"`
	CreatedAt       time.Time  `gorm:"column:created_at"`
}

func (tokenRow) TableName() string { return "oauth_tokens" }

// Token kinds stored in oauth_tokens.
const (
	kindCode    = "code"
	kindAccess  = "access"
	kindRefresh = "refresh"
	kindPKCE    = "pkce"
	kindOIDC    = "oidc"
)

type corsOriginRow struct {
	Origin   string `gorm:"column:origin;primaryKey"`
	ClientID string `gorm:"column:client_id;primaryKey"`
}

func (corsOriginRow) TableName() string { return "client_cors_origins" }

type jtiRow struct {
	JTI       string    `gorm:"column:jti;primaryKey"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (jtiRow) TableName() string { return "client_assertion_jtis" }

// LoginFlow is one sign-in in progress (see authn). ID is random and
// appears in the login page's URL; BrowserBinding is the SHA-256 of the
// cookie that ties the flow to the browser that started it.
type LoginFlow struct {
	ID             string `gorm:"column:id;primaryKey"`
	BrowserBinding string `gorm:"column:browser_binding"`
	// ClientID is the application the sign-in is for ("" for none); its
	// policy judges the attempt.
	ClientID string `gorm:"column:client_id"`
	// Request is the authorization request to resume, form-encoded; empty
	// for a sign-in that returns to ReturnTo, a local path.
	Request   string `gorm:"column:request"`
	ReturnTo  string `gorm:"column:return_to"`
	LoginHint string `gorm:"column:login_hint"`
	// UserID and AMR are set when the flow completes.
	UserID      string     `gorm:"column:user_id"`
	AMR         []string   `gorm:"column:amr;serializer:json"`
	CreatedAt   time.Time  `gorm:"column:created_at"`
	ExpiresAt   time.Time  `gorm:"column:expires_at"`
	CompletedAt *time.Time `gorm:"column:completed_at"`
	ResumedAt   *time.Time `gorm:"column:resumed_at"`
	// Stage is the step the flow waits on once the password was verified
	// (FlowStage*; UserID is then set); "" before that.
	Stage string `gorm:"column:stage"`
}

// Login flow stages: what a flow whose password was proven still waits on.
const (
	FlowStagePasswordChange = "password_change"
	FlowStageSecondFactor   = "second_factor"
	FlowStageMFAEnrollment  = "mfa_enrollment"
)

// TableName pins the table name.
func (LoginFlow) TableName() string { return "login_flows" }

// CaptchaChallenge is one picture of the built-in captcha awaiting its
// answer. AnswerHash is a keyed hash of the id and the digits (see
// captcha), never the digits: whoever reads the table learns nothing to
// answer with.
type CaptchaChallenge struct {
	ID         string    `gorm:"column:id;primaryKey"`
	AnswerHash string    `gorm:"column:answer_hash"`
	CreatedAt  time.Time `gorm:"column:created_at"`
	ExpiresAt  time.Time `gorm:"column:expires_at"`
}

// TableName pins the table name.
func (CaptchaChallenge) TableName() string { return "captcha_challenges" }
