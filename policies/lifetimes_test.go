package policies

import (
	"testing"
	"time"
)

// t0 is the fixed "now" of the time-dependent tests.
func t0() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

func TestLifetimes(t *testing.T) {
	now := t0()
	at := func(s string) time.Time { return now.Add(time.Duration(d(s))) }
	window := func(w string) func(*Policy) {
		return func(p *Policy) { p.Token.RefreshTokenTTL, p.Token.RefreshWindow = 0, d(w) }
	}
	user := Grant{AuthTime: at("-1h")}
	admin := Grant{AuthTime: at("-1h"), Admin: true}

	tests := []struct {
		name   string
		mutate func(*Policy)
		now    time.Time // zero means now
		grant  Grant
		want   Lifetimes
	}{
		{name: "defaults", grant: user, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("168h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "custom ttls", mutate: func(p *Policy) {
			p.Token.AccessTokenTTL, p.Token.RefreshTokenTTL, p.Token.IDTokenTTL, p.Token.AuthorizationCodeTTL = d("5m"), d("24h"), d("10m"), d("1m")
		}, grant: user, want: Lifetimes{
			AccessExpiresAt: at("5m"), RefreshExpiresAt: at("24h"), IDTokenExpiresAt: at("10m"), CodeExpiresAt: at("1m"),
		}},
		{name: "refresh window counts from the access expiry", mutate: window("24h"), grant: user, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("24h15m"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "absolute timeout caps the refresh token", mutate: func(p *Policy) { p.Session.AbsoluteTimeout = d("8h") },
			grant: user, want: Lifetimes{
				AccessExpiresAt: at("15m"), RefreshExpiresAt: at("7h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
				SessionEndsAt: at("7h"),
			}},
		{name: "near the absolute end everything is capped", mutate: func(p *Policy) { p.Session.AbsoluteTimeout = d("8h") },
			grant: Grant{AuthTime: at("-7h55m")}, want: Lifetimes{
				AccessExpiresAt: at("5m"), RefreshExpiresAt: at("5m"), IDTokenExpiresAt: at("5m"), CodeExpiresAt: at("5m"),
				SessionEndsAt: at("5m"),
			}},
		{name: "a later refresh does not extend the session", mutate: func(p *Policy) { p.Session.AbsoluteTimeout = d("8h") },
			now: at("6h"), grant: user, want: Lifetimes{
				AccessExpiresAt: at("6h15m"), RefreshExpiresAt: at("7h"), IDTokenExpiresAt: at("7h"), CodeExpiresAt: at("6h10m"),
				SessionEndsAt: at("7h"),
			}},
		{name: "absolute timeout in window mode", mutate: func(p *Policy) {
			window("24h")(p)
			p.Session.AbsoluteTimeout = d("12h")
		}, grant: user, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("11h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
			SessionEndsAt: at("11h"),
		}},
		{name: "idle timeout caps the refresh token", mutate: func(p *Policy) { p.Session.IdleTimeout = d("30m") },
			grant: user, want: Lifetimes{
				AccessExpiresAt: at("15m"), RefreshExpiresAt: at("30m"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
			}},
		{name: "idle timeout longer than the refresh ttl", mutate: func(p *Policy) { p.Session.IdleTimeout = d("720h") },
			grant: user, want: Lifetimes{
				AccessExpiresAt: at("15m"), RefreshExpiresAt: at("168h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
			}},
		{name: "idle and absolute together", mutate: func(p *Policy) {
			p.Session.IdleTimeout, p.Session.AbsoluteTimeout = d("2h"), d("2h30m")
		}, grant: user, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("1h30m"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
			SessionEndsAt: at("1h30m"),
		}},
		{name: "administrator access override", mutate: func(p *Policy) { p.Token.Admin.AccessTokenTTL = d("5m") },
			grant: admin, want: Lifetimes{
				AccessExpiresAt: at("5m"), RefreshExpiresAt: at("168h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
			}},
		{name: "administrator refresh override", mutate: func(p *Policy) { p.Token.Admin.RefreshTokenTTL = d("8h") },
			grant: admin, want: Lifetimes{
				AccessExpiresAt: at("15m"), RefreshExpiresAt: at("8h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
			}},
		{name: "administrator idle override", mutate: func(p *Policy) {
			p.Session.IdleTimeout, p.Token.Admin.IdleTimeout = d("1h"), d("10m")
		}, grant: admin, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("10m"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "administrator overrides do not apply to others", mutate: func(p *Policy) {
			p.Session.IdleTimeout = d("1h")
			p.Token.Admin = AdminToken{AccessTokenTTL: d("5m"), RefreshTokenTTL: d("8h"), IdleTimeout: d("10m")}
		}, grant: user, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("1h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "administrator without overrides", grant: admin, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("168h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "window mode with administrator access override", mutate: func(p *Policy) {
			window("24h")(p)
			p.Token.Admin.AccessTokenTTL = d("5m")
		}, grant: admin, want: Lifetimes{
			AccessExpiresAt: at("5m"), RefreshExpiresAt: at("24h5m"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "window mode with administrator refresh override", mutate: func(p *Policy) {
			window("24h")(p)
			p.Token.Admin.RefreshTokenTTL = d("2h")
		}, grant: admin, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("2h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "client credentials have no absolute cap", mutate: func(p *Policy) {
			p.Session.AbsoluteTimeout = d("8h")
		}, grant: Grant{}, want: Lifetimes{
			AccessExpiresAt: at("15m"), RefreshExpiresAt: at("168h"), IDTokenExpiresAt: at("1h"), CodeExpiresAt: at("10m"),
		}},
		{name: "a login past its absolute end issues nothing that lives", mutate: func(p *Policy) {
			p.Session.AbsoluteTimeout = d("8h")
		}, grant: Grant{AuthTime: at("-9h")}, want: Lifetimes{
			AccessExpiresAt: at("-1h"), RefreshExpiresAt: at("-1h"), IDTokenExpiresAt: at("-1h"), CodeExpiresAt: at("-1h"),
			SessionEndsAt: at("-1h"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			if tt.mutate != nil {
				tt.mutate(&p)
			}
			if _, err := p.Validate(); err != nil {
				t.Fatalf("test policy is invalid: %v", err)
			}
			n := tt.now
			if n.IsZero() {
				n = now
			}
			if got := p.Lifetimes(n, tt.grant); got != tt.want {
				t.Errorf("Lifetimes =\n%s\nwant\n%s", show(now, got), show(now, tt.want))
			}
		})
	}
}

// show prints lifetimes relative to now, which reads better than dates.
func show(now time.Time, l Lifetimes) string {
	rel := func(t time.Time) string {
		if t.IsZero() {
			return "none"
		}
		return "now+" + formatDuration(t.Sub(now))
	}
	return "access " + rel(l.AccessExpiresAt) + ", refresh " + rel(l.RefreshExpiresAt) + ", id " + rel(l.IDTokenExpiresAt) +
		", code " + rel(l.CodeExpiresAt) + ", session " + rel(l.SessionEndsAt)
}

func TestFamilyEnded(t *testing.T) {
	now := t0()
	at := func(s string) time.Time { return now.Add(time.Duration(d(s))) }
	tests := []struct {
		name   string
		mutate func(*Policy)
		grant  Grant
		ended  bool
		reason string
	}{
		{name: "no timeouts", grant: Grant{AuthTime: at("-1000h"), LastUsed: at("-1000h")}},
		{name: "before the absolute end", mutate: func(p *Policy) { p.Session.AbsoluteTimeout = d("8h") },
			grant: Grant{AuthTime: at("-7h59m59s")}},
		{name: "at the absolute end", mutate: func(p *Policy) { p.Session.AbsoluteTimeout = d("8h") },
			grant: Grant{AuthTime: at("-8h")}, ended: true, reason: ReasonAbsoluteTimeout},
		{name: "client credentials have no absolute end", mutate: func(p *Policy) { p.Session.AbsoluteTimeout = d("8h") },
			grant: Grant{}},
		{name: "used within the idle timeout", mutate: func(p *Policy) { p.Session.IdleTimeout = d("30m") },
			grant: Grant{AuthTime: at("-2h"), LastUsed: at("-29m")}},
		{name: "idle for the timeout", mutate: func(p *Policy) { p.Session.IdleTimeout = d("30m") },
			grant: Grant{AuthTime: at("-2h"), LastUsed: at("-30m")}, ended: true, reason: ReasonIdleTimeout},
		{name: "zero last use means now", mutate: func(p *Policy) { p.Session.IdleTimeout = d("30m") },
			grant: Grant{AuthTime: at("-2h")}},
		{name: "administrator idle override", mutate: func(p *Policy) {
			p.Session.IdleTimeout, p.Token.Admin.IdleTimeout = d("1h"), d("10m")
		}, grant: Grant{AuthTime: at("-2h"), LastUsed: at("-15m"), Admin: true}, ended: true, reason: ReasonIdleTimeout},
		{name: "administrator idle override does not apply to others", mutate: func(p *Policy) {
			p.Session.IdleTimeout, p.Token.Admin.IdleTimeout = d("1h"), d("10m")
		}, grant: Grant{AuthTime: at("-2h"), LastUsed: at("-15m")}},
		{name: "absolute is reported before idle", mutate: func(p *Policy) {
			p.Session.AbsoluteTimeout, p.Session.IdleTimeout = d("8h"), d("30m")
		}, grant: Grant{AuthTime: at("-9h"), LastUsed: at("-1h")}, ended: true, reason: ReasonAbsoluteTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			if tt.mutate != nil {
				tt.mutate(&p)
			}
			ended, reason := p.FamilyEnded(now, tt.grant)
			if ended != tt.ended || reason != tt.reason {
				t.Errorf("FamilyEnded = %v, %q; want %v, %q", ended, reason, tt.ended, tt.reason)
			}
		})
	}
}

func TestLifetimesChanged(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Policy)
		want   bool
	}{
		{"nothing", func(*Policy) {}, false},
		{"access", func(p *Policy) { p.Token.AccessTokenTTL = d("5m") }, true},
		{"id", func(p *Policy) { p.Token.IDTokenTTL = d("5m") }, true},
		{"code", func(p *Policy) { p.Token.AuthorizationCodeTTL = d("5m") }, true},
		{"refresh", func(p *Policy) { p.Token.RefreshTokenTTL = d("24h") }, true},
		{"window", func(p *Policy) { p.Token.RefreshWindow = d("24h") }, true},
		{"admin access", func(p *Policy) { p.Token.Admin.AccessTokenTTL = d("5m") }, true},
		{"admin refresh", func(p *Policy) { p.Token.Admin.RefreshTokenTTL = d("5h") }, true},
		{"admin idle", func(p *Policy) { p.Token.Admin.IdleTimeout = d("5m") }, true},
		{"absolute", func(p *Policy) { p.Session.AbsoluteTimeout = d("8h") }, true},
		{"idle", func(p *Policy) { p.Session.IdleTimeout = d("1h") }, true},
		{"format is not a lifetime", func(p *Policy) { p.Token.Format = FormatJWT }, false},
		{"revoke_on_change is not a lifetime", func(p *Policy) { p.Token.RevokeOnChange = true }, false},
		{"reuse grace is not a lifetime", func(p *Policy) { p.Token.RefreshReuseGrace = d("5s") }, false},
		{"cookie is not a token lifetime", func(p *Policy) { p.Session.Cookie = CookieLifetime{Browser: true} }, false},
		{"session limits", func(p *Policy) { p.Session.MaxConcurrent, p.Session.ReauthFor = 3, nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := Defaults()
			tt.mutate(&after)
			if got := LifetimesChanged(Defaults(), after); got != tt.want {
				t.Errorf("LifetimesChanged = %v, want %v", got, tt.want)
			}
			if got := LifetimesChanged(after, Defaults()); got != tt.want {
				t.Errorf("LifetimesChanged (reversed) = %v, want %v", got, tt.want)
			}
		})
	}
}
