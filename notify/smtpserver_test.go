package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// This file is a real SMTP server for the tests, go-smtp on 127.0.0.1:0,
// recording every message it accepts: the mailer is tested against an SMTP
// conversation, not a stand-in for one.

// received is one message the test server accepted.
type received struct {
	From string
	To   []string
	Data []byte
	// User is who authenticated ("" for nobody); TLS whether the
	// conversation was encrypted when MAIL FROM came.
	User string
	TLS  bool
}

// serverOptions shapes a test server.
type serverOptions struct {
	// mode is how clients reach it: TLSNone (plain), TLSStartTLS (plain
	// offering STARTTLS) or TLSImplicit (TLS from the first byte).
	mode TLSMode
	// cert is the server's certificate for the TLS modes.
	cert tls.Certificate
	// username and password, when set, are required before MAIL FROM,
	// with AUTH PLAIN, or AUTH LOGIN alone when loginOnly.
	username, password string
	loginOnly          bool
	// refuse is a recipient the server answers 550 to.
	refuse string
}

type testServer struct {
	host string
	port int

	mu   sync.Mutex
	msgs []received
}

func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	ts := &testServer{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{ts: ts, opts: opts, conn: c}, nil
	}))
	s.Domain = "localhost"
	// Its complaints about connections the failure cases cut are expected.
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	// AUTH is refused over plain text unless allowed; the mailer sends
	// credentials in plain text only to loopback, which this is.
	s.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{opts.cert}, MinVersion: tls.VersionTLS12}
	switch opts.mode {
	case TLSStartTLS:
		s.TLSConfig = tlsConfig
	case TLSImplicit:
		l = tls.NewListener(l, tlsConfig)
	}
	addr := l.Addr().(*net.TCPAddr)
	ts.host, ts.port = addr.IP.String(), addr.Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp server: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = s.Close()
		// Close only knows the listener once Serve has started; a test
		// that never connects may end before that.
		_ = l.Close()
		<-done
	})
	return ts
}

func (ts *testServer) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.msgs...)
}

// config is a mailer Config for this server, trusting roots.
func (ts *testServer) config(mode TLSMode, roots *x509.CertPool) Config {
	return Config{
		Host: ts.host, Port: ts.port, From: "Portcullis <noreply@id.example.com>", TLS: mode,
		Timeout: 5 * time.Second, RootCAs: roots, Now: fixedClock,
	}
}

type session struct {
	ts   *testServer
	opts serverOptions
	conn *smtp.Conn

	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string {
	switch {
	case s.opts.username == "":
		return nil
	case s.opts.loginOnly:
		return []string{sasl.Login}
	default:
		return []string{sasl.Plain}
	}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		if username != s.opts.username || password != s.opts.password {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}
	switch {
	case mech == sasl.Plain && !s.opts.loginOnly:
		return sasl.NewPlainServer(func(_, username, password string) error { return check(username, password) }), nil
	case mech == sasl.Login && s.opts.loginOnly:
		return &loginServer{check: check}, nil
	default:
		return nil, smtp.ErrAuthUnknownMechanism
	}
}

// loginServer is the server side of AUTH LOGIN, which go-sasl has only a
// client for: it asks for the username, then the password.
type loginServer struct {
	check    func(username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(response) > 0 { // sent with the command
			l.username, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.username = string(response)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.username, string(response))
	}
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.opts.username != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.opts.refuse {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.ts.msgs = append(s.ts.msgs, received{From: s.from, To: s.to, Data: data, User: s.user, TLS: isTLS})
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost, and a
// pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test smtp server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// parsed is a received message as a reader sees it.
type parsed struct {
	From, To, Subject, Date, MessageID, AutoSubmitted, UserAgent string
	Body                                                         string
}

func parseMessage(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "UTF-8") {
		t.Errorf("Content-Type = %q, want text/plain in UTF-8", ct)
	}
	body := m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return parsed{
		From: m.Header.Get("From"), To: m.Header.Get("To"), Subject: subject,
		Date: m.Header.Get("Date"), MessageID: m.Header.Get("Message-Id"),
		AutoSubmitted: m.Header.Get("Auto-Submitted"), UserAgent: m.Header.Get("User-Agent") + m.Header.Get("X-Mailer"),
		Body: strings.ReplaceAll(string(text), "\r\n", "\n"),
	}
}

// fixedClock is the tests' clock: every Date header and default LockedAt.
func fixedClock() time.Time { return time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC) }
