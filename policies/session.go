package policies

import (
	"slices"
	"time"
)

// Admit decides a new login for a user who already holds active sessions:
// evict is how many of the oldest to end first (evict_oldest), reject is
// whether to refuse the login instead (reject). With max_concurrent 0 there
// is no limit.
func (s Session) Admit(active int) (evict int, reject bool) {
	if s.MaxConcurrent <= 0 || active < s.MaxConcurrent {
		return 0, false
	}
	if s.OnLimit == OnLimitReject {
		return 0, true
	}
	// Room for the new session: active+1-evict == MaxConcurrent.
	return active - s.MaxConcurrent + 1, false
}

// NeedsReauth reports whether action demands a fresh credential check at
// now, given the last one at lastAuth: only actions listed in reauth_for,
// only when reauth_max_age is set, and only when the last check is older
// than it (a zero lastAuth is older than anything).
func (s Session) NeedsReauth(action string, lastAuth, now time.Time) bool {
	if s.ReauthMaxAge <= 0 || !slices.Contains(s.ReauthFor, action) {
		return false
	}
	return lastAuth.IsZero() || now.Sub(lastAuth) > time.Duration(s.ReauthMaxAge)
}

// CookieMaxAge is the login cookie's lifetime: persistent false means a
// browser-session cookie (no Max-Age), which dies with the browser.
func (s Session) CookieMaxAge() (maxAge time.Duration, persistent bool) {
	if s.Cookie.Browser {
		return 0, false
	}
	return time.Duration(s.Cookie.Duration), true
}

// BrowserSessionEnded reports whether a browser session that logged in at
// authTime and was last seen at lastSeen has ended at now, and why
// (ReasonAbsoluteTimeout or ReasonIdleTimeout). A zero time disables the
// check it feeds.
func (s Session) BrowserSessionEnded(now, authTime, lastSeen time.Time) (bool, string) {
	if end, ok := s.absoluteEnd(authTime); ok && !now.Before(end) {
		return true, ReasonAbsoluteTimeout
	}
	if idle := time.Duration(s.IdleTimeout); idle > 0 && !lastSeen.IsZero() && !now.Before(lastSeen.Add(idle)) {
		return true, ReasonIdleTimeout
	}
	return false, ""
}

// absoluteEnd is login time plus the absolute timeout; there is none without
// a timeout or without a login (client_credentials).
func (s Session) absoluteEnd(authTime time.Time) (time.Time, bool) {
	if s.AbsoluteTimeout <= 0 || authTime.IsZero() {
		return time.Time{}, false
	}
	return authTime.Add(time.Duration(s.AbsoluteTimeout)), true
}
