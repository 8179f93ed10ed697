package policies

import (
	"math"
	"testing"
)

func TestCaptchaValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Captcha)
		errs     map[string]string // key -> substring of message
		warnings map[string]string
	}{
		{name: "defaults", mutate: func(*Captcha) {}},
		{name: "every provider with a site key", mutate: func(c *Captcha) { c.Provider, c.SiteKey = CaptchaTurnstile, "0x4AAA" }},
		{name: "unknown provider", mutate: func(c *Captcha) { c.Provider = "recaptcha" },
			errs: map[string]string{"captcha.provider": `(got "recaptcha")`}},
		{name: "empty provider", mutate: func(c *Captcha) { c.Provider = "" },
			errs: map[string]string{"captcha.provider": `must be "builtin"`}},
		{name: "recaptcha v2 without site key", mutate: func(c *Captcha) { c.Provider = CaptchaRecaptchaV2 },
			errs: map[string]string{"captcha.site_key": `required with provider "recaptcha_v2"`}},
		{name: "hcaptcha without site key", mutate: func(c *Captcha) { c.Provider = CaptchaHCaptcha },
			errs: map[string]string{"captcha.site_key": "required"}},
		{name: "builtin ignores a site key", mutate: func(c *Captcha) { c.SiteKey = "leftover" }},
		{name: "verify url https", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "https://proxy.example:8443/siteverify?x=1"
		}},
		{name: "verify url on loopback", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "http://[::1]:9000/verify"
		}},
		{name: "verify url localhost", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "http://localhost/verify"
		}},
		{name: "verify url plain http", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "http://verify.example/siteverify"
		}, errs: map[string]string{"captcha.verify_url": "must use https"}},
		{name: "verify url relative", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "/siteverify"
		}, errs: map[string]string{"captcha.verify_url": "absolute https URL"}},
		{name: "verify url without host", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "https:///siteverify"
		}, errs: map[string]string{"captcha.verify_url": "absolute https URL"}},
		{name: "verify url with credentials", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "https://user:pw@verify.example/"
		}, errs: map[string]string{"captcha.verify_url": "user information"}},
		{name: "verify url with a space", mutate: func(c *Captcha) {
			c.Provider, c.SiteKey, c.VerifyURL = CaptchaHCaptcha, "k", "https://verify.example/a b"
		}, errs: map[string]string{"captcha.verify_url": "spaces"}},
		{name: "verify url with builtin", mutate: func(c *Captcha) { c.VerifyURL = "https://verify.example/" },
			warnings: map[string]string{"captcha.verify_url": "ignored"}},
		{name: "score too high", mutate: func(c *Captcha) { c.MinScore = 1.5 },
			errs: map[string]string{"captcha.min_score": "0.0 to 1.0"}},
		{name: "score negative", mutate: func(c *Captcha) { c.MinScore = -0.1 },
			errs: map[string]string{"captcha.min_score": "0.0 to 1.0"}},
		{name: "score NaN", mutate: func(c *Captcha) { c.MinScore = math.NaN() },
			errs: map[string]string{"captcha.min_score": "0.0 to 1.0"}},
		{name: "extreme score with v3", mutate: func(c *Captcha) { c.Provider, c.SiteKey, c.MinScore = CaptchaRecaptchaV3, "k", 0.95 },
			warnings: map[string]string{"captcha.min_score": "useful range"}},
		{name: "extreme score without v3", mutate: func(c *Captcha) { c.MinScore = 1 }},
		{name: "every page", mutate: func(c *Captcha) {
			c.ShowOn = []string{CaptchaOnLogin, CaptchaOnRegistration, CaptchaOnPasswordReset}
		}},
		{name: "no page", mutate: func(c *Captcha) { c.ShowOn = nil }},
		{name: "unknown page", mutate: func(c *Captcha) { c.ShowOn = []string{CaptchaOnLogin, "consent"} },
			errs: map[string]string{"captcha.show_on[1]": `(got "consent")`}},
		{name: "unknown when", mutate: func(c *Captcha) { c.When = "sometimes" },
			errs: map[string]string{"captcha.when": `must be "always" or "after_failures"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			tt.mutate(&p.Captcha)
			warnings, err := p.Validate()
			checkFields(t, "errors", errorFields(t, err), tt.errs)
			checkFields(t, "warnings", warnings, tt.warnings)
		})
	}
}

func TestCaptchaShows(t *testing.T) {
	tests := []struct {
		name     string
		when     string
		showOn   []string
		page     string
		demanded bool
		want     bool
	}{
		{"after failures, not demanded", CaptchaAfterFailures, []string{CaptchaOnLogin}, CaptchaOnLogin, false, false},
		{"after failures, demanded", CaptchaAfterFailures, []string{CaptchaOnLogin}, CaptchaOnLogin, true, true},
		{"always", CaptchaAlways, []string{CaptchaOnLogin}, CaptchaOnLogin, false, true},
		{"always, another page", CaptchaAlways, []string{CaptchaOnLogin}, CaptchaOnRegistration, false, false},
		{"demanded on a page not listed", CaptchaAfterFailures, []string{CaptchaOnRegistration}, CaptchaOnLogin, true, false},
		{"no pages", CaptchaAlways, nil, CaptchaOnLogin, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultCaptcha()
			c.When, c.ShowOn = tt.when, tt.showOn
			if got := c.Shows(tt.page, tt.demanded); got != tt.want {
				t.Errorf("Shows(%q, %v) = %v, want %v", tt.page, tt.demanded, got, tt.want)
			}
		})
	}
}

func TestCaptchaVerifyEndpoint(t *testing.T) {
	tests := []struct {
		provider, verifyURL string
		want                string
		thirdParty          bool
	}{
		{CaptchaBuiltin, "", "", false},
		{CaptchaRecaptchaV2, "", "https://www.google.com/recaptcha/api/siteverify", true},
		{CaptchaRecaptchaV3, "", "https://www.google.com/recaptcha/api/siteverify", true},
		{CaptchaHCaptcha, "", "https://api.hcaptcha.com/siteverify", true},
		{CaptchaTurnstile, "", "https://challenges.cloudflare.com/turnstile/v0/siteverify", true},
		{CaptchaTurnstile, "https://proxy.example/v", "https://proxy.example/v", true},
		{"unknown", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.provider+" "+tt.verifyURL, func(t *testing.T) {
			c := Captcha{Provider: tt.provider, VerifyURL: tt.verifyURL}
			if got := c.VerifyEndpoint(); got != tt.want {
				t.Errorf("VerifyEndpoint() = %q, want %q", got, tt.want)
			}
			if got := c.ThirdParty(); got != tt.thirdParty {
				t.Errorf("ThirdParty() = %v, want %v", got, tt.thirdParty)
			}
		})
	}
}
