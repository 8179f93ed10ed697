package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/policies"
)

// TestWebAuthnLoad: [webauthn] from the file and the environment, every
// problem at once under its key.
func TestWebAuthnLoad(t *testing.T) {
	const https = "[server]\nissuer = \"https://id.example.com\"\n"
	tests := []struct {
		name    string
		toml    string
		environ []string
		want    map[string]string // key -> substring; nil: loads
	}{
		{name: "defaults follow the issuer", toml: ""},
		{name: "all set", toml: https + "[webauthn]\nrp_id = \"example.com\"\nrp_display_name = \"Example ID\"\n" +
			"origins = [\"https://id.example.com\", \"https://login.example.com:8443\", \"https://example.com/\"]\n"},
		{name: "from the environment", toml: https,
			environ: []string{"PORTCULLIS_WEBAUTHN_RP_ID=example.com", "PORTCULLIS_WEBAUTHN_ORIGINS=https://id.example.com,https://app.example.com"}},
		{name: "localhost over http", toml: "[server]\nissuer = \"http://localhost:8080\"\n[webauthn]\nrp_id = \"localhost\"\norigins = [\"http://localhost:8080\"]\n"},
		{name: "rp_id with a scheme", toml: https + "[webauthn]\nrp_id = \"https://id.example.com\"\n",
			want: map[string]string{"webauthn.rp_id": "without a scheme"}},
		{name: "rp_id with a port", toml: https + "[webauthn]\nrp_id = \"id.example.com:443\"\n",
			want: map[string]string{"webauthn.rp_id": "without a port"}},
		{name: "rp_id with a path", toml: https + "[webauthn]\nrp_id = \"id.example.com/login\"\n",
			want: map[string]string{"webauthn.rp_id": "without a path"}},
		{name: "rp_id an IPv4 address", toml: "[webauthn]\nrp_id = \"127.0.0.1\"\n",
			want: map[string]string{"webauthn.rp_id": "not an IP address"}},
		{name: "rp_id an IPv6 address", toml: "[webauthn]\nrp_id = \"[::1]\"\n",
			want: map[string]string{"webauthn.rp_id": "not an IP address"}},
		{name: "rp_id upper case", toml: https + "[webauthn]\nrp_id = \"ID.example.com\"\n",
			want: map[string]string{"webauthn.rp_id": "lower case"}},
		{name: "rp_id with an empty label", toml: https + "[webauthn]\nrp_id = \"example.com.\"\n",
			want: map[string]string{"webauthn.rp_id": "none empty"}},
		{name: "rp_id not ASCII", toml: https + "[webauthn]\nrp_id = \"bücher.example\"\n",
			want: map[string]string{"webauthn.rp_id": "xn--"}},
		{name: "rp_id with an underscore", toml: https + "[webauthn]\nrp_id = \"id_1.example.com\"\n",
			want: map[string]string{"webauthn.rp_id": "letters, digits and hyphens"}},
		{name: "rp_id label with a leading hyphen", toml: https + "[webauthn]\nrp_id = \"-id.example.com\"\n",
			want: map[string]string{"webauthn.rp_id": "hyphen"}},
		{name: "the issuer is not under rp_id", toml: https + "[webauthn]\nrp_id = \"example.org\"\n",
			want: map[string]string{"webauthn.rp_id": `"https://id.example.com"`}},
		{name: "every origin judged", toml: https + "[webauthn]\norigins = [\"id.example.com\", \"https://id.example.com/login\", " +
			"\"http://id.example.com\", \"https://other.example\", \"https://u@id.example.com\", \"https://id.example.com?x\", \"https://id.example.com\"]\n",
			want: map[string]string{
				"webauthn.origins[0]": "absolute http or https origin",
				"webauthn.origins[1]": "without a path",
				"webauthn.origins[2]": "must use https",
				"webauthn.origins[3]": `the issuer's host "id.example.com"`,
				"webauthn.origins[4]": "user information",
				"webauthn.origins[5]": "without a path, query or fragment",
			}},
		{name: "origin outside the configured rp_id", toml: https + "[webauthn]\nrp_id = \"id.example.com\"\norigins = [\"https://example.com\"]\n",
			want: map[string]string{"webauthn.origins[0]": `webauthn.rp_id "id.example.com"`}},
		{name: "origin from the environment", toml: https, environ: []string{"PORTCULLIS_WEBAUTHN_ORIGINS=https://id.example.com/x"},
			want: map[string]string{"webauthn.origins[0]": "without a path"}},
		{name: "blank display name", toml: "[webauthn]\nrp_display_name = \"  \"\n",
			want: map[string]string{"webauthn.rp_display_name": "must not be blank"}},
		{name: "display name with a newline", toml: "[webauthn]\nrp_display_name = \"Example\\nSign in here\"\n",
			want: map[string]string{"webauthn.rp_display_name": "control characters"}},
		{name: "origins not a list", toml: "[webauthn]\norigins = \"https://id.example.com\"\n",
			want: map[string]string{"webauthn.origins": "must be an array"}},
		{name: "unknown key", toml: "[webauthn]\nrp_name = \"x\"\n",
			want: map[string]string{"webauthn.rp_name": "unknown key"}},
		// With an IP address issuer passkeys are off, and origins are not
		// judged against an id that cannot be used.
		{name: "IP issuer, origins set", toml: "[webauthn]\norigins = [\"http://127.0.0.1:8080\"]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.toml), tt.environ)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			checkFields(t, err, tt.want)
		})
	}
}

func TestWebAuthnResolve(t *testing.T) {
	tests := []struct {
		name        string
		c           WebAuthnConfig
		issuer      string
		rpID, label string
		origins     []string
		wantErr     string // substring; "" for none
	}{
		{name: "defaults", issuer: "https://id.example.com",
			rpID: "id.example.com", label: DefaultRPDisplayName, origins: []string{"https://id.example.com"}},
		{name: "issuer with a port and a path", issuer: "https://ID.Example.com:8443/auth",
			rpID: "id.example.com", label: DefaultRPDisplayName, origins: []string{"https://ID.Example.com:8443"}},
		{name: "the default configuration's issuer", issuer: "http://127.0.0.1:8080",
			rpID: "127.0.0.1", label: DefaultRPDisplayName, origins: []string{"http://127.0.0.1:8080"}},
		{name: "IPv6 issuer", issuer: "http://[::1]:8080",
			rpID: "::1", label: DefaultRPDisplayName, origins: []string{"http://[::1]:8080"}},
		{name: "configured", c: WebAuthnConfig{RPID: "example.com", RPDisplayName: "Example", Origins: []string{"https://a.example.com/", "https://example.com"}},
			issuer: "https://id.example.com", rpID: "example.com", label: "Example", origins: []string{"https://a.example.com", "https://example.com"}},
		{name: "configured, the issuer does not matter", c: WebAuthnConfig{RPID: "example.com", Origins: []string{"https://example.com"}},
			issuer: "not a url", rpID: "example.com", label: DefaultRPDisplayName, origins: []string{"https://example.com"}},
		{name: "no issuer to follow", issuer: "", wantErr: "server.issuer"},
		{name: "bad rp_id", c: WebAuthnConfig{RPID: "10.0.0.1"}, issuer: "https://id.example.com", wantErr: "webauthn.rp_id: must be a host name, not an IP address"},
		{name: "bad origin", c: WebAuthnConfig{Origins: []string{"ftp://id.example.com"}}, issuer: "https://id.example.com", wantErr: "webauthn.origins[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.c.Origins)
			rpID, label, origins, err := tt.c.Resolve(tt.issuer)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve = %q, %q, %q, %v; want an error with %q", rpID, label, origins, err, tt.wantErr)
				}
				asError(t, err)
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if rpID != tt.rpID || label != tt.label || !slices.Equal(origins, tt.origins) {
				t.Errorf("Resolve = %q, %q, %q; want %q, %q, %q", rpID, label, origins, tt.rpID, tt.label, tt.origins)
			}
			if !slices.Equal(tt.c.Origins, in) {
				t.Errorf("Resolve changed the configuration's origins to %q", tt.c.Origins)
			}
		})
	}
}

func TestWebAuthnWarnings(t *testing.T) {
	c := Default()
	c.WebAuthn.RPDisplayName = strings.Repeat("é", 33) // 66 bytes
	if err := c.Validate(); err != nil {
		t.Fatalf("a long name must only warn: %v", err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], "webauthn.rp_display_name: 66 bytes") {
		t.Errorf("Warnings() = %q, want one on webauthn.rp_display_name", w)
	}
	c.WebAuthn.RPDisplayName = strings.Repeat("x", 64)
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("Warnings() = %q for 64 bytes, want none", w)
	}
}

// TestMFAFromTheFile: the [mfa] table and its [mfa.totp] are the policy
// section, judged by the policy's rules under the same keys.
func TestMFAFromTheFile(t *testing.T) {
	c, err := Load(writeFile(t, "[mfa]\nrequirement = \"required\"\nallowed_factors = [\"webauthn\"]\ngrace_period = \"72h\"\n"+
		"[mfa.totp]\nskew = 0\n"), []string{"PORTCULLIS_MFA_TOTP_MAX_ATTEMPTS=10"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got := c.Policy().MFA
	if got.Requirement != policies.MFARequired || !slices.Equal(got.AllowedFactors, []string{policies.FactorWebAuthn}) ||
		got.GracePeriod.String() != "72h" || got.TOTP.Skew != 0 || got.TOTP.MaxAttempts != 10 || got.TOTP.AttemptWindow.String() != "5m" {
		t.Errorf("Policy().MFA = %+v", got)
	}

	_, err = Load(writeFile(t, "[mfa]\nallowed_factors = []\n[mfa.totp]\nskew = 4\n"), nil)
	checkFields(t, err, map[string]string{
		"mfa.allowed_factors": "must list",
		"mfa.totp.skew":       "must be between 0 and 3",
	})
}
