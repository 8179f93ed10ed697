package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSMTPValidate covers every [smtp] rule, each problem naming its key.
func TestSMTPValidate(t *testing.T) {
	const password = "hunter2-Pa55"
	on := func(c *Config) {
		c.SMTP.Host = "smtp.example.com"
		c.SMTP.From = "Portcullis <noreply@example.com>"
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   map[string]string // key -> substring; nil when valid
	}{
		{name: "off by default", mutate: func(*Config) {}},
		{name: "on with starttls", mutate: on},
		{name: "bare from address", mutate: func(c *Config) { on(c); c.SMTP.From = "noreply@example.com" }},
		{name: "implicit tls on 465", mutate: func(c *Config) { on(c); c.SMTP.TLS, c.SMTP.Port = SMTPTLS, 465 }},
		{name: "no tls to a loopback relay", mutate: func(c *Config) { on(c); c.SMTP.Host, c.SMTP.TLS, c.SMTP.Port = "127.0.0.1", SMTPNoTLS, 25 }},
		{name: "no tls to localhost", mutate: func(c *Config) { on(c); c.SMTP.Host, c.SMTP.TLS = "localhost", SMTPNoTLS }},
		{name: "no tls to ipv6 loopback", mutate: func(c *Config) { on(c); c.SMTP.Host, c.SMTP.TLS = "::1", SMTPNoTLS }},
		{name: "credentials", mutate: func(c *Config) { on(c); c.SMTP.Username, c.SMTP.Password = "mailer", password }},
		{name: "admin address", mutate: func(c *Config) { on(c); c.SMTP.AdminAddress = "Security <security@example.com>" }},
		{name: "from without host", mutate: func(c *Config) { c.SMTP.From = "noreply@example.com" }},

		{name: "host without from", mutate: func(c *Config) { c.SMTP.Host = "smtp.example.com" },
			want: map[string]string{"smtp.from": "required with smtp.host"}},
		{name: "from not an address", mutate: func(c *Config) { on(c); c.SMTP.From = "Portcullis" },
			want: map[string]string{"smtp.from": "must be one email address"}},
		{name: "from is two addresses", mutate: func(c *Config) { on(c); c.SMTP.From = "a@example.com, b@example.com" },
			want: map[string]string{"smtp.from": "must be one email address"}},
		{name: "bad from without host", mutate: func(c *Config) { c.SMTP.From = "nobody" },
			want: map[string]string{"smtp.from": "must be one email address"}},
		{name: "host with port", mutate: func(c *Config) { on(c); c.SMTP.Host = "smtp.example.com:587" },
			want: map[string]string{"smtp.host": "without a port"}},
		{name: "host as url", mutate: func(c *Config) { on(c); c.SMTP.Host = "smtp://smtp.example.com" },
			want: map[string]string{"smtp.host": "without a port or scheme"}},
		{name: "bracketed ipv6 host", mutate: func(c *Config) { on(c); c.SMTP.Host = "[::1]" },
			want: map[string]string{"smtp.host": "host name or IP address"}},
		{name: "port zero", mutate: func(c *Config) { on(c); c.SMTP.Port = 0 },
			want: map[string]string{"smtp.port": "1 to 65535"}},
		{name: "port too big", mutate: func(c *Config) { c.SMTP.Port = 70000 },
			want: map[string]string{"smtp.port": "(got 70000)"}},
		{name: "unknown tls mode", mutate: func(c *Config) { on(c); c.SMTP.TLS = "ssl" },
			want: map[string]string{"smtp.tls": `must be "starttls", "tls" or "none" (got "ssl")`}},
		{name: "empty tls mode", mutate: func(c *Config) { c.SMTP.TLS = "" },
			want: map[string]string{"smtp.tls": "must be"}},
		{name: "no tls across a network", mutate: func(c *Config) { on(c); c.SMTP.TLS = SMTPNoTLS },
			want: map[string]string{"smtp.tls": "only allowed with a loopback smtp.host"}},
		{name: "no tls to a private address", mutate: func(c *Config) { on(c); c.SMTP.Host, c.SMTP.TLS = "10.0.0.25", SMTPNoTLS },
			want: map[string]string{"smtp.tls": `(got host "10.0.0.25")`}},
		{name: "password without username", mutate: func(c *Config) { on(c); c.SMTP.Password = password },
			want: map[string]string{"smtp.username": "required with smtp.password"}},
		{name: "username without password", mutate: func(c *Config) { on(c); c.SMTP.Username = "mailer" },
			want: map[string]string{"smtp.password": "PORTCULLIS_SMTP_PASSWORD"}},
		{name: "zero timeout", mutate: func(c *Config) { c.SMTP.Timeout = Duration{} },
			want: map[string]string{"smtp.timeout": "must be positive"}},
		{name: "long timeout", mutate: func(c *Config) { c.SMTP.Timeout = Duration{time.Hour} },
			want: map[string]string{"smtp.timeout": "at most 5m (got 1h)"}},
		{name: "admin address not an address", mutate: func(c *Config) { on(c); c.SMTP.AdminAddress = "security team" },
			want: map[string]string{"smtp.admin_address": "must be one email address"}},
		{name: "every problem at once", mutate: func(c *Config) {
			c.SMTP = SMTP{Host: "mail.example.com:25", Port: -1, TLS: SMTPNoTLS, Password: password, AdminAddress: "x"}
		}, want: map[string]string{
			"smtp.host": "without a port", "smtp.port": "1 to 65535", "smtp.from": "required",
			"smtp.tls": "loopback", "smtp.username": "required", "smtp.timeout": "positive",
			"smtp.admin_address": "email address",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			checkFields(t, err, tt.want)
			if strings.Contains(err.Error(), password) {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

// TestSMTPFromFileAndEnv: the table loads from the file, every key can be
// overridden from the environment, and the password comes from
// PORTCULLIS_SMTP_PASSWORD without being in the file.
func TestSMTPFromFileAndEnv(t *testing.T) {
	const file = `
[smtp]
host = "smtp.example.com"
port = 465
from = "Portcullis <noreply@example.com>"
tls = "tls"
username = "mailer"
timeout = "30s"
admin_address = "security@example.com"
`
	tests := []struct {
		name string
		env  []string
		want SMTP
	}{
		{
			name: "password from the environment",
			env:  []string{"PORTCULLIS_SMTP_PASSWORD=from-env-Pa55"},
			want: SMTP{Host: "smtp.example.com", Port: 465, From: "Portcullis <noreply@example.com>", TLS: SMTPTLS,
				Username: "mailer", Password: "from-env-Pa55", Timeout: Duration{30 * time.Second}, AdminAddress: "security@example.com"},
		},
		{
			name: "every key from the environment",
			env: []string{
				"PORTCULLIS_SMTP_HOST=127.0.0.1", "PORTCULLIS_SMTP_PORT=1025", "PORTCULLIS_SMTP_FROM=test@localhost",
				"PORTCULLIS_SMTP_TLS=none", "PORTCULLIS_SMTP_USERNAME=u", "PORTCULLIS_SMTP_PASSWORD=p",
				"PORTCULLIS_SMTP_TIMEOUT=2s", "PORTCULLIS_SMTP_ADMIN_ADDRESS=admin@localhost",
			},
			want: SMTP{Host: "127.0.0.1", Port: 1025, From: "test@localhost", TLS: SMTPNoTLS,
				Username: "u", Password: "p", Timeout: Duration{2 * time.Second}, AdminAddress: "admin@localhost"},
		},
		{
			name: "email turned off from the environment",
			env:  []string{"PORTCULLIS_SMTP_HOST=", "PORTCULLIS_SMTP_PASSWORD=p"},
			want: SMTP{Port: 465, From: "Portcullis <noreply@example.com>", TLS: SMTPTLS,
				Username: "mailer", Password: "p", Timeout: Duration{30 * time.Second}, AdminAddress: "security@example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, file), tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.SMTP != tt.want {
				t.Errorf("SMTP = %+v\nwant %+v", c.SMTP, tt.want)
			}
			if got, want := c.SMTP.Enabled(), tt.want.Host != ""; got != want {
				t.Errorf("Enabled() = %v, want %v", got, want)
			}
		})
	}

	t.Run("password missing", func(t *testing.T) {
		checkFields(t, mustFail(Load(writeFile(t, file), nil)),
			map[string]string{"smtp.password": "required with smtp.username"})
	})
}

func TestSMTPLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		env  []string
		want map[string]string
	}{
		{name: "port as a string", toml: "[smtp]\nport = \"587\"\n",
			want: map[string]string{"smtp.port": "must be an integer, not a string"}},
		{name: "timeout as a number", toml: "[smtp]\ntimeout = 10\n",
			want: map[string]string{"smtp.timeout": "must be a duration string"}},
		{name: "unknown key", toml: "[smtp]\nstarttls = true\n",
			want: map[string]string{"smtp.starttls": "unknown key"}},
		{name: "port not a number in the environment", env: []string{"PORTCULLIS_SMTP_PORT=smtp"},
			want: map[string]string{"smtp.port": "PORTCULLIS_SMTP_PORT: must be an integer"}},
		{name: "misspelt variable", env: []string{"PORTCULLIS_SMTP_PASS=x"},
			want: map[string]string{"PORTCULLIS_SMTP_PASS": "matches no configuration key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.toml != "" {
				path = writeFile(t, tt.toml)
			}
			checkFields(t, mustFail(Load(path, tt.env)), tt.want)
		})
	}
}

func TestSMTPWarnings(t *testing.T) {
	on := func(c *Config) {
		c.SMTP.Host = "smtp.example.com"
		c.SMTP.From = "noreply@example.com"
		c.SMTP.AdminAddress = "security@example.com"
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"on", on, nil},
		{"notices on and mail on", func(c *Config) { on(c); c.Lockout.NotifyUser, c.Lockout.NotifyAdmin = true, true }, nil},
		{"admin address without a host", func(c *Config) { c.SMTP.AdminAddress = "security@example.com" },
			[]string{"smtp.admin_address: no mail is sent while smtp.host is empty"}},
		{"notices without a host", func(c *Config) { c.Lockout.NotifyUser, c.Lockout.NotifyAdmin = true, true },
			[]string{
				"lockout.notify_admin: no mail is sent while smtp.host is empty",
				"lockout.notify_user: no mail is sent while smtp.host is empty",
			}},
		{"admin notices without an address", func(c *Config) { on(c); c.SMTP.AdminAddress = ""; c.Lockout.NotifyAdmin = true },
			[]string{"lockout.notify_admin: smtp.admin_address is empty, so no administrator is told"}},
		{"implicit tls on the submission port", func(c *Config) { on(c); c.SMTP.TLS = SMTPTLS },
			[]string{`smtp.port: 587 usually speaks STARTTLS, not implicit TLS (smtp.tls = "tls"); implicit TLS is usually port 465`}},
		{"starttls on 465", func(c *Config) { on(c); c.SMTP.Port = 465 },
			[]string{`smtp.port: 465 usually speaks implicit TLS (smtp.tls = "tls"), not STARTTLS`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v; warnings are for valid settings", err)
			}
			if got := c.Warnings(); !slices.Equal(got, tt.want) {
				t.Errorf("Warnings() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSMTPEnvNames(t *testing.T) {
	keys, err := leafKeys(reflect.TypeFor[Config]())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range keys {
		got[l.key] = l.env
	}
	for _, key := range []string{"host", "port", "from", "tls", "username", "password", "timeout", "admin_address"} {
		want := "PORTCULLIS_SMTP_" + strings.ToUpper(key)
		if got["smtp."+key] != want {
			t.Errorf("smtp.%s maps to %q, want %q", key, got["smtp."+key], want)
		}
	}
}
