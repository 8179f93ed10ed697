package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/ipnets"
	"github.com/portcullis/portcullis/policies"
)

// Limits checked by Validate and Warnings.
const (
	minSecretLength = 32

	minMemoryKiB         = 8192
	recommendedMemoryKiB = 19456
	maxMemoryKiB         = 4194304
	maxIterations        = 100
	maxParallelism       = 64
	// maxHashingMemoryMiB (1 TiB) only catches a value written in KiB by
	// mistake; the useful bound is the machine's memory.
	maxHashingMemoryMiB = 1 << 20
	maxQueueTimeout     = 30 * time.Second

	maxOpenConnsLimit = 1000

	// maxSMTPTimeout keeps a mail server that never answers from holding
	// the notice queue for long.
	maxSMTPTimeout = 5 * time.Minute

	// maxScopeDescription keeps a description to one line of the consent
	// page, where it stands for a scope in a list.
	maxScopeDescription = 200
)

// Validate checks every key and returns an *Error listing all problems, or
// nil. It does not modify c.
func (c *Config) Validate() error {
	var p problems
	c.Server.validate(&p)
	c.validateDatabase(&p)
	c.validateSecrets(&p)
	c.Hashing.validate(&p)
	c.Keys.validate(&p)
	c.SMTP.validate(&p)
	c.WebAuthn.validate(c.Server.Issuer, &p)
	c.validatePolicy(&p)
	c.Session.validate(&p)
	c.Scopes.validate(&p)
	c.Log.validate(&p)
	return p.err()
}

// validatePolicy reports the [token] and [session] problems through the
// policy engine's own Validate, so that config.toml and the admin API judge
// the same keys by one set of rules and name them the same way.
func (c *Config) validatePolicy(p *problems) {
	for _, s := range policies.Sections() {
		if _, ok := c.policySection(s); !ok {
			// A programming error, but reported like any problem so that
			// it is seen at the first start rather than silently defaulted.
			p.add(s.Key, "config: the policy section has no [%s] table in config.Config", s.Key)
		}
	}
	_, err := c.Policy().Validate()
	if err == nil {
		return
	}
	fe, ok := fielderr.As(err)
	if !ok {
		p.add("", "validate policy: %v", err)
		return
	}
	for _, f := range fe.Fields {
		*p = append(*p, FieldError{Key: f.Field, Message: f.Message})
	}
}

// Warnings lists settings that are valid but not recommended, sorted, each
// as "key: explanation". It is meant to be logged at start-up.
func (c *Config) Warnings() []string {
	var w []string
	policyWarnings, _ := c.Policy().Validate()
	for _, f := range policyWarnings {
		w = append(w, f.Field+": "+f.Message)
	}
	if m := c.Hashing.MemoryKiB; m >= minMemoryKiB && m < recommendedMemoryKiB {
		w = append(w, fmt.Sprintf("hashing.memory_kib: %d is below the recommended minimum of %d", m, recommendedMemoryKiB))
	}
	if c.Secrets.File != "" && c.Database.Driver() == DriverPostgres {
		w = append(w, "secrets.file: ignored with PostgreSQL, which requires secrets.system")
	}
	if host, _, err := net.SplitHostPort(c.Server.MetricsListen); err == nil && !isLoopbackHost(host) {
		what := "/metrics"
		if c.Server.Pprof {
			what = "/metrics and /debug/pprof/"
		}
		w = append(w, fmt.Sprintf("server.metrics_listen: %q is not loopback, and nothing authenticates requests to %s; let only the scraper reach it (firewall, network policy)", c.Server.MetricsListen, what))
	}
	w = append(w, c.smtpWarnings()...)
	w = append(w, c.WebAuthn.warnings()...)
	sort.Strings(w)
	return w
}

func (s Server) validate(p *problems) {
	host, port, listenOK := validateListen("server.listen", s.Listen, "127.0.0.1:8080", p)
	switch {
	case s.MetricsListen == "":
		// Off. pprof lives only on the metrics listener, so asking for it
		// without one is a mistake worth stopping for.
		if s.Pprof {
			p.add("server.pprof", "needs server.metrics_listen, the only listener that serves it")
		}
	default:
		mhost, mport, ok := validateListen("server.metrics_listen", s.MetricsListen, "127.0.0.1:9464", p)
		if ok && listenOK && port != 0 && port == mport && sameInterface(host, mhost) {
			p.add("server.metrics_listen", "must differ from server.listen (both are %q), so /metrics stays off the public listener", net.JoinHostPort(host, strconv.FormatUint(port, 10)))
		}
	}

	validateIssuer(s.Issuer, p)

	if s.ShutdownTimeout.Duration <= 0 {
		p.add("server.shutdown_timeout", "must be positive")
	}
	// The server parses the list with ipnets too, so what passes here
	// starts.
	for i, proxy := range s.TrustedProxies {
		if _, err := ipnets.ParsePrefix(proxy); err != nil {
			p.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is neither an IP address nor a CIDR", proxy)
		}
	}
}

// validateListen checks that addr is host:port and returns its parts. The
// host may be empty (":8080", all interfaces) and the port 0 (any free port,
// which tests use), so only the shape is checked; whether the address can be
// bound is found out when the server starts.
func validateListen(key, addr, example string, p *problems) (string, uint64, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "must be host:port, such as %q (got %q)", example, addr)
		return "", 0, false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		p.add(key, "port must be a number from 0 to 65535 (got %q)", port)
		return "", 0, false
	}
	return host, n, true
}

// sameInterface reports whether two listen hosts would claim the same
// address for one port: equal hosts, or either being all interfaces, which
// overlaps every other. Names are not resolved ("localhost" and "127.0.0.1"
// differ here); binding reports that case when the server starts.
func sameInterface(a, b string) bool {
	wildcard := func(h string) bool {
		addr, err := netip.ParseAddr(h)
		return h == "" || err == nil && addr.IsUnspecified()
	}
	if wildcard(a) || wildcard(b) {
		return true
	}
	aa, errA := netip.ParseAddr(a)
	ab, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return aa == ab
	}
	return strings.EqualFold(a, b)
}

// validateIssuer applies OpenID Connect Discovery's rules for the issuer
// identifier, relaxed to allow http on loopback so the server runs out of the
// box for local development.
func validateIssuer(issuer string, p *problems) {
	const key = "server.issuer"
	u, err := url.Parse(issuer)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		p.add(key, "not a valid URL: %v", err)
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		p.add(key, "must be an absolute http or https URL (got %q)", issuer)
		return
	}
	if u.Host == "" {
		p.add(key, "must include a host (got %q)", issuer)
		return
	}
	if u.User != nil {
		p.add(key, "must not contain user information")
	}
	if u.RawQuery != "" || u.ForceQuery {
		p.add(key, "must not have a query")
	}
	if u.Fragment != "" || strings.Contains(issuer, "#") {
		p.add(key, "must not have a fragment")
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		p.add(key, "must use https unless the host is loopback or localhost (got %q)", issuer)
	}
}

// isLoopbackHost reports whether host can only be reached from this machine,
// which is when plain http cannot expose tokens on a network.
func isLoopbackHost(host string) bool {
	h := strings.ToLower(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	return err == nil && addr.IsLoopback()
}

func (c *Config) validateDatabase(p *problems) {
	d := c.Database
	const key = "database.url"
	// Messages never echo a PostgreSQL URL: it usually holds a password.
	switch d.Driver() {
	case DriverSQLite:
		path := d.SQLitePath()
		switch {
		case path == "":
			p.add(key, "sqlite URL needs a file path, such as \"sqlite://portcullis.db\"")
		case strings.ContainsAny(path, "?#"):
			// storage appends its own DSN parameters to the path.
			p.add(key, "sqlite URL must be a plain file path without query or fragment")
		}
	case DriverPostgres:
		if _, err := url.Parse(d.URL); err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			p.add(key, "not a valid PostgreSQL URL: %v", err)
		}
	default:
		p.add(key, "must start with \"sqlite://\", \"postgres://\" or \"postgresql://\"")
	}
	if d.MaxOpenConns < 1 || d.MaxOpenConns > maxOpenConnsLimit {
		p.add("database.max_open_conns", "must be from 1 to %d (got %d)", maxOpenConnsLimit, d.MaxOpenConns)
	}
}

func (c *Config) validateSecrets(p *problems) {
	for i, s := range c.Secrets.System {
		if n := utf8.RuneCountInString(s); n < minSecretLength {
			// Only the length is reported: the value is a secret.
			p.add(fmt.Sprintf("secrets.system[%d]", i), "must be at least %d characters (has %d)", minSecretLength, n)
		}
	}
	// A generated secret lives in a local file, which only makes sense
	// beside a local SQLite database; replicas sharing PostgreSQL would each
	// generate a different one and fail to read each other's data.
	if len(c.Secrets.System) == 0 && c.Database.Driver() == DriverPostgres {
		p.add("secrets.system", "required with PostgreSQL (a secret is generated only for SQLite)")
	}
	// Only a provider the policy knows needs it: an unknown one is
	// reported under captcha.provider, and one problem is enough.
	if cp := c.Captcha; cp.ThirdParty() && strings.TrimSpace(c.Secrets.Captcha) == "" {
		p.add("secrets.captcha", "required with captcha.provider %q: the secret key from the provider's console (or PORTCULLIS_SECRETS_CAPTCHA)", cp.Provider)
	}
}

func (h Hashing) validate(p *problems) {
	if h.MemoryKiB < minMemoryKiB || h.MemoryKiB > maxMemoryKiB {
		p.add("hashing.memory_kib", "must be from %d to %d (got %d)", minMemoryKiB, maxMemoryKiB, h.MemoryKiB)
	}
	if h.Iterations < 1 || h.Iterations > maxIterations {
		p.add("hashing.iterations", "must be from 1 to %d (got %d)", maxIterations, h.Iterations)
	}
	if h.Parallelism < 1 || h.Parallelism > maxParallelism {
		p.add("hashing.parallelism", "must be from 1 to %d (got %d)", maxParallelism, h.Parallelism)
	}
	// A budget smaller than one hash would refuse every password check.
	// argon2id's memory is the total over all lanes, so parallelism does
	// not change it.
	if least := (uint64(h.MemoryKiB) + 1023) / 1024; uint64(h.MaxMemoryMiB) < least || h.MaxMemoryMiB > maxHashingMemoryMiB {
		p.add("hashing.max_memory_mib", "must be from %d (one hash of hashing.memory_kib) to %d (got %d)", least, maxHashingMemoryMiB, h.MaxMemoryMiB)
	}
	if d := h.QueueTimeout.Duration; d < 0 || d > maxQueueTimeout {
		p.add("hashing.queue_timeout", "must be from 0s to %s (got %s)", Duration{maxQueueTimeout}, h.QueueTimeout)
	}
}

func (k Keys) validate(p *problems) {
	switch k.Algorithm {
	case "ES256", "RS256", "EdDSA":
	default:
		p.add("keys.algorithm", "must be \"ES256\", \"RS256\" or \"EdDSA\" (got %q)", k.Algorithm)
	}
}

// validate checks what Session adds to the session policy; the policy's own
// keys are checked by validatePolicy.
func (s Session) validate(p *problems) {
	if !isCookieToken(s.CookieName) {
		p.add("session.cookie_name", "must be a non-empty cookie name of letters, digits and !#$%%&'*+-.^_`|~ (got %q)", s.CookieName)
	}
}

// isCookieToken reports whether s is an RFC 6265 cookie-name, i.e. an
// RFC 7230 token.
func isCookieToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// validate checks every scope description, in name order so the report is
// stable. A name that is not a scope token could never be requested, so its
// description would silently never show: better refused.
func (s Scopes) validate(p *problems) {
	for _, name := range slices.Sorted(maps.Keys(s.Descriptions)) {
		key := joinKey("scopes.descriptions", name)
		if !isScopeToken(name) {
			p.add(key, "%q is not a valid scope name: use printable ASCII without spaces, double quotes or backslashes (RFC 6749 section 3.3)", name)
		}
		desc := s.Descriptions[name]
		switch n := utf8.RuneCountInString(desc); {
		case strings.TrimSpace(desc) == "":
			p.add(key, "description must not be empty")
		case n > maxScopeDescription:
			p.add(key, "description must be at most %d characters (has %d)", maxScopeDescription, n)
		}
	}
}

// isScopeToken reports whether s is an RFC 6749 section 3.3 scope-token:
// one or more of %x21 / %x23-5B / %x5D-7E.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

func (l Log) validate(p *problems) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be \"debug\", \"info\", \"warn\" or \"error\" (got %q)", l.Level)
	}
	switch l.Format {
	case "json", "text":
	default:
		p.add("log.format", "must be \"json\" or \"text\" (got %q)", l.Format)
	}
}

// validate checks [smtp]. From and the credentials matter only with a
// host, but every key given is checked, so that a mistake shows when it is
// made rather than on the day email is turned on. Messages never echo the
// password.
func (s SMTP) validate(p *problems) {
	const fromExample = `"Portcullis <noreply@example.com>"`
	switch {
	case s.Host == "":
	case strings.ContainsAny(s.Host, " \t/[]@") || strings.Count(s.Host, ":") == 1:
		p.add("smtp.host", "must be a host name or IP address without a port or scheme, such as \"smtp.example.com\"; the port is smtp.port (got %q)", s.Host)
	}
	if s.Port < 1 || s.Port > 65535 {
		p.add("smtp.port", "must be from 1 to 65535 (got %d)", s.Port)
	}
	switch {
	case s.From == "" && s.Host != "":
		p.add("smtp.from", "required with smtp.host: the sender's address, such as %s", fromExample)
	case s.From != "":
		if err := checkAddress(s.From); err != nil {
			p.add("smtp.from", "%v, such as %s (got %q)", err, fromExample, s.From)
		}
	}
	switch s.TLS {
	case SMTPStartTLS, SMTPTLS:
	case SMTPNoTLS:
		if s.Host != "" && !isLoopbackHost(s.Host) {
			p.add("smtp.tls", "%q is only allowed with a loopback smtp.host (a local relay or mail catcher): across a network it would show the mail and the password to anyone on the path; use %q or %q (got host %q)", SMTPNoTLS, SMTPStartTLS, SMTPTLS, s.Host)
		}
	default:
		p.add("smtp.tls", "must be %q, %q or %q (got %q)", SMTPStartTLS, SMTPTLS, SMTPNoTLS, s.TLS)
	}
	switch {
	case s.Password != "" && s.Username == "":
		p.add("smtp.username", "required with smtp.password")
	case s.Username != "" && s.Password == "":
		p.add("smtp.password", "required with smtp.username (in the file, or as PORTCULLIS_SMTP_PASSWORD)")
	}
	if s.Timeout.Duration <= 0 || s.Timeout.Duration > maxSMTPTimeout {
		p.add("smtp.timeout", "must be positive and at most %s (got %s)", Duration{maxSMTPTimeout}, s.Timeout)
	}
	if s.AdminAddress != "" {
		if err := checkAddress(s.AdminAddress); err != nil {
			p.add("smtp.admin_address", "%v, such as \"security@example.com\" (got %q)", err, s.AdminAddress)
		}
	}
}

// checkAddress accepts one RFC 5322 address, with or without a display
// name, as notify sends to and from.
func checkAddress(s string) error {
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("must be one email address (%s)", strings.TrimPrefix(err.Error(), "mail: "))
	}
	return nil
}

// smtpWarnings are the [smtp] settings that are valid but will not do
// what they seem to, and lockout notices that cannot go out.
func (c *Config) smtpWarnings() []string {
	s := c.SMTP
	var w []string
	if !s.Enabled() {
		if s.AdminAddress != "" {
			w = append(w, "smtp.admin_address: no mail is sent while smtp.host is empty")
		}
		if c.Lockout.NotifyUser {
			w = append(w, "lockout.notify_user: no mail is sent while smtp.host is empty")
		}
		if c.Lockout.NotifyAdmin {
			w = append(w, "lockout.notify_admin: no mail is sent while smtp.host is empty")
		}
		return w
	}
	if c.Lockout.NotifyAdmin && s.AdminAddress == "" {
		w = append(w, "lockout.notify_admin: smtp.admin_address is empty, so no administrator is told")
	}
	switch {
	case s.TLS == SMTPTLS && (s.Port == 587 || s.Port == 25):
		w = append(w, fmt.Sprintf("smtp.port: %d usually speaks STARTTLS, not implicit TLS (smtp.tls = %q); implicit TLS is usually port 465", s.Port, SMTPTLS))
	case s.TLS == SMTPStartTLS && s.Port == 465:
		w = append(w, fmt.Sprintf("smtp.port: 465 usually speaks implicit TLS (smtp.tls = %q), not STARTTLS", SMTPTLS))
	}
	return w
}
