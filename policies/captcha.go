package policies

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Values of Captcha.Provider.
const (
	CaptchaBuiltin     = "builtin"
	CaptchaRecaptchaV2 = "recaptcha_v2"
	CaptchaRecaptchaV3 = "recaptcha_v3"
	CaptchaHCaptcha    = "hcaptcha"
	CaptchaTurnstile   = "turnstile"
)

// Pages Captcha.ShowOn may list.
const (
	CaptchaOnLogin         = "login"
	CaptchaOnRegistration  = "registration"
	CaptchaOnPasswordReset = "password_reset"
)

// Values of Captcha.When.
const (
	CaptchaAlways        = "always"
	CaptchaAfterFailures = "after_failures"
)

// Bounds of Captcha.MinScore: reCAPTCHA v3 scores run from 0.0 (a bot)
// to 1.0 (a person).
const (
	minCaptchaScore = 0.0
	maxCaptchaScore = 1.0
	// lowCaptchaScore and highCaptchaScore bound the useful thresholds:
	// below the first nearly every bot passes, above the second many
	// people fail.
	lowCaptchaScore  = 0.1
	highCaptchaScore = 0.9
)

// Captcha is the captcha policy: which captcha a page shows, and when.
//
// The provider's secret is not here: this document is readable through
// the admin API, so the secret lives in the configuration, under
// secrets.captcha.
type Captcha struct {
	// Provider is "builtin" (default: digits in a picture, with an audio
	// alternative, served and checked by this server), "recaptcha_v2",
	// "recaptcha_v3", "hcaptcha" or "turnstile".
	Provider string `json:"provider" toml:"provider"`
	// SiteKey is the third-party provider's public site key; required
	// for every provider but builtin.
	SiteKey string `json:"site_key" toml:"site_key"`
	// VerifyURL is where answers are checked; "" (default) is the
	// provider's own endpoint (see VerifyEndpoint). Set it for a proxy or
	// a self-hosted compatible service; must be an absolute https URL
	// (http only on loopback).
	VerifyURL string `json:"verify_url" toml:"verify_url"`
	// MinScore is the lowest reCAPTCHA v3 score accepted, 0.0 to 1.0.
	// Default 0.5; outside 0.1 to 0.9 warns. Other providers ignore it.
	MinScore float64 `json:"min_score" toml:"min_score"`
	// ShowOn lists the pages that show the captcha: login, registration,
	// password_reset. Default ["login"].
	ShowOn []string `json:"show_on" toml:"show_on"`
	// When is "always", or "after_failures" (default): only once the
	// lockout policy demands a captcha for the attempt (lockout.action
	// "captcha").
	When string `json:"when" toml:"when"`
}

func defaultCaptcha() Captcha {
	return Captcha{
		Provider: CaptchaBuiltin,
		MinScore: 0.5,
		ShowOn:   []string{CaptchaOnLogin},
		When:     CaptchaAfterFailures,
	}
}

// Shows reports whether page (CaptchaOnLogin, …) must carry a captcha:
// the page is in ShowOn, and either When is "always" or demanded, which
// the caller sets when the lockout policy asks for a captcha.
func (c Captcha) Shows(page string, demanded bool) bool {
	if !slices.Contains(c.ShowOn, page) {
		return false
	}
	return c.When == CaptchaAlways || demanded
}

// ThirdParty reports whether Provider is a service other than this
// server, which needs a site key and secrets.captcha.
func (c Captcha) ThirdParty() bool {
	switch c.Provider {
	case CaptchaRecaptchaV2, CaptchaRecaptchaV3, CaptchaHCaptcha, CaptchaTurnstile:
		return true
	}
	return false
}

// VerifyEndpoint is the URL answers are checked at: VerifyURL when set,
// else the provider's own; "" for builtin.
func (c Captcha) VerifyEndpoint() string {
	if c.VerifyURL != "" {
		return c.VerifyURL
	}
	switch c.Provider {
	case CaptchaRecaptchaV2, CaptchaRecaptchaV3:
		return "https://www.google.com/recaptcha/api/siteverify"
	case CaptchaHCaptcha:
		return "https://api.hcaptcha.com/siteverify"
	case CaptchaTurnstile:
		return "https://challenges.cloudflare.com/turnstile/v0/siteverify"
	}
	return ""
}

func (c Captcha) validate(v *validator) {
	switch c.Provider {
	case CaptchaBuiltin:
	case CaptchaRecaptchaV2, CaptchaRecaptchaV3, CaptchaHCaptcha, CaptchaTurnstile:
		if c.SiteKey == "" {
			v.fail("captcha.site_key", "required with provider %q: the public site key from the provider's console", c.Provider)
		}
	default:
		v.fail("captcha.provider", "must be %q, %q, %q, %q or %q (got %q)",
			CaptchaBuiltin, CaptchaRecaptchaV2, CaptchaRecaptchaV3, CaptchaHCaptcha, CaptchaTurnstile, c.Provider)
	}
	if c.VerifyURL != "" {
		if msg := verifyURLProblem(c.VerifyURL); msg != "" {
			v.fail("captcha.verify_url", "%s", msg)
		} else if c.Provider == CaptchaBuiltin {
			v.warn("captcha.verify_url", "ignored with provider %q, which checks answers itself", CaptchaBuiltin)
		}
	}
	switch s := c.MinScore; {
	case math.IsNaN(s) || s < minCaptchaScore || s > maxCaptchaScore:
		v.fail("captcha.min_score", "must be from 0.0 to 1.0 (got %v)", s)
	case c.Provider == CaptchaRecaptchaV3 && (s < lowCaptchaScore || s > highCaptchaScore):
		v.warn("captcha.min_score", "%v is outside the useful range of 0.1 to 0.9: below it nearly every bot passes, above it many people fail; 0.5 is Google's suggestion", s)
	}
	for i, page := range c.ShowOn {
		switch page {
		case CaptchaOnLogin, CaptchaOnRegistration, CaptchaOnPasswordReset:
		default:
			v.fail(indexKey("captcha.show_on", i), "must be %q, %q or %q (got %q)",
				CaptchaOnLogin, CaptchaOnRegistration, CaptchaOnPasswordReset, page)
		}
	}
	switch c.When {
	case CaptchaAlways, CaptchaAfterFailures:
	default:
		v.fail("captcha.when", "must be %q or %q (got %q)", CaptchaAlways, CaptchaAfterFailures, c.When)
	}
}

// verifyURLProblem says what is wrong with a captcha verify URL, or "".
func verifyURLProblem(raw string) string {
	return serviceURLProblem(raw, "https://www.google.com/recaptcha/api/siteverify", "the provider's secret is sent to it")
}

// serviceURLProblem says what is wrong with the URL of a service the
// server calls (like example), or "". What is sent there (why) must not
// travel in clear text beyond this machine. The URL is taken apart by hand
// because this package does no I/O and so imports nothing from net/ but
// netip; the HTTP client parses it again when it is used.
func serviceURLProblem(raw, example, why string) string {
	wanted := "must be an absolute https URL, such as " + strconv.Quote(example)
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "must not contain spaces or control characters"
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "https" && scheme != "http") {
		return wanted
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if strings.Contains(authority, "@") {
		return "must not contain user information"
	}
	host := hostOf(authority)
	if host == "" {
		return wanted
	}
	if scheme == "http" && !isLoopbackHost(host) {
		return "must use https unless the host is loopback: " + why
	}
	return ""
}

// hostOf is the host of an authority ("[::1]:8080" → "::1"), or "" when
// there is none.
func hostOf(authority string) string {
	if rest, ok := strings.CutPrefix(authority, "["); ok {
		host, _, found := strings.Cut(rest, "]")
		if !found {
			return ""
		}
		return host
	}
	host, _, _ := strings.Cut(authority, ":")
	return host
}

// isLoopbackHost reports whether host can only be reached from this
// machine.
func isLoopbackHost(host string) bool {
	h := strings.ToLower(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	return err == nil && addr.IsLoopback()
}
