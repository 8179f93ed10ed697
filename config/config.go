package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/portcullis/portcullis/policies"
)

// Config is the whole runtime configuration. Each field is one [section] of
// the TOML file; the toml tags are also the source of the environment
// variable names, so they must stay unique once upper-cased and joined.
type Config struct {
	Server   Server   `toml:"server"`
	Database Database `toml:"database"`
	Secrets  Secrets  `toml:"secrets"`
	Hashing  Hashing  `toml:"hashing"`
	Keys     Keys     `toml:"keys"`
	SMTP     SMTP     `toml:"smtp"`
	// WebAuthn is the relying party passkeys and security keys are bound
	// to: deployment wiring, the same for every application.
	WebAuthn WebAuthnConfig `toml:"webauthn"`
	// Token and Session hold the policy keys that config.toml sets; the
	// effective global policy layers what admins set on top (see Policy).
	// Each section of policies.Sections has its table here, under the
	// section's key, of the section's type or embedding it inline; Policy
	// and Default find them by that key, and a test fails for a section
	// without one.
	Token    policies.Token    `toml:"token"`
	Session  Session           `toml:"session"`
	Password policies.Password `toml:"password"`
	Lockout  policies.Lockout  `toml:"lockout"`
	IP       policies.IP       `toml:"ip"`
	Captcha  policies.Captcha  `toml:"captcha"`
	// Registration is the account lifecycle policy section.
	Registration policies.Registration `toml:"registration"`
	// MFA is the second-factor policy section.
	MFA policies.MFA `toml:"mfa"`
	// DeviceFlow is the device authorization grant (RFC 8628) policy
	// section.
	DeviceFlow policies.DeviceFlow `toml:"device_flow"`
	Scopes     Scopes              `toml:"scopes"`
	Log        Log                 `toml:"log"`
}

// Server configures the HTTP listener and the issuer identity.
type Server struct {
	// Listen is the host:port the HTTP server binds to.
	Listen string `toml:"listen"`
	// Issuer is the OpenID Connect issuer identifier; every token and the
	// discovery document carry it verbatim, so it is stored without a
	// trailing slash.
	Issuer string `toml:"issuer"`
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// on shutdown.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// TrustedProxies lists the CIDRs or addresses whose X-Forwarded-*
	// headers are believed.
	TrustedProxies []string `toml:"trusted_proxies"`
	// MetricsListen is the host:port of a second listener for /metrics
	// (and pprof), kept off the public one because neither asks for
	// authentication and both describe the server's internals. "" turns
	// it off.
	MetricsListen string `toml:"metrics_listen"`
	// Pprof adds net/http/pprof under /debug/pprof/ to the metrics
	// listener. Off by default: profiles and goroutine dumps expose code
	// paths and memory contents, and a CPU profile costs CPU while it runs.
	Pprof bool `toml:"pprof"`
}

// Database configures persistent storage.
type Database struct {
	// URL is "sqlite://path" (relative), "sqlite:///abs/path", or a
	// "postgres://" / "postgresql://" connection URL. Load resolves a
	// relative SQLite path against the folder of the configuration file
	// (see Load), so every command finds the same database wherever it is
	// run from.
	URL          string `toml:"url"`
	MaxOpenConns int    `toml:"max_open_conns"`
	// AutoMigrate is a pointer so that a hand-built Config without it means
	// the default (true) rather than false; see AutoMigrateEnabled.
	AutoMigrate *bool `toml:"auto_migrate"`
}

// Secrets configures the server-wide secrets used to encrypt data at rest and
// sign internal values.
type Secrets struct {
	// System is newest first: the first entry encrypts, all of them decrypt,
	// which is what makes rotation possible.
	System []string `toml:"system"`
	// File is where a generated secret is kept when using SQLite and System
	// is empty. Empty means next to the database; see Config.SecretFilePath.
	File string `toml:"file"`
	// Captcha is the third-party captcha provider's secret key, which
	// verifies answers with it. It is here, not in the [captcha] policy,
	// because the policy is readable through the admin API.
	Captcha string `toml:"captcha"`
}

// Hashing configures argon2id for user passwords.
type Hashing struct {
	MemoryKiB   uint32 `toml:"memory_kib"`
	Iterations  uint32 `toml:"iterations"`
	Parallelism uint8  `toml:"parallelism"`
	// MaxMemoryMiB is the memory all password hashes running at once may
	// use. Each argon2id hash holds MemoryKiB for its whole run, so without
	// a bound a burst of sign-ins can take more memory than the machine
	// has; hashes beyond it wait up to QueueTimeout, then are refused.
	MaxMemoryMiB uint32 `toml:"max_memory_mib"`
	// QueueTimeout is how long a hash waits for memory before the request
	// is refused with 503 and Retry-After: long enough to ride out a burst,
	// short enough that a client is not left hanging while the queue grows.
	QueueTimeout Duration `toml:"queue_timeout"`
}

// Keys configures token signing keys.
type Keys struct {
	// Algorithm is the JWS algorithm of newly generated signing keys:
	// "ES256", "RS256" or "EdDSA".
	Algorithm string `toml:"algorithm"`
}

// SMTP configures outgoing email (package notify): the lockout notices
// for now. Host "" turns email off.
type SMTP struct {
	// Host is the SMTP server's name or IP address, without the port.
	Host string `toml:"host"`
	Port int    `toml:"port"`
	// From is the sender, an RFC 5322 address such as
	// "Portcullis <noreply@example.com>"; required with a host.
	From string `toml:"from"`
	// TLS is "starttls" (RFC 3207), "tls" (implicit, RFC 8314) or "none",
	// which only a loopback host may use: plain text elsewhere would show
	// the password and the mail to the network.
	TLS string `toml:"tls"`
	// Username and Password authenticate (AUTH PLAIN or LOGIN); "" means
	// no authentication. The password is best given as
	// PORTCULLIS_SMTP_PASSWORD rather than in the file, and is never
	// logged nor put in an error.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// Timeout bounds one mail, from connecting to the server's "OK".
	Timeout Duration `toml:"timeout"`
	// AdminAddress receives the mail for administrators
	// (lockout.notify_admin); "" sends them none. It is here, not in the
	// [lockout] policy, because it is where the deployment's mail goes,
	// the same for every application, and not a rule an application
	// customizes.
	AdminAddress string `toml:"admin_address"`
}

// Values of smtp.tls.
const (
	SMTPStartTLS = "starttls"
	SMTPTLS      = "tls"
	SMTPNoTLS    = "none"
)

// Enabled reports whether email is on: whether smtp.host is set.
func (s SMTP) Enabled() bool { return s.Host != "" }

// Session is the [session] table: the session policy's keys, inline, plus
// the cookie's name, which is deployment wiring rather than policy and so
// cannot be changed through the admin API.
type Session struct {
	policies.Session `toml:",inline"`
	CookieName       string `toml:"cookie_name"`
}

// Scopes describes the OAuth scopes this server's applications request.
type Scopes struct {
	// Descriptions maps a scope name to the sentence the consent page
	// shows for it ("See your orders"), so that a person grants something
	// they can read rather than a token such as "orders:read".
	Descriptions map[string]string `toml:"descriptions"`
}

// Log configures logging.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Database drivers reported by Database.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

const (
	sqliteScheme      = "sqlite://"
	defaultSecretFile = "portcullis.secret"
)

// Default returns a Config with every key set to its default. It is what the
// server runs with when there is no file and no environment: SQLite next to
// the working directory, listening on loopback only.
func Default() *Config {
	autoMigrate := true
	c := &Config{
		Server: Server{
			Listen:          "127.0.0.1:8080",
			Issuer:          "http://127.0.0.1:8080",
			ShutdownTimeout: Duration{15 * time.Second},
			TrustedProxies:  []string{},
			// 9464 is the port the OpenTelemetry SDKs give an
			// application's own Prometheus endpoint, so scrape
			// configurations written for that convention find it.
			MetricsListen: "127.0.0.1:9464",
			Pprof:         false,
		},
		Database: Database{
			URL:          "sqlite://portcullis.db",
			MaxOpenConns: 16,
			AutoMigrate:  &autoMigrate,
		},
		Secrets: Secrets{
			System:  []string{},
			File:    "",
			Captcha: "",
		},
		Hashing: Hashing{
			// The OWASP argon2id baseline: 19 MiB, 2 passes, 1 lane.
			MemoryKiB:   19456,
			Iterations:  2,
			Parallelism: 1,
			// Well under 1 GiB, so a small machine survives a burst of
			// sign-ins: 13 hashes of 19 MiB at once.
			MaxMemoryMiB: 256,
			QueueTimeout: Duration{2 * time.Second},
		},
		Keys:    Keys{Algorithm: "ES256"},
		Session: Session{CookieName: "portcullis_session"},
		// Never nil, so that an empty [scopes.descriptions] table in a
		// file and the default compare equal.
		Scopes: Scopes{Descriptions: map[string]string{}},
		Log:    Log{Level: "info", Format: "json"},
		SMTP: SMTP{
			Host: "",
			// The submission port (RFC 6409), with STARTTLS.
			Port:         587,
			From:         "",
			TLS:          SMTPStartTLS,
			Username:     "",
			Password:     "",
			Timeout:      Duration{10 * time.Second},
			AdminAddress: "",
		},
		// Empty values follow the issuer (see WebAuthnConfig.Resolve);
		// Origins is never nil, so that "origins = []" in a file and the
		// default compare equal.
		WebAuthn: WebAuthnConfig{RPID: "", RPDisplayName: "", Origins: []string{}},
	}
	// The policy keys take their defaults from the policy engine, so that
	// config.toml, the admin API and per-application snapshots start from
	// the same values.
	defaults := policies.Defaults()
	for _, s := range policies.Sections() {
		if f, ok := c.policySection(s); ok {
			f.Set(s.Field(&defaults))
		}
	}
	return c
}

// Policy is the policy the configuration gives: the base the admins'
// overlay is applied to. It shares no memory with c. A section without a
// table in Config (Validate reports it) keeps its defaults.
func (c *Config) Policy() policies.Policy {
	p := policies.Defaults()
	for _, s := range policies.Sections() {
		if f, ok := c.policySection(s); ok {
			s.Field(&p).Set(f)
		}
	}
	return p.Clone()
}

// policySection is the value in c that holds policy section s: the field
// whose toml key is the section's, when it is of the section's type or
// embeds it inline beside keys of the deployment's own ([session] adds
// cookie_name).
func (c *Config) policySection(s policies.Section) (reflect.Value, bool) {
	root := reflect.ValueOf(c).Elem()
	idx, ok := tableFields(root.Type())[s.Key]
	if !ok {
		return reflect.Value{}, false
	}
	f := root.FieldByIndex(idx)
	if f.Type() == s.Type {
		return f, true
	}
	if f.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	for i := range f.NumField() {
		if sf := f.Type().Field(i); isInline(sf) && sf.Type == s.Type {
			return f.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// Driver reports "sqlite" or "postgres" according to the URL scheme, or ""
// when the URL is neither (Validate rejects that).
func (d Database) Driver() string {
	switch {
	case strings.HasPrefix(d.URL, sqliteScheme):
		return DriverSQLite
	case strings.HasPrefix(d.URL, "postgres://"), strings.HasPrefix(d.URL, "postgresql://"):
		return DriverPostgres
	default:
		return ""
	}
}

// SQLitePath returns the database file path of a sqlite:// URL:
// "sqlite://data/p.db" is the relative path "data/p.db" and
// "sqlite:///var/lib/p.db" the absolute "/var/lib/p.db". It returns "" for
// other drivers.
func (d Database) SQLitePath() string {
	if d.Driver() != DriverSQLite {
		return ""
	}
	return strings.TrimPrefix(d.URL, sqliteScheme)
}

// AutoMigrateEnabled reports whether serve should migrate on start; unset
// means the default, true.
func (d Database) AutoMigrateEnabled() bool {
	return d.AutoMigrate == nil || *d.AutoMigrate
}

// SecretFilePath returns where a generated system secret is kept: the
// configured secrets.file, or else portcullis.secret beside the SQLite
// database. It returns "" when there is no such place (PostgreSQL without
// secrets.file), since a file beside a remote database makes no sense.
func (c *Config) SecretFilePath() string {
	if c.Secrets.File != "" {
		return c.Secrets.File
	}
	if c.Database.Driver() != DriverSQLite {
		return ""
	}
	return filepath.Join(filepath.Dir(c.Database.SQLitePath()), defaultSecretFile)
}

// Duration is a time.Duration written in TOML and the environment as a Go
// duration string such as "15m" or "168h".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a Go duration such as \"15m\" or \"168h\"", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in the shortest form that parses back
// ("168h" rather than "168h0m0s"), which is what a person would write.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// String is the same short form as MarshalText.
func (d Duration) String() string { return policies.Duration(d.Duration).String() }

// FieldError is one configuration problem. Key is the dotted TOML key path
// (with [i] for list elements) when the problem belongs to a key, the
// environment variable name when a variable matches no key, or the file
// position for problems such as TOML syntax errors.
type FieldError struct {
	Key     string
	Message string
}

func (f FieldError) String() string {
	if f.Key == "" {
		return f.Message
	}
	return f.Key + ": " + f.Message
}

// Error is every problem found while loading or validating a Config.
type Error struct {
	Fields []FieldError
}

// Error lists the problems one per line, sorted by key so that output is
// stable regardless of the order they were found in.
func (e *Error) Error() string {
	fields := make([]FieldError, len(e.Fields))
	copy(fields, e.Fields)
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Key < fields[j].Key })
	lines := make([]string, len(fields))
	for i, f := range fields {
		lines[i] = f.String()
	}
	return strings.Join(lines, "\n")
}

// problems accumulates FieldErrors; it exists so that each check is one line.
type problems []FieldError

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
}

// err returns nil (not a nil *Error) when there is nothing to report, so
// that callers' err != nil checks work.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Fields: p}
}
