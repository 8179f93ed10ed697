package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// TLSMode is how the connection to the SMTP server is protected.
type TLSMode string

// TLS modes.
const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS
	// (RFC 3207) before anything else is said; a server that does not
	// offer it is an error, never a silent fallback. Port 587.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (RFC 8314). Port 465.
	TLSImplicit TLSMode = "tls"
	// TLSNone sends in plain text. NewMailer allows it only to a loopback
	// host: a local relay or a mail catcher.
	TLSNone TLSMode = "none"
)

// Config is what a Mailer needs; the server fills it from [smtp].
type Config struct {
	// Host is the SMTP server's name or IP address, without a port.
	Host string
	// Port is the SMTP server's port (587 for STARTTLS, 465 for implicit
	// TLS).
	Port int
	// From is the sender, an RFC 5322 address such as
	// "Portcullis <noreply@example.com>"; its domain also names the
	// Message-ID.
	From string
	// TLS is how the connection is protected; "" means TLSStartTLS.
	TLS TLSMode
	// Username and Password authenticate with AUTH PLAIN (or LOGIN when the
	// server offers only that); no username means no AUTH.
	Username string
	Password string
	// Timeout bounds one Send, from dialling to QUIT. A caller's context
	// with an earlier deadline ends it sooner.
	Timeout time.Duration
	// RootCAs, when set, replaces the system roots for verifying the
	// server's certificate: for a relay with a private CA, and for tests.
	RootCAs *x509.CertPool
	// Now stamps the Date header; nil means time.Now.
	Now func() time.Time
}

// Mailer sends mail through one SMTP server. It holds no connection: each
// Send dials, delivers and quits, which suits mail as rare as lockout
// notices and leaves nothing to go stale between them. It is safe for
// concurrent use.
type Mailer struct {
	cfg  Config
	from *mail.Address
	// domain is the From address's domain, for Message-IDs: the machine's
	// host name (go-mail's choice) would tell recipients about our
	// infrastructure, and is often not a domain at all in a container.
	domain string
}

// Message is one plain-text mail to one recipient.
type Message struct {
	// To is the recipient, an RFC 5322 address.
	To string
	// Subject is one line.
	Subject string
	// Text is the body, plain text.
	Text string
}

// NewMailer checks cfg and returns a Mailer for it. It does not connect:
// an SMTP server that is down at start-up must not stop the server from
// starting, and Send reports it when there is mail to send.
func NewMailer(cfg Config) (*Mailer, error) {
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var problems []string
	switch {
	case cfg.Host == "":
		problems = append(problems, "no SMTP host")
	case strings.ContainsAny(cfg.Host, " /[]") || strings.Count(cfg.Host, ":") == 1:
		problems = append(problems, fmt.Sprintf("host %q must be a host name or IP address without a port", cfg.Host))
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		problems = append(problems, fmt.Sprintf("port must be from 1 to 65535 (got %d)", cfg.Port))
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		problems = append(problems, fmt.Sprintf("from %q is not an email address: %v", cfg.From, err))
	}
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if cfg.Host != "" && !isLoopback(cfg.Host) {
			problems = append(problems, fmt.Sprintf("TLS mode %q is only allowed to a loopback host, not %q", TLSNone, cfg.Host))
		}
	default:
		problems = append(problems, fmt.Sprintf("unknown TLS mode %q: want %q, %q or %q", cfg.TLS, TLSStartTLS, TLSImplicit, TLSNone))
	}
	if cfg.Password != "" && cfg.Username == "" {
		problems = append(problems, "a password without a username")
	}
	if cfg.Timeout <= 0 {
		problems = append(problems, fmt.Sprintf("timeout must be positive (got %s)", cfg.Timeout))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("notify: SMTP configuration: %s", strings.Join(problems, "; "))
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	return &Mailer{cfg: cfg, from: from, domain: domain}, nil
}

// isLoopback reports whether host can only be reached from this machine,
// where mail and credentials in plain text cross no network. Names other
// than localhost are not resolved: what they resolve to can change.
func isLoopback(host string) bool {
	h := strings.ToLower(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	return err == nil && addr.IsLoopback()
}

// Addr is the server's host:port, for logs and errors.
func (m *Mailer) Addr() string {
	return net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port))
}

// Send delivers msg, returning once the server has accepted it for
// delivery or with an error saying what failed. It gives up when
// Config.Timeout has passed or ctx ends, whichever comes first, even
// mid-conversation.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	gm, err := m.build(msg)
	if err != nil {
		return err
	}
	return m.transmit(ctx, gm)
}

// SendHTML delivers msg with html as its HTML alternative: a
// multipart/alternative mail whose plain-text part is msg.Text, for the
// mail programs and readers that take no HTML. It gives up as Send does.
func (m *Mailer) SendHTML(ctx context.Context, msg Message, html string) error {
	gm, err := m.build(msg)
	if err != nil {
		return err
	}
	gm.AddAlternativeString(gomail.TypeTextHTML, html)
	return m.transmit(ctx, gm)
}

// transmit holds the SMTP conversation for a message already built.
func (m *Mailer) transmit(ctx context.Context, gm *gomail.Msg) error {
	ctx, cancel := context.WithTimeoutCause(ctx, m.cfg.Timeout,
		fmt.Errorf("gave up after the timeout of %s: %w", m.cfg.Timeout, context.DeadlineExceeded))
	defer cancel()
	client, err := gomail.NewClient(m.cfg.Host, m.options(ctx)...)
	if err != nil {
		return fmt.Errorf("notify: set up SMTP client for %s: %w", m.Addr(), err)
	}
	if err := client.DialAndSendWithContext(ctx, gm); err != nil {
		if ctx.Err() != nil {
			// The connection was closed under go-mail; its error says only
			// that, so the reason goes first.
			return fmt.Errorf("notify: send mail via %s: %w (%w)", m.Addr(), context.Cause(ctx), err)
		}
		return fmt.Errorf("notify: send mail via %s: %w", m.Addr(), err)
	}
	return nil
}

// build turns msg into a go-mail message, refusing what would not make a
// well-formed mail.
func (m *Mailer) build(msg Message) (*gomail.Msg, error) {
	to, err := mail.ParseAddress(msg.To)
	if err != nil {
		return nil, fmt.Errorf("notify: recipient is not an email address: %w", err)
	}
	if strings.ContainsAny(msg.Subject, "\r\n") {
		return nil, errors.New("notify: subject must be one line")
	}
	// No User-Agent: it would tell every recipient which library and
	// version we run.
	gm := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	gm.FromMailAddress(m.from)
	gm.ToMailAddress(to)
	gm.Subject(msg.Subject)
	gm.SetDateWithValue(m.cfg.Now())
	gm.SetMessageIDWithValue(randomID() + "@" + m.domain)
	// RFC 3834: keeps vacation responders and ticket systems from
	// answering a machine that reads no mail.
	gm.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
	return gm, nil
}

// options are the go-mail client settings for one Send whose context is
// ctx.
func (m *Mailer) options(ctx context.Context) []gomail.Option {
	tlsConfig := &tls.Config{
		ServerName: m.cfg.Host,
		RootCAs:    m.cfg.RootCAs,
		MinVersion: tls.VersionTLS12,
	}
	opts := []gomail.Option{
		gomail.WithPort(m.cfg.Port),
		// go-mail's own deadline, renewed per step, is only a backstop:
		// the dialer's close at the end of ctx is what ends a Send on
		// time, and a second later than it so that the error says why.
		gomail.WithTimeout(m.cfg.Timeout + time.Second),
		gomail.WithTLSConfig(tlsConfig),
		gomail.WithDialContextFunc(m.dialer(ctx, tlsConfig)),
	}
	switch m.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// The dialer does the TLS; WithSSL stops go-mail from trying
		// STARTTLS inside it.
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if m.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(&credentials{
			username: m.cfg.Username, password: m.cfg.Password, host: m.cfg.Host,
		}))
	}
	return opts
}

// dialer connects to the server and ties the connection to ctx, the whole
// Send's context: go-mail's own deadlines are renewed per step and the
// context it gives the dialer ends once dialled, so closing the connection
// when ctx ends is what bounds the whole conversation, and what closes the
// connections go-mail leaves open on some failed handshakes (Send cancels
// ctx when it returns). It also joins host and port itself, which go-mail
// gets wrong for an IPv6 address.
func (m *Mailer) dialer(ctx context.Context, tlsConfig *tls.Config) gomail.DialContextFunc {
	return func(dialCtx context.Context, network, _ string) (net.Conn, error) {
		d := &net.Dialer{}
		var conn net.Conn
		var err error
		if m.cfg.TLS == TLSImplicit {
			// The *tls.Conn itself is returned, unwrapped, because that is
			// how go-mail's SMTP client knows the connection is encrypted
			// and so may carry credentials.
			conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).DialContext(dialCtx, network, m.Addr())
		} else {
			conn, err = d.DialContext(dialCtx, network, m.Addr())
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	}
}

// randomID is the local part of a Message-ID: 128 random bits.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails.
	return hex.EncodeToString(b)
}

// credentials is SMTP AUTH with whichever of PLAIN and LOGIN the server
// offers, PLAIN first. go-mail's own discovery does not count implicit TLS
// from our dialer as encryption and so would refuse both; this chooses
// after the handshake instead. Either refuses to send the password except
// over TLS or to localhost.
type credentials struct {
	username, password, host string
	chosen                   smtp.Auth
}

func (c *credentials) Start(server *smtp.ServerInfo) (string, []byte, error) {
	offers := func(mech string) bool {
		for _, m := range server.Auth {
			if strings.EqualFold(m, mech) {
				return true
			}
		}
		return false
	}
	switch {
	case offers("PLAIN"):
		c.chosen = smtp.PlainAuth("", c.username, c.password, c.host, false)
	case offers("LOGIN"):
		c.chosen = smtp.LoginAuth(c.username, c.password, c.host, false)
	case len(server.Auth) == 0:
		return "", nil, errors.New("a username is configured but the server offers no SMTP AUTH")
	default:
		return "", nil, fmt.Errorf("the server offers neither AUTH PLAIN nor LOGIN (it offers %s)", strings.Join(server.Auth, " "))
	}
	return c.chosen.Start(server)
}

func (c *credentials) Next(fromServer []byte, more bool) ([]byte, error) {
	return c.chosen.Next(fromServer, more)
}
