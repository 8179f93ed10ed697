package config

import (
	"testing"
)

// TestCaptchaSecret: a third-party captcha needs secrets.captcha, from the
// file or the environment; the built-in one does not.
func TestCaptchaSecret(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		environ []string
		want    map[string]string // key -> substring; nil: loads
	}{
		{name: "builtin needs none", toml: "[captcha]\nprovider = \"builtin\"\n"},
		{name: "provider without secret",
			toml: "[captcha]\nprovider = \"turnstile\"\nsite_key = \"0x4AAA\"\n",
			want: map[string]string{"secrets.captcha": `required with captcha.provider "turnstile"`}},
		{name: "blank secret",
			toml: "[secrets]\ncaptcha = \"  \"\n[captcha]\nprovider = \"hcaptcha\"\nsite_key = \"k\"\n",
			want: map[string]string{"secrets.captcha": "required"}},
		{name: "secret in the file",
			toml: "[secrets]\ncaptcha = \"0x4AAA-secret\"\n[captcha]\nprovider = \"turnstile\"\nsite_key = \"0x4AAA\"\n"},
		{name: "secret from the environment",
			toml:    "[captcha]\nprovider = \"recaptcha_v3\"\nsite_key = \"6Le\"\n",
			environ: []string{"PORTCULLIS_SECRETS_CAPTCHA=6Le-secret"}},
		// The unknown provider is the one problem, not also a missing secret.
		{name: "unknown provider",
			toml: "[captcha]\nprovider = \"recaptcha\"\n",
			want: map[string]string{"captcha.provider": `(got "recaptcha")`}},
		{name: "site key missing too",
			toml: "[captcha]\nprovider = \"recaptcha_v2\"\n",
			want: map[string]string{"captcha.site_key": "required", "secrets.captcha": "required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, tt.toml), tt.environ)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if c.Secrets.Captcha == "" && c.Captcha.ThirdParty() {
					t.Error("loaded a third-party captcha without its secret")
				}
				return
			}
			checkFields(t, err, tt.want)
		})
	}
}

// TestMinScoreNumbers: min_score is a number in the file, integer or
// float, and in the environment; anything else names the key.
func TestMinScoreNumbers(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		environ []string
		want    float64
		problem string // substring of the captcha.min_score problem; "" for none
	}{
		{name: "float", toml: "[captcha]\nmin_score = 0.7\n", want: 0.7},
		{name: "integer", toml: "[captcha]\nmin_score = 1\n", want: 1},
		{name: "environment", environ: []string{"PORTCULLIS_CAPTCHA_MIN_SCORE=0.3"}, want: 0.3},
		{name: "string", toml: "[captcha]\nmin_score = \"0.5\"\n", problem: "must be a number, not a string"},
		{name: "nan", toml: "[captcha]\nmin_score = nan\n", problem: "finite"},
		{name: "environment text", environ: []string{"PORTCULLIS_CAPTCHA_MIN_SCORE=high"}, problem: "finite number"},
		{name: "environment infinity", environ: []string{"PORTCULLIS_CAPTCHA_MIN_SCORE=+Inf"}, problem: "finite number"},
		{name: "out of range", toml: "[captcha]\nmin_score = 2.5\n", problem: "0.0 to 1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.toml != "" {
				path = writeFile(t, tt.toml)
			}
			c, err := Load(path, tt.environ)
			if tt.problem != "" {
				checkFields(t, err, map[string]string{"captcha.min_score": tt.problem})
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Captcha.MinScore != tt.want || c.Policy().Captcha.MinScore != tt.want {
				t.Errorf("min_score = %v (policy %v), want %v", c.Captcha.MinScore, c.Policy().Captcha.MinScore, tt.want)
			}
		})
	}
}
