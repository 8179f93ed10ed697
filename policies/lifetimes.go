package policies

import "time"

// Grant describes what a token request is for, as far as lifetimes care.
type Grant struct {
	// AuthTime is when the user last authenticated (logged in); zero for
	// client_credentials, which has no login and so no absolute cap.
	AuthTime time.Time
	// Admin is whether the subject is an administrator.
	Admin bool
	// LastUsed is when the token family was last used (issue or refresh);
	// zero means now.
	LastUsed time.Time
}

// Lifetimes are the expiry times of what one token response issues.
type Lifetimes struct {
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
	IDTokenExpiresAt time.Time
	CodeExpiresAt    time.Time
	// SessionEndsAt is the absolute cap of the login every expiry above is
	// held to; zero when there is none.
	SessionEndsAt time.Time
}

// Lifetimes computes the expiries of tokens issued at now for g.
//
// Access tokens live the access TTL (the administrators' when g.Admin and
// set). Refresh tokens live the refresh TTL (likewise), or in window mode
// until the access token's expiry plus the refresh window. An idle timeout
// caps the refresh token at now plus the timeout, since a family not used
// for that long has ended. An absolute timeout caps everything at login
// time plus the timeout, so a refresh never extends a session.
func (p Policy) Lifetimes(now time.Time, g Grant) Lifetimes {
	t := p.Token
	l := Lifetimes{
		AccessExpiresAt:  now.Add(p.accessTTL(g.Admin)),
		IDTokenExpiresAt: now.Add(time.Duration(t.IDTokenTTL)),
		CodeExpiresAt:    now.Add(time.Duration(t.AuthorizationCodeTTL)),
	}
	if ttl := p.refreshTTL(g.Admin); ttl > 0 {
		l.RefreshExpiresAt = now.Add(ttl)
	} else {
		l.RefreshExpiresAt = l.AccessExpiresAt.Add(time.Duration(t.RefreshWindow))
	}
	if idle := p.idleTimeout(g.Admin); idle > 0 {
		l.RefreshExpiresAt = earliest(l.RefreshExpiresAt, now.Add(idle))
	}
	if end, ok := p.Session.absoluteEnd(g.AuthTime); ok {
		l.SessionEndsAt = end
		l.AccessExpiresAt = earliest(l.AccessExpiresAt, end)
		l.RefreshExpiresAt = earliest(l.RefreshExpiresAt, end)
		l.IDTokenExpiresAt = earliest(l.IDTokenExpiresAt, end)
		l.CodeExpiresAt = earliest(l.CodeExpiresAt, end)
	}
	return l
}

// FamilyEnded reports whether the token family of g can no longer be
// refreshed at now, and why: ReasonAbsoluteTimeout when the login is older
// than the absolute timeout, ReasonIdleTimeout when the family has not been
// used for the idle timeout (the administrators' when g.Admin and set).
func (p Policy) FamilyEnded(now time.Time, g Grant) (ended bool, reason string) {
	if end, ok := p.Session.absoluteEnd(g.AuthTime); ok && !now.Before(end) {
		return true, ReasonAbsoluteTimeout
	}
	if idle := p.idleTimeout(g.Admin); idle > 0 && !g.LastUsed.IsZero() && !now.Before(g.LastUsed.Add(idle)) {
		return true, ReasonIdleTimeout
	}
	return false, ""
}

// LifetimesChanged reports whether any lifetime differs between before and
// after — the token TTLs, the refresh window, the administrators' overrides
// or the session timeouts — which is what token.revoke_on_change acts on.
func LifetimesChanged(before, after Policy) bool {
	type lifetimes struct {
		admin            AdminToken
		access, id, code Duration
		refresh, window  Duration
		absolute, idle   Duration
	}
	pick := func(p Policy) lifetimes {
		return lifetimes{
			admin:    p.Token.Admin,
			access:   p.Token.AccessTokenTTL,
			id:       p.Token.IDTokenTTL,
			code:     p.Token.AuthorizationCodeTTL,
			refresh:  p.Token.RefreshTokenTTL,
			window:   p.Token.RefreshWindow,
			absolute: p.Session.AbsoluteTimeout,
			idle:     p.Session.IdleTimeout,
		}
	}
	return pick(before) != pick(after)
}

func (p Policy) accessTTL(admin bool) time.Duration {
	if admin && p.Token.Admin.AccessTokenTTL > 0 {
		return time.Duration(p.Token.Admin.AccessTokenTTL)
	}
	return time.Duration(p.Token.AccessTokenTTL)
}

func (p Policy) refreshTTL(admin bool) time.Duration {
	if admin && p.Token.Admin.RefreshTokenTTL > 0 {
		return time.Duration(p.Token.Admin.RefreshTokenTTL)
	}
	return time.Duration(p.Token.RefreshTokenTTL)
}

func (p Policy) idleTimeout(admin bool) time.Duration {
	if admin && p.Token.Admin.IdleTimeout > 0 {
		return time.Duration(p.Token.Admin.IdleTimeout)
	}
	return time.Duration(p.Session.IdleTimeout)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
