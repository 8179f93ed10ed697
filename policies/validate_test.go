package policies

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/fielderr"
)

func d(s string) Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration(v)
}

// checkFields asserts that fields hold exactly the keys of want, each with
// a message containing the wanted substring.
func checkFields(t *testing.T, what string, fields []fielderr.Field, want map[string]string) {
	t.Helper()
	got := make(map[string]string, len(fields))
	for _, f := range fields {
		if _, dup := got[f.Field]; dup {
			t.Errorf("%s: %s reported twice", what, f.Field)
		}
		got[f.Field] = f.Message
	}
	for key, sub := range want {
		msg, ok := got[key]
		if !ok {
			t.Errorf("%s: nothing for %q; got %v", what, key, fields)
			continue
		}
		if !strings.Contains(msg, sub) {
			t.Errorf("%s: %s: %q does not contain %q", what, key, msg, sub)
		}
	}
	for key, msg := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("%s: unexpected %s: %s", what, key, msg)
		}
	}
}

// errorFields returns the fields of a *fielderr.Error, or nil for nil.
func errorFields(t *testing.T, err error) []fielderr.Field {
	t.Helper()
	if err == nil {
		return nil
	}
	fe, ok := fielderr.As(err)
	if !ok {
		t.Fatalf("error %T (%v) is not a *fielderr.Error", err, err)
	}
	return fe.Fields
}

func TestDefaultsAreValid(t *testing.T) {
	warnings, err := Defaults().Validate()
	if err != nil || len(warnings) != 0 {
		t.Fatalf("Defaults().Validate() = %v, %v; want no warnings and no error", warnings, err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Policy)
		errs     map[string]string // key -> substring of message
		warnings map[string]string
	}{
		// Refused.
		{name: "zero access ttl", mutate: func(p *Policy) { p.Token.AccessTokenTTL = 0 },
			errs: map[string]string{"token.access_token_ttl": "must be positive"}},
		{name: "negative access ttl", mutate: func(p *Policy) { p.Token.AccessTokenTTL = d("-1m") },
			errs: map[string]string{"token.access_token_ttl": "must be positive"}},
		{name: "zero id ttl", mutate: func(p *Policy) { p.Token.IDTokenTTL = 0 },
			errs: map[string]string{"token.id_token_ttl": "must be positive"}},
		{name: "zero code ttl", mutate: func(p *Policy) { p.Token.AuthorizationCodeTTL = 0 },
			errs: map[string]string{"token.authorization_code_ttl": "must be positive"}},
		{name: "negative refresh ttl", mutate: func(p *Policy) { p.Token.RefreshTokenTTL = d("-1h") },
			errs: map[string]string{"token.refresh_token_ttl": "must not be negative"}},
		{name: "negative window", mutate: func(p *Policy) { p.Token.RefreshTokenTTL, p.Token.RefreshWindow = 0, d("-1h") },
			errs: map[string]string{"token.refresh_window": "must not be negative"}},
		{name: "both refresh modes", mutate: func(p *Policy) { p.Token.RefreshWindow = d("1h") },
			errs: map[string]string{"token.refresh_window": "set either token.refresh_token_ttl or token.refresh_window, not both"}},
		{name: "neither refresh mode", mutate: func(p *Policy) { p.Token.RefreshTokenTTL = 0 },
			errs: map[string]string{"token.refresh_token_ttl": "set either"}},
		{name: "refresh equal to access", mutate: func(p *Policy) { p.Token.RefreshTokenTTL = d("15m") },
			errs: map[string]string{"token.refresh_token_ttl": "must exceed token.access_token_ttl (15m)"}},
		{name: "refresh shorter than access", mutate: func(p *Policy) { p.Token.RefreshTokenTTL = d("5m") },
			errs: map[string]string{"token.refresh_token_ttl": "must exceed"}},
		{name: "negative reuse grace", mutate: func(p *Policy) { p.Token.RefreshReuseGrace = d("-1s") },
			errs: map[string]string{"token.refresh_reuse_grace": "must not be negative"}},
		{name: "unknown format", mutate: func(p *Policy) { p.Token.Format = "paseto" },
			errs: map[string]string{"token.format": `"opaque" or "jwt"`}},
		{name: "negative admin values", mutate: func(p *Policy) {
			p.Token.Admin = AdminToken{AccessTokenTTL: d("-1m"), RefreshTokenTTL: d("-1m"), IdleTimeout: d("-1m")}
		}, errs: map[string]string{
			"token.admin.access_token_ttl":  "must not be negative",
			"token.admin.refresh_token_ttl": "must not be negative",
			"token.admin.idle_timeout":      "must not be negative",
		}},
		{name: "admin refresh not above inherited access", mutate: func(p *Policy) { p.Token.Admin.RefreshTokenTTL = d("15m") },
			errs: map[string]string{"token.admin.refresh_token_ttl": "must exceed the administrators' access token lifetime (15m)"}},
		{name: "admin refresh not above admin access", mutate: func(p *Policy) {
			p.Token.Admin.AccessTokenTTL, p.Token.Admin.RefreshTokenTTL = d("5m"), d("5m")
		}, errs: map[string]string{"token.admin.refresh_token_ttl": "(5m)"}},
		{name: "admin access outlives inherited refresh", mutate: func(p *Policy) { p.Token.Admin.AccessTokenTTL = d("200h") },
			errs: map[string]string{"token.admin.access_token_ttl": "must be shorter than token.refresh_token_ttl (168h)"},
			// The range warning still applies to a refused combination's
			// valid half; what matters is the error.
			warnings: map[string]string{"token.admin.access_token_ttl": "5m to 1h"}},
		{name: "negative session timeouts", mutate: func(p *Policy) {
			p.Session.AbsoluteTimeout, p.Session.IdleTimeout, p.Session.ReauthMaxAge = d("-1h"), d("-1h"), d("-1h")
		}, errs: map[string]string{
			"session.absolute_timeout": "must not be negative",
			"session.idle_timeout":     "must not be negative",
			"session.reauth_max_age":   "must not be negative",
		}},
		{name: "negative max concurrent", mutate: func(p *Policy) { p.Session.MaxConcurrent = -1 },
			errs: map[string]string{"session.max_concurrent": "must not be negative"}},
		{name: "unknown on_limit", mutate: func(p *Policy) { p.Session.OnLimit = "evict_newest" },
			errs: map[string]string{"session.on_limit": `"evict_oldest" or "reject"`}},
		{name: "empty on_limit", mutate: func(p *Policy) { p.Session.OnLimit = "" },
			errs: map[string]string{"session.on_limit": `got ""`}},
		{name: "zero cookie", mutate: func(p *Policy) { p.Session.Cookie = CookieLifetime{} },
			errs: map[string]string{"session.cookie": `"browser" or a positive duration`}},
		{name: "negative cookie", mutate: func(p *Policy) { p.Session.Cookie = CookieLifetime{Duration: d("-1h")} },
			errs: map[string]string{"session.cookie": "positive"}},
		{name: "unknown reauth actions", mutate: func(p *Policy) {
			p.Session.ReauthFor = []string{"password_change", "mfa_removal", "delete_account", "email_change", ""}
		}, errs: map[string]string{
			"session.reauth_for[2]": `got "delete_account"`,
			"session.reauth_for[4]": `got ""`,
		}},

		// Accepted.
		{name: "window mode", mutate: func(p *Policy) { p.Token.RefreshTokenTTL, p.Token.RefreshWindow = 0, d("24h") }},
		{name: "window mode with admin refresh", mutate: func(p *Policy) {
			p.Token.RefreshTokenTTL, p.Token.RefreshWindow = 0, d("24h")
			p.Token.Admin = AdminToken{AccessTokenTTL: d("5m"), RefreshTokenTTL: d("1h"), IdleTimeout: d("30m")}
		}},
		{name: "browser cookie", mutate: func(p *Policy) { p.Session.Cookie = CookieLifetime{Browser: true} }},
		{name: "all reauth actions and limits", mutate: func(p *Policy) {
			p.Session.ReauthFor = []string{"password_change", "mfa_removal", "mfa_enrollment", "email_change"}
			p.Session.ReauthMaxAge, p.Session.MaxConcurrent, p.Session.OnLimit = d("15m"), 3, OnLimitReject
			p.Session.AbsoluteTimeout, p.Session.IdleTimeout = d("720h"), d("1h")
		}},
		{name: "nil reauth_for", mutate: func(p *Policy) { p.Session.ReauthFor = nil }},
		{name: "edges of the recommended ranges", mutate: func(p *Policy) {
			p.Token.AccessTokenTTL, p.Token.RefreshTokenTTL = d("1m"), d("15m")
			p.Token.AuthorizationCodeTTL, p.Token.IDTokenTTL, p.Token.RefreshReuseGrace = d("10m"), d("24h"), d("60s")
			p.Session.IdleTimeout, p.Session.AbsoluteTimeout = d("5m"), d("1h")
		}, warnings: map[string]string{}},
		{name: "access at one hour", mutate: func(p *Policy) { p.Token.AccessTokenTTL = d("1h") }},

		// Accepted with a warning.
		{name: "short access", mutate: func(p *Policy) { p.Token.AccessTokenTTL = d("30s") },
			warnings: map[string]string{"token.access_token_ttl": "30s is outside the recommended range of 5m to 1h"}},
		{name: "long access", mutate: func(p *Policy) { p.Token.AccessTokenTTL = d("2h") },
			warnings: map[string]string{"token.access_token_ttl": "5m to 1h"}},
		{name: "short refresh", mutate: func(p *Policy) { p.Token.AccessTokenTTL, p.Token.RefreshTokenTTL = d("5m"), d("10m") },
			warnings: map[string]string{"token.refresh_token_ttl": "recommended minimum of 15m; 24h to 720h"}},
		{name: "short window", mutate: func(p *Policy) { p.Token.RefreshTokenTTL, p.Token.RefreshWindow = 0, d("5m") },
			warnings: map[string]string{"token.refresh_window": "recommended minimum of 15m"}},
		{name: "long code", mutate: func(p *Policy) { p.Token.AuthorizationCodeTTL = d("15m") },
			warnings: map[string]string{"token.authorization_code_ttl": "RFC 6749 recommends at most 10 minutes"}},
		{name: "long id token", mutate: func(p *Policy) { p.Token.IDTokenTTL = d("48h") },
			warnings: map[string]string{"token.id_token_ttl": "recommended maximum of 24h"}},
		{name: "long reuse grace", mutate: func(p *Policy) { p.Token.RefreshReuseGrace = d("2m") },
			warnings: map[string]string{"token.refresh_reuse_grace": "recommended maximum of 1m"}},
		{name: "absolute shorter than access", mutate: func(p *Policy) { p.Session.AbsoluteTimeout = d("10m") },
			warnings: map[string]string{"session.absolute_timeout": "shorter than token.access_token_ttl (15m)"}},
		{name: "short idle", mutate: func(p *Policy) { p.Session.IdleTimeout = d("1m") },
			warnings: map[string]string{"session.idle_timeout": "recommended minimum of 5m"}},
		{name: "short admin values", mutate: func(p *Policy) {
			p.Token.Admin = AdminToken{AccessTokenTTL: d("30s"), RefreshTokenTTL: d("5m"), IdleTimeout: d("1m")}
		}, warnings: map[string]string{
			"token.admin.access_token_ttl":  "5m to 1h",
			"token.admin.refresh_token_ttl": "15m",
			"token.admin.idle_timeout":      "5m",
		}},
		{name: "a refused value does not also warn", mutate: func(p *Policy) {
			p.Token.AccessTokenTTL, p.Session.IdleTimeout = d("-30s"), d("-1m")
		}, errs: map[string]string{
			"token.access_token_ttl": "must be positive",
			"session.idle_timeout":   "must not be negative",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			tt.mutate(&p)
			before := string(p.Canonical())
			warnings, err := p.Validate()
			checkFields(t, "errors", errorFields(t, err), tt.errs)
			checkFields(t, "warnings", warnings, tt.warnings)
			if string(p.Canonical()) != before {
				t.Error("Validate modified the policy")
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	p := Defaults()
	p.Token.AccessTokenTTL = 0
	p.Token.RefreshWindow = d("1h")
	p.Token.Format = ""
	p.Session.OnLimit = "drop"
	p.Session.ReauthFor = []string{"password_change", "x"}
	p.Session.IdleTimeout = d("1m")
	warnings, err := p.Validate()
	checkFields(t, "errors", errorFields(t, err), map[string]string{
		"token.access_token_ttl": "positive",
		"token.refresh_window":   "not both",
		"token.format":           "opaque",
		"session.on_limit":       "evict_oldest",
		"session.reauth_for[1]":  `"x"`,
	})
	checkFields(t, "warnings", warnings, map[string]string{"session.idle_timeout": "5m"})
}
