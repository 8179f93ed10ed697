package policies

import (
	"fmt"
	"time"

	"github.com/portcullis/portcullis/fielderr"
)

// Bounds of the recommended ranges. Values outside them are accepted with a
// warning: they are legitimate in some deployments, just rarely wise.
const (
	minAccessTTL         = time.Minute      // warn below; 5m to 1h recommended
	maxAccessTTL         = time.Hour        // warn above
	minRefreshTTL        = 15 * time.Minute // warn below; 24h to 720h typical
	maxCodeTTL           = 10 * time.Minute // RFC 6749 section 4.1.2
	maxIDTokenTTL        = 24 * time.Hour
	maxRefreshReuseGrace = time.Minute
	minIdleTimeout       = 5 * time.Minute
)

// Validate checks p. err is a *fielderr.Error listing every value that makes
// no sense (zero or negative lifetimes, refresh not outliving access, both or
// neither refresh mode, unknown enumeration values), each with its key path.
// warnings lists accepted values outside the recommended ranges; they are
// meant for the log and the API response. Warnings are only given for keys
// that are otherwise valid.
func (p Policy) Validate() (warnings []fielderr.Field, err error) {
	v := validator{}
	for _, s := range Sections() {
		s.validate(p, &v)
	}
	// Rules that need more than one section follow. An application that
	// customizes some sections is judged with the live global values of
	// the others, so such a rule is best a warning; the policy store
	// refuses a global change that would make an application's mix fail
	// one. The absolute timeout is judged against the access lifetime.
	if abs, access := p.Session.AbsoluteTimeout, p.Token.AccessTokenTTL; abs > 0 && access > 0 && abs < access {
		v.warn("session.absolute_timeout", "%s is shorter than token.access_token_ttl (%s), so every access token is cut short; use at least the access token lifetime, typically 8h to 720h", abs, access)
	}
	return v.warnings, v.errs.Err()
}

type validator struct {
	errs     fielderr.Error
	warnings []fielderr.Field
}

func (v *validator) fail(field, format string, args ...any) { v.errs.Add(field, format, args...) }

func (v *validator) warn(field, format string, args ...any) {
	v.warnings = append(v.warnings, fielderr.Field{Field: field, Message: fmt.Sprintf(format, args...)})
}

// positive refuses d unless it is above zero and reports whether it was.
func (v *validator) positive(field string, d Duration) bool {
	if d <= 0 {
		v.fail(field, "must be positive (got %s)", d)
		return false
	}
	return true
}

// nonNegativeInt refuses a negative n; 0 turns a rule off.
func (v *validator) nonNegativeInt(field string, n int) {
	if n < 0 {
		v.fail(field, "must not be negative (got %d); use 0 to turn it off", n)
	}
}

// nonNegative refuses a negative d and reports whether d was valid.
func (v *validator) nonNegative(field string, d Duration) bool {
	if d < 0 {
		v.fail(field, "must not be negative (got %s); use \"0s\" to turn it off", d)
		return false
	}
	return true
}

func (t Token) validate(v *validator) {
	accessOK := v.positive("token.access_token_ttl", t.AccessTokenTTL)
	if accessOK && (t.AccessTokenTTL < Duration(minAccessTTL) || t.AccessTokenTTL > Duration(maxAccessTTL)) {
		v.warn("token.access_token_ttl", "%s is outside the recommended range of 5m to 1h", t.AccessTokenTTL)
	}
	if v.positive("token.id_token_ttl", t.IDTokenTTL) && t.IDTokenTTL > Duration(maxIDTokenTTL) {
		v.warn("token.id_token_ttl", "%s is longer than the recommended maximum of 24h; 5m to 1h is typical", t.IDTokenTTL)
	}
	if v.positive("token.authorization_code_ttl", t.AuthorizationCodeTTL) && t.AuthorizationCodeTTL > Duration(maxCodeTTL) {
		v.warn("token.authorization_code_ttl", "%s exceeds the recommended maximum of 10m: RFC 6749 recommends at most 10 minutes (fosite's 15m default is too long)", t.AuthorizationCodeTTL)
	}

	refreshOK := v.nonNegative("token.refresh_token_ttl", t.RefreshTokenTTL)
	windowOK := v.nonNegative("token.refresh_window", t.RefreshWindow)
	if refreshOK && windowOK {
		switch {
		case t.RefreshTokenTTL > 0 && t.RefreshWindow > 0:
			v.fail("token.refresh_window", "set either token.refresh_token_ttl or token.refresh_window, not both (set the other to \"0s\")")
		case t.RefreshTokenTTL == 0 && t.RefreshWindow == 0:
			v.fail("token.refresh_token_ttl", "set either token.refresh_token_ttl or token.refresh_window; refresh tokens need a lifetime")
		}
	}
	if refreshOK && t.RefreshTokenTTL > 0 {
		if accessOK && t.RefreshTokenTTL <= t.AccessTokenTTL {
			v.fail("token.refresh_token_ttl", "must exceed token.access_token_ttl (%s), got %s", t.AccessTokenTTL, t.RefreshTokenTTL)
		} else if t.RefreshTokenTTL < Duration(minRefreshTTL) {
			v.warn("token.refresh_token_ttl", "%s is shorter than the recommended minimum of 15m; 24h to 720h is typical", t.RefreshTokenTTL)
		}
	}
	if windowOK && t.RefreshWindow > 0 && t.RefreshWindow < Duration(minRefreshTTL) {
		v.warn("token.refresh_window", "%s is shorter than the recommended minimum of 15m", t.RefreshWindow)
	}
	if v.nonNegative("token.refresh_reuse_grace", t.RefreshReuseGrace) && t.RefreshReuseGrace > Duration(maxRefreshReuseGrace) {
		v.warn("token.refresh_reuse_grace", "%s is longer than the recommended maximum of 1m; a few seconds covers a client racing itself", t.RefreshReuseGrace)
	}

	switch t.Format {
	case FormatOpaque, FormatJWT:
	default:
		v.fail("token.format", "must be %q or %q (got %q)", FormatOpaque, FormatJWT, t.Format)
	}

	t.validateAdmin(v, accessOK, refreshOK)
}

func (t Token) validateAdmin(v *validator, accessOK, refreshOK bool) {
	a := t.Admin
	adminAccessOK := v.nonNegative("token.admin.access_token_ttl", a.AccessTokenTTL)
	if adminAccessOK && a.AccessTokenTTL > 0 && (a.AccessTokenTTL < Duration(minAccessTTL) || a.AccessTokenTTL > Duration(maxAccessTTL)) {
		v.warn("token.admin.access_token_ttl", "%s is outside the recommended range of 5m to 1h", a.AccessTokenTTL)
	}
	adminRefreshOK := v.nonNegative("token.admin.refresh_token_ttl", a.RefreshTokenTTL)
	if v.nonNegative("token.admin.idle_timeout", a.IdleTimeout) && a.IdleTimeout > 0 && a.IdleTimeout < Duration(minIdleTimeout) {
		v.warn("token.admin.idle_timeout", "%s is shorter than the recommended minimum of 5m", a.IdleTimeout)
	}
	if !adminAccessOK || !adminRefreshOK {
		return
	}

	// The administrators' refresh lifetime must outlive their access
	// lifetime just as everyone's must; either side may be inherited.
	access, accessKnown := a.AccessTokenTTL, a.AccessTokenTTL > 0
	if !accessKnown {
		access, accessKnown = t.AccessTokenTTL, accessOK
	}
	switch {
	case a.RefreshTokenTTL > 0:
		if accessKnown && a.RefreshTokenTTL <= access {
			v.fail("token.admin.refresh_token_ttl", "must exceed the administrators' access token lifetime (%s), got %s", access, a.RefreshTokenTTL)
		} else if a.RefreshTokenTTL < Duration(minRefreshTTL) {
			v.warn("token.admin.refresh_token_ttl", "%s is shorter than the recommended minimum of 15m", a.RefreshTokenTTL)
		}
	case a.AccessTokenTTL > 0 && refreshOK && t.RefreshTokenTTL > 0 && t.RefreshTokenTTL <= a.AccessTokenTTL:
		v.fail("token.admin.access_token_ttl", "must be shorter than token.refresh_token_ttl (%s), which administrators' refresh tokens use; got %s", t.RefreshTokenTTL, a.AccessTokenTTL)
	}
}

func (s Session) validate(v *validator) {
	v.nonNegative("session.absolute_timeout", s.AbsoluteTimeout)
	if v.nonNegative("session.idle_timeout", s.IdleTimeout) && s.IdleTimeout > 0 && s.IdleTimeout < Duration(minIdleTimeout) {
		v.warn("session.idle_timeout", "%s is shorter than the recommended minimum of 5m; 30m to 24h is typical", s.IdleTimeout)
	}
	if s.MaxConcurrent < 0 {
		v.fail("session.max_concurrent", "must not be negative (got %d); use 0 for unlimited", s.MaxConcurrent)
	}
	switch s.OnLimit {
	case OnLimitEvictOldest, OnLimitReject:
	default:
		v.fail("session.on_limit", "must be %q or %q (got %q)", OnLimitEvictOldest, OnLimitReject, s.OnLimit)
	}
	if !s.Cookie.Browser && s.Cookie.Duration <= 0 {
		v.fail("session.cookie", "must be %q or a positive duration (got %s)", browserText, s.Cookie)
	}
	v.nonNegative("session.reauth_max_age", s.ReauthMaxAge)
	for i, action := range s.ReauthFor {
		switch {
		case action == ActionRecoveryCodes:
			// Named apart so that whoever lists it learns why it is refused.
			v.fail(indexKey("session.reauth_for", i), "%q cannot be listed: regenerating recovery codes always needs a fresh second factor", action)
		case !isReauthAction(action):
			v.fail(indexKey("session.reauth_for", i), "must be one of %q, %q, %q or %q (got %q)",
				ActionPasswordChange, ActionMFARemoval, ActionMFAEnrollment, ActionEmailChange, action)
		}
	}
}

func isReauthAction(s string) bool {
	switch s {
	case ActionPasswordChange, ActionMFARemoval, ActionMFAEnrollment, ActionEmailChange:
		return true
	}
	return false
}
