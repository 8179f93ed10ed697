package policies

import (
	"encoding/json"
	"time"
)

// Values of Token.Format.
const (
	FormatOpaque = "opaque"
	FormatJWT    = "jwt"
)

// Values of Session.OnLimit.
const (
	OnLimitEvictOldest = "evict_oldest"
	OnLimitReject      = "reject"
)

// Sensitive actions that Session.ReauthFor may list.
const (
	ActionPasswordChange = "password_change"
	ActionMFARemoval     = "mfa_removal"
	ActionMFAEnrollment  = "mfa_enrollment"
	ActionEmailChange    = "email_change"
)

// ActionRecoveryCodes is regenerating an account's recovery codes. It is
// not a reauth_for value: like ActionMFARemoval it always needs a fresh
// second factor (see Session.SecondFactorStale), so listing it would change
// nothing.
const ActionRecoveryCodes = "recovery_codes"

// Reasons FamilyEnded and BrowserSessionEnded give; they are also the
// machine-readable reasons of the audit events that follow.
const (
	ReasonAbsoluteTimeout = "absolute_timeout"
	ReasonIdleTimeout     = "idle_timeout"
)

// Policy is the whole policy document, one field per section; Sections
// lists them, and a field missing there fails the tests. The global policy
// is Defaults ⊕ config.toml ⊕ the admins' overlay. An application keeps its
// own copy of each section it customizes and follows the global policy live
// in the others (see ClientPolicy).
type Policy struct {
	Token    Token    `json:"token" toml:"token"`
	Session  Session  `json:"session" toml:"session"`
	Password Password `json:"password" toml:"password"`
	Lockout  Lockout  `json:"lockout" toml:"lockout"`
	IP       IP       `json:"ip" toml:"ip"`
	Captcha  Captcha  `json:"captcha" toml:"captcha"`

	Registration Registration `json:"registration" toml:"registration"`
	MFA          MFA          `json:"mfa" toml:"mfa"`
	DeviceFlow   DeviceFlow   `json:"device_flow" toml:"device_flow"`
}

// Token is the token policy: lifetimes of what the token endpoint issues.
type Token struct {
	// AccessTokenTTL is how long an access token is valid. Default 15m;
	// must be positive; recommended 5m to 1h (under 1m or over 1h warns).
	AccessTokenTTL Duration `json:"access_token_ttl" toml:"access_token_ttl"`
	// IDTokenTTL is how long an ID token is valid. Default 1h; must be
	// positive; over 24h warns.
	IDTokenTTL Duration `json:"id_token_ttl" toml:"id_token_ttl"`
	// AuthorizationCodeTTL is how long an authorization code may wait to
	// be exchanged. Default 10m; must be positive; over 10m warns (RFC 6749
	// section 4.1.2 recommends at most 10 minutes; fosite's 15m is longer).
	AuthorizationCodeTTL Duration `json:"authorization_code_ttl" toml:"authorization_code_ttl"`
	// RefreshTokenTTL is how long each refresh token lives from its issue;
	// 0s means refresh lifetimes follow RefreshWindow instead. Default
	// 168h; must exceed AccessTokenTTL; under 15m warns, 24h to 720h is
	// typical. Exactly one of RefreshTokenTTL and RefreshWindow is set.
	RefreshTokenTTL Duration `json:"refresh_token_ttl" toml:"refresh_token_ttl"`
	// RefreshWindow lets a refresh token be used until this long after the
	// access token it came with expired (the "expired token refresh time
	// limit" of other systems). Default 0s (unused); under 15m warns.
	RefreshWindow Duration `json:"refresh_window" toml:"refresh_window"`
	// RefreshReuseGrace is how long after a refresh token's first use a
	// second use gets the same result instead of revoking the family,
	// for clients that race themselves. Default 0s; over 60s warns.
	RefreshReuseGrace Duration `json:"refresh_reuse_grace" toml:"refresh_reuse_grace"`
	// Format is the access token format for clients that do not choose:
	// "opaque" (default; revocable) or "jwt".
	Format string `json:"format" toml:"format"`
	// RevokeOnChange revokes every token issued under the old rules when a
	// lifetime changes (see LifetimesChanged). Default false.
	RevokeOnChange bool `json:"revoke_on_change" toml:"revoke_on_change"`
	// Admin overrides lifetimes when the subject is an administrator.
	Admin AdminToken `json:"admin" toml:"admin"`
}

// AdminToken holds the lifetimes that apply instead of the general ones
// when the subject is an administrator; each 0s (the default) means "the
// same as everyone".
type AdminToken struct {
	// AccessTokenTTL overrides Token.AccessTokenTTL; under 1m or over 1h
	// warns.
	AccessTokenTTL Duration `json:"access_token_ttl" toml:"access_token_ttl"`
	// RefreshTokenTTL overrides Token.RefreshTokenTTL (and, in window mode,
	// the window); must exceed the administrators' access lifetime; under
	// 15m warns.
	RefreshTokenTTL Duration `json:"refresh_token_ttl" toml:"refresh_token_ttl"`
	// IdleTimeout overrides Session.IdleTimeout for token families; under
	// 5m warns.
	IdleTimeout Duration `json:"idle_timeout" toml:"idle_timeout"`
}

// Session is the session policy: browser login sessions and the token
// families that descend from a login.
type Session struct {
	// AbsoluteTimeout caps everything issued under one login at login time
	// plus this; refreshing never extends it. Default 0s (unlimited);
	// shorter than the access token lifetime warns.
	AbsoluteTimeout Duration `json:"absolute_timeout" toml:"absolute_timeout"`
	// IdleTimeout ends a session or token family not used for this long.
	// Default 0s (none); under 5m warns, 30m to 24h is typical.
	IdleTimeout Duration `json:"idle_timeout" toml:"idle_timeout"`
	// MaxConcurrent is how many sessions one user may hold. Default 0
	// (unlimited); must not be negative.
	MaxConcurrent int `json:"max_concurrent" toml:"max_concurrent"`
	// OnLimit is what a login beyond MaxConcurrent does: "evict_oldest"
	// (default) ends the oldest sessions, "reject" refuses the login.
	OnLimit string `json:"on_limit" toml:"on_limit"`
	// Cookie is the login cookie's lifetime: "browser" or a positive
	// duration. Default 336h (1209600 s).
	Cookie CookieLifetime `json:"cookie" toml:"cookie"`
	// InvalidateOnPasswordChange ends every other session and token family
	// of a user whose password changes or is reset. Default true.
	InvalidateOnPasswordChange bool `json:"invalidate_on_password_change" toml:"invalidate_on_password_change"`
	// ReauthMaxAge is how old the last credential check may be before an
	// action in ReauthFor demands a fresh one. Default 0s (never demand);
	// 5m to 1h is typical.
	ReauthMaxAge Duration `json:"reauth_max_age" toml:"reauth_max_age"`
	// ReauthFor lists the actions ReauthMaxAge guards: password_change,
	// mfa_removal, mfa_enrollment, email_change. Default
	// ["password_change", "mfa_removal"].
	ReauthFor []string `json:"reauth_for" toml:"reauth_for"`
}

// Defaults returns the built-in policy, the base everything else is layered
// on: every section's defaults (see Sections). It returns a fresh value each
// time, so callers may modify it.
func Defaults() Policy {
	var p Policy
	for _, s := range Sections() {
		s.Field(&p).Set(s.defaults())
	}
	return p
}

func defaultToken() Token {
	return Token{
		AccessTokenTTL:       Duration(15 * time.Minute),
		IDTokenTTL:           Duration(time.Hour),
		AuthorizationCodeTTL: Duration(10 * time.Minute),
		RefreshTokenTTL:      Duration(168 * time.Hour),
		Format:               FormatOpaque,
	}
}

func defaultSession() Session {
	return Session{
		OnLimit:                    OnLimitEvictOldest,
		Cookie:                     CookieLifetime{Duration: Duration(336 * time.Hour)},
		InvalidateOnPasswordChange: true,
		ReauthFor:                  []string{ActionPasswordChange, ActionMFARemoval},
	}
}

// Canonical is p's deterministic JSON form, for comparing policies byte for
// byte (an invalid patch must leave the effective policy identical) and for
// storing snapshots. A nil and an empty list (reauth_for) mean the same and
// encode the same.
func (p Policy) Canonical() []byte {
	p = p.clone()
	for _, s := range Sections() {
		emptyNotNil(s.Field(&p))
	}
	b, err := json.Marshal(p)
	if err != nil {
		// Every field's marshaller is infallible; reaching this is a bug
		// in this package, not bad input.
		panic("policies: marshal policy: " + err.Error())
	}
	return b
}

// Clone returns a copy of p that shares no memory with it: changing a list
// in the copy leaves p alone.
func (p Policy) Clone() Policy { return p.clone() }

// clone copies every section deeply, so that nothing returned by this
// package can alias a caller's slices, whatever fields sections gain.
func (p Policy) clone() Policy {
	for _, s := range Sections() {
		f := s.Field(&p)
		f.Set(deepCopy(f))
	}
	return p
}
