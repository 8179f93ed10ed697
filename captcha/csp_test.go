package captcha

import (
	"testing"

	"github.com/portcullis/portcullis/policies"
)

func TestContentSecurityPolicy(t *testing.T) {
	// The server's policy, as server/middleware.go sets it.
	const server = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; " +
		"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
	tests := []struct {
		name, provider, base, want string
	}{
		{"builtin", policies.CaptchaBuiltin, server,
			"default-src 'none'; style-src 'self'; img-src 'self' https: data:; script-src 'self'; connect-src 'self'; " +
				"frame-ancestors 'none'; base-uri 'none'; media-src data:"},
		{"recaptcha v2", policies.CaptchaRecaptchaV2, server,
			"default-src 'none'; style-src 'self'; img-src 'self' https: data:; " +
				"script-src 'self' https://www.google.com/recaptcha/ https://www.gstatic.com/recaptcha/; connect-src 'self'; " +
				"frame-ancestors 'none'; base-uri 'none'; frame-src https://www.google.com/recaptcha/ https://recaptcha.google.com/recaptcha/"},
		{"recaptcha v3", policies.CaptchaRecaptchaV3, server,
			"default-src 'none'; style-src 'self'; img-src 'self' https: data:; " +
				"script-src 'self' https://www.google.com/recaptcha/ https://www.gstatic.com/recaptcha/; connect-src 'self'; " +
				"frame-ancestors 'none'; base-uri 'none'; frame-src https://www.google.com/recaptcha/ https://recaptcha.google.com/recaptcha/"},
		{"hcaptcha", policies.CaptchaHCaptcha, server,
			"default-src 'none'; style-src 'self' https://hcaptcha.com https://*.hcaptcha.com; img-src 'self' https: data:; " +
				"script-src 'self' https://hcaptcha.com https://*.hcaptcha.com; connect-src 'self' https://hcaptcha.com https://*.hcaptcha.com; " +
				"frame-ancestors 'none'; base-uri 'none'; frame-src https://hcaptcha.com https://*.hcaptcha.com"},
		{"turnstile", policies.CaptchaTurnstile, server,
			"default-src 'none'; style-src 'self'; img-src 'self' https: data:; script-src 'self' https://challenges.cloudflare.com; " +
				"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; frame-src https://challenges.cloudflare.com"},
		// A directive the base lacks starts from default-src.
		{"inherits default-src", policies.CaptchaBuiltin, "default-src 'self'", "default-src 'self'; img-src 'self' data:; media-src 'self' data:"},
		{"'none' gives way", policies.CaptchaTurnstile, "script-src 'none'; frame-src 'none'",
			"script-src https://challenges.cloudflare.com; frame-src https://challenges.cloudflare.com"},
		{"empty base", policies.CaptchaBuiltin, "", "img-src data:; media-src data:"},
		{"unknown provider changes nothing", "other", server, server},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Widget{Provider: tt.provider}
			if got := w.ContentSecurityPolicy(tt.base); got != tt.want {
				t.Errorf("ContentSecurityPolicy(%q) =\n%s\nwant\n%s", tt.base, got, tt.want)
			}
		})
	}
}
