package policies

import (
	"testing"
	"time"
)

func TestAdmit(t *testing.T) {
	tests := []struct {
		name       string
		max        int
		onLimit    string
		active     int
		wantEvict  int
		wantReject bool
	}{
		{"unlimited", 0, OnLimitEvictOldest, 100, 0, false},
		{"unlimited reject", 0, OnLimitReject, 100, 0, false},
		{"first session", 1, OnLimitReject, 0, 0, false},
		{"room left", 3, OnLimitEvictOldest, 2, 0, false},
		{"full evicts one", 3, OnLimitEvictOldest, 3, 1, false},
		{"over the limit evicts the excess", 3, OnLimitEvictOldest, 5, 3, false},
		{"single session evicts the other", 1, OnLimitEvictOldest, 1, 1, false},
		{"room left reject", 3, OnLimitReject, 2, 0, false},
		{"full rejects", 3, OnLimitReject, 3, 0, true},
		{"over the limit rejects", 3, OnLimitReject, 4, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Session{MaxConcurrent: tt.max, OnLimit: tt.onLimit}
			evict, reject := s.Admit(tt.active)
			if evict != tt.wantEvict || reject != tt.wantReject {
				t.Errorf("Admit(%d) = %d, %v; want %d, %v", tt.active, evict, reject, tt.wantEvict, tt.wantReject)
			}
		})
	}
}

func TestNeedsReauth(t *testing.T) {
	now := t0()
	at := func(s string) time.Time { return now.Add(time.Duration(d(s))) }
	guarded := Session{ReauthMaxAge: d("15m"), ReauthFor: []string{ActionPasswordChange, ActionMFARemoval}}
	tests := []struct {
		name     string
		s        Session
		action   string
		lastAuth time.Time
		want     bool
	}{
		{"fresh enough", guarded, ActionPasswordChange, at("-10m"), false},
		{"exactly the max age", guarded, ActionPasswordChange, at("-15m"), false},
		{"too old", guarded, ActionPasswordChange, at("-15m1s"), true},
		{"never authenticated", guarded, ActionMFARemoval, time.Time{}, true},
		{"action not listed", guarded, ActionEmailChange, at("-24h"), false},
		{"unknown action", guarded, "delete_account", at("-24h"), false},
		{"max age 0 never demands", Session{ReauthFor: []string{ActionPasswordChange}}, ActionPasswordChange, at("-24h"), false},
		{"empty list never demands", Session{ReauthMaxAge: d("15m")}, ActionPasswordChange, at("-24h"), false},
		{"defaults never demand", Defaults().Session, ActionPasswordChange, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.NeedsReauth(tt.action, tt.lastAuth, now); got != tt.want {
				t.Errorf("NeedsReauth(%q) = %v, want %v", tt.action, got, tt.want)
			}
		})
	}
}

func TestCookieMaxAge(t *testing.T) {
	tests := []struct {
		name       string
		cookie     CookieLifetime
		maxAge     time.Duration
		persistent bool
	}{
		{"default", Defaults().Session.Cookie, 1209600 * time.Second, true},
		{"browser", CookieLifetime{Browser: true}, 0, false},
		{"eight hours", CookieLifetime{Duration: d("8h")}, 8 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxAge, persistent := Session{Cookie: tt.cookie}.CookieMaxAge()
			if maxAge != tt.maxAge || persistent != tt.persistent {
				t.Errorf("CookieMaxAge = %v, %v; want %v, %v", maxAge, persistent, tt.maxAge, tt.persistent)
			}
		})
	}
}

func TestBrowserSessionEnded(t *testing.T) {
	now := t0()
	at := func(s string) time.Time { return now.Add(time.Duration(d(s))) }
	both := Session{AbsoluteTimeout: d("8h"), IdleTimeout: d("30m")}
	tests := []struct {
		name     string
		s        Session
		authTime time.Time
		lastSeen time.Time
		ended    bool
		reason   string
	}{
		{"no timeouts", Defaults().Session, at("-1000h"), at("-1000h"), false, ""},
		{"active", both, at("-1h"), at("-1m"), false, ""},
		{"absolute reached", both, at("-8h"), at("-1m"), true, ReasonAbsoluteTimeout},
		{"just before absolute", both, at("-7h59m"), at("-1m"), false, ""},
		{"idle reached", both, at("-1h"), at("-30m"), true, ReasonIdleTimeout},
		{"just before idle", both, at("-1h"), at("-29m59s"), false, ""},
		{"absolute before idle", both, at("-9h"), at("-2h"), true, ReasonAbsoluteTimeout},
		{"zero times disable checks", both, time.Time{}, time.Time{}, false, ""},
		{"idle only", Session{IdleTimeout: d("30m")}, at("-1000h"), at("-31m"), true, ReasonIdleTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ended, reason := tt.s.BrowserSessionEnded(now, tt.authTime, tt.lastSeen)
			if ended != tt.ended || reason != tt.reason {
				t.Errorf("BrowserSessionEnded = %v, %q; want %v, %q", ended, reason, tt.ended, tt.reason)
			}
		})
	}
}
