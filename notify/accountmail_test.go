package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testLink has what mail encodings change ("=", "&") and is longer than a
// quoted-printable line, so that it arrives intact only if decoded right.
const testLink = testIssuer + "/account/verify?token=c2VjcmV0LXRva2VuLXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ&flow=f-1"

// newAccountMails returns AccountMails sending through mailer, and the
// buffer its log goes to. cfg's Mailer, Issuer and Logger are filled in; a zero RetryDelays means retries 10ms apart.
func newAccountMails(t *testing.T, mailer Sender, cfg AccountMailsConfig) (*AccountMails, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Mailer = mailer
	cfg.Issuer = testIssuer
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Now == nil {
		cfg.Now = fixedClock
	}
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	}
	a, err := NewAccountMails(cfg)
	if err != nil {
		t.Fatalf("NewAccountMails: %v", err)
	}
	return a, logs
}

func testMailer(t *testing.T, cfg Config) *Mailer {
	t.Helper()
	m, err := NewMailer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runMails runs a.Run until the test ends.
func runMails(t *testing.T, a *AccountMails) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func flushMails(t *testing.T, a *AccountMails) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// multipartMail is a received multipart/alternative mail, decoded.
type multipartMail struct {
	header     mail.Header
	subject    string
	text, html string
	// encodings are the parts' Content-Transfer-Encodings as sent.
	encodings []string
}

// parseAlternative reads data as a mail with a plain-text and an HTML
// part, decoding each part's transfer encoding itself (multipart's Reader
// would do quoted-printable silently, and hide what was sent).
func parseAlternative(t *testing.T, data []byte) multipartMail {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	out := multipartMail{header: m.Header, subject: subject}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative\n%s", m.Header.Get("Content-Type"), err, data)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		ct, cparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("part Content-Type %q: %v", p.Header.Get("Content-Type"), err)
		}
		if !strings.EqualFold(cparams["charset"], "utf-8") {
			t.Errorf("%s part in charset %q, want UTF-8", ct, cparams["charset"])
		}
		cte := strings.ToLower(p.Header.Get("Content-Transfer-Encoding"))
		out.encodings = append(out.encodings, cte)
		var body io.Reader = p
		switch cte {
		case "quoted-printable":
			body = quotedprintable.NewReader(p)
		case "", "7bit", "8bit":
		default:
			t.Fatalf("%s part in unexpected encoding %q", ct, cte)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("decode %s part: %v", ct, err)
		}
		s := strings.ReplaceAll(string(b), "\r\n", "\n")
		switch ct {
		case "text/plain":
			out.text = s
		case "text/html":
			out.html = s
		default:
			t.Errorf("unexpected part %s", ct)
		}
	}
	if out.text == "" || out.html == "" {
		t.Fatalf("want a text/plain and a text/html part:\n%s", data)
	}
	return out
}

// hrefs are the decoded targets of s's links.
func hrefs(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(s, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

func TestAccountMailKinds(t *testing.T) {
	tests := []struct {
		mail    AccountMail
		subject string
		// text is what the plain-text part must say besides the link.
		text []string
	}{
		{
			mail:    AccountMail{Kind: KindVerifyEmail, Link: testLink, ExpiresIn: time.Hour},
			subject: "Confirm your email address for id.example.com",
			text:    []string{"Please confirm that this email address belongs to you", "This link works once and expires in 1 hour."},
		},
		{
			mail:    AccountMail{Kind: KindActivation, Link: testLink, ExpiresIn: 72 * time.Hour},
			subject: "Set your password for your new account at id.example.com",
			text:    []string{"An administrator of id.example.com has created an account for you.", "expires in 3 days."},
		},
		{
			mail:    AccountMail{Kind: KindReset, Link: testLink, ExpiresIn: 30 * time.Minute},
			subject: "Reset your password for id.example.com",
			text:    []string{"expires in 30 minutes.", "If you did not ask for this, you can ignore this message."},
		},
		{
			mail:    AccountMail{Kind: KindPasswordChanged, Link: testLink, ExpiresIn: time.Hour},
			subject: "Your password for id.example.com was changed",
			// When comes from the clock: fixedClock.
			text: []string{"was changed on Tuesday, 6 May 2031 at 07:08 UTC.", "If you did not change it"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.mail.Kind, func(t *testing.T) {
			ts := startServer(t, serverOptions{mode: TLSNone})
			a, logs := newAccountMails(t, testMailer(t, ts.config(TLSNone, nil)), AccountMailsConfig{})
			runMails(t, a)
			m := tt.mail
			m.To, m.UserID, m.Username = "Alice Example <alice@example.org>", "u-1", "alice"
			if !a.Enqueue(m) {
				t.Fatalf("Enqueue = false:\n%s", logs)
			}
			flushMails(t, a)
			got := ts.messages()
			if len(got) != 1 {
				t.Fatalf("%d mails arrived, want 1", len(got))
			}
			if len(got[0].To) != 1 || got[0].To[0] != "alice@example.org" {
				t.Errorf("RCPT TO %q", got[0].To)
			}
			p := parseAlternative(t, got[0].Data)
			if p.subject != tt.subject {
				t.Errorf("subject %q, want %q", p.subject, tt.subject)
			}
			if to := p.header.Get("To"); !strings.Contains(to, "<alice@example.org>") {
				t.Errorf("To %q", to)
			}
			if from := p.header.Get("From"); !strings.Contains(from, "<noreply@id.example.com>") {
				t.Errorf("From %q", from)
			}
			if p.header.Get("Auto-Submitted") != "auto-generated" {
				t.Errorf("Auto-Submitted %q", p.header.Get("Auto-Submitted"))
			}
			// The link is longer than a quoted-printable line and has "=":
			// sent as it is, it would not survive the encoding.
			if raw := string(got[0].Data); strings.Contains(raw, testLink) {
				t.Errorf("link sent unencoded (parts %v); the test no longer checks the decoding", p.encodings)
			}
			if !strings.Contains(p.text, "\n    "+testLink+"\n") {
				t.Errorf("text part lacks the link on a line of its own:\n%s", p.text)
			}
			for _, w := range append(tt.text, "Hello alice,") {
				if !strings.Contains(p.text, w) {
					t.Errorf("text part lacks %q:\n%s", w, p.text)
				}
			}
			if links := hrefs(p.html); len(links) != 2 || links[0] != testLink || links[1] != testLink {
				t.Errorf("HTML links %q, want the link as button and as text", links)
			}
			if !strings.Contains(html.UnescapeString(p.html), ">"+testLink+"</a>") {
				t.Errorf("HTML part does not write the link out:\n%s", p.html)
			}
			if s := a.Stats(); s != (AccountMailStats{Sent: 1}) {
				t.Errorf("Stats = %+v, want 1 sent", s)
			}
		})
	}
}

// TestAccountMailTextOnly: a Sender that cannot send HTML still gets the
// plain text.
func TestAccountMailTextOnly(t *testing.T) {
	ts := startServer(t, serverOptions{mode: TLSNone})
	textOnly := struct{ Sender }{testMailer(t, ts.config(TLSNone, nil))}
	a, _ := newAccountMails(t, textOnly, AccountMailsConfig{})
	runMails(t, a)
	if !a.Enqueue(AccountMail{Kind: KindReset, To: "bob@example.org", Link: testLink, ExpiresIn: time.Hour}) {
		t.Fatal("Enqueue = false")
	}
	flushMails(t, a)
	got := ts.messages()
	if len(got) != 1 {
		t.Fatalf("%d mails, want 1", len(got))
	}
	p := parseMessage(t, got[0].Data) // fails unless text/plain alone
	if !strings.Contains(p.Body, "\n    "+testLink+"\n") {
		t.Errorf("body lacks the link:\n%s", p.Body)
	}
}

// closedPort is a port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// silentPort is a server that accepts connections and never says a word.
func silentPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().(*net.TCPAddr).Port
}

func TestEnqueueDoesNotWait(t *testing.T) {
	tests := []struct {
		name string
		port func(*testing.T) int
	}{
		{"server down", closedPort},
		{"server never answers", silentPort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMailer(t, Config{
				Host: "127.0.0.1", Port: tt.port(t), From: "noreply@id.example.com", TLS: TLSNone,
				Timeout: time.Second,
			})
			const size = 4
			a, logs := newAccountMails(t, m, AccountMailsConfig{
				QueueSize: size, ShutdownWait: 100 * time.Millisecond,
				RetryDelays: []time.Duration{time.Hour}, // no retry while the test runs
			})
			runMails(t, a)
			// Each Enqueue, even past a full queue, takes no time at all
			// next to the mailer's timeout.
			start := time.Now()
			queued := 0
			for i := range 2 * size {
				if a.Enqueue(AccountMail{Kind: KindVerifyEmail, To: fmt.Sprintf("user%d@example.org", i),
					Link: testLink, ExpiresIn: time.Hour}) {
					queued++
				}
			}
			if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
				t.Errorf("%d Enqueue calls took %s", 2*size, elapsed)
			}
			// Run has taken one to send, or is about to: the queue holds
			// size more at most.
			if queued < size || queued > size+1 {
				t.Errorf("%d mails queued, want %d or %d", queued, size, size+1)
			}
			if s := a.Stats(); s.Dropped != uint64(2*size-queued) || s.Sent != 0 {
				t.Errorf("Stats = %+v, want %d dropped", s, 2*size-queued)
			}
			if !strings.Contains(logs.String(), `msg="account mail dropped" reason="queue full" kind=verify_email`) {
				t.Errorf("drop not logged:\n%s", logs)
			}
		})
	}
}

// tryLater is RFC 5321's "service not available, closing", which a relay
// that is overloaded or restarting greets with.
const tryLater = "421 4.3.2 Service not available, try again later"

// flakyServer is the test SMTP server behind a front that greets the first
// fail connections with greeting and closes them, and passes the rest
// through.
func flakyServer(t *testing.T, fail int, greeting string) (*testServer, Config) {
	t.Helper()
	ts := startServer(t, serverOptions{mode: TLSNone})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if int(conns.Add(1)) <= fail {
				_, _ = io.WriteString(c, greeting+"\r\n")
				_ = c.Close()
				continue
			}
			go proxy(c, net.JoinHostPort(ts.host, fmt.Sprint(ts.port)))
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	cfg := ts.config(TLSNone, nil)
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	return ts, cfg
}

func proxy(c net.Conn, backend string) {
	defer c.Close()
	b, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer b.Close()
	go func() {
		_, _ = io.Copy(b, c)
		_ = b.Close()
	}()
	_, _ = io.Copy(c, b)
}

func TestAccountMailRetries(t *testing.T) {
	const to = "carol@example.org"
	tests := []struct {
		name string
		// fail is how many connections the server turns away, greeting
		// them with greeting (tryLater when ""); refuse makes it refuse the
		// recipient for good instead.
		fail     int
		greeting string
		refuse   bool
		want     AccountMailStats
		// log is what the log must say.
		log []string
	}{
		{name: "sent at once", want: AccountMailStats{Sent: 1}},
		{
			name: "sent on the first retry", fail: 1,
			want: AccountMailStats{Sent: 1, Retried: 1},
			log: []string{
				`level=WARN msg="account mail not sent, will retry" kind=reset user_id=u-9 to=c***@example.org attempt=1`, "421",
				`level=INFO msg="account mail sent after retrying" kind=reset user_id=u-9 to=c***@example.org attempt=2`,
			},
		},
		{
			name: "sent on the last retry", fail: 2,
			want: AccountMailStats{Sent: 1, Retried: 2},
			log:  []string{"attempt=3"},
		},
		{
			name: "out of retries", fail: 3,
			want: AccountMailStats{Failed: 1, Retried: 2},
			log:  []string{`level=ERROR msg="account mail not sent" kind=reset user_id=u-9 to=c***@example.org attempt=3`},
		},
		{
			name: "turned away for good, not retried", fail: 3, greeting: "554 5.3.2 No service here",
			want: AccountMailStats{Failed: 1},
			log:  []string{`level=ERROR msg="account mail not sent" kind=reset user_id=u-9 to=c***@example.org attempt=1`, "554", "permanent=true"},
		},
		{
			name: "recipient refused for good, not retried", refuse: true,
			want: AccountMailStats{Failed: 1},
			log:  []string{`level=ERROR msg="account mail not sent" kind=reset user_id=u-9 to=c***@example.org attempt=1`, "550", "permanent=true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ts *testServer
			var cfg Config
			if tt.refuse {
				ts = startServer(t, serverOptions{mode: TLSNone, refuse: to})
				cfg = ts.config(TLSNone, nil)
			} else {
				greeting := tt.greeting
				if greeting == "" {
					greeting = tryLater
				}
				ts, cfg = flakyServer(t, tt.fail, greeting)
			}
			a, logs := newAccountMails(t, testMailer(t, cfg), AccountMailsConfig{})
			runMails(t, a)
			if !a.Enqueue(AccountMail{Kind: KindReset, To: to, UserID: "u-9", Link: testLink, ExpiresIn: time.Hour}) {
				t.Fatal("Enqueue = false")
			}
			flushMails(t, a)
			if got := a.Stats(); got != tt.want {
				t.Errorf("Stats = %+v, want %+v", got, tt.want)
			}
			if n := len(ts.messages()); n != int(tt.want.Sent) {
				t.Errorf("%d mails arrived, want %d", n, tt.want.Sent)
			}
			out := logs.String()
			for _, w := range tt.log {
				if !strings.Contains(out, w) {
					t.Errorf("log lacks %q:\n%s", w, out)
				}
			}
			checkLogSecrets(t, out, to)
		})
	}
}

// checkLogSecrets asserts that the log shows neither a link (a
// credential) nor the recipient's full address.
func checkLogSecrets(t *testing.T, log, to string) {
	t.Helper()
	u, _ := url.Parse(testLink)
	for _, secret := range []string{testLink, u.Query().Get("token"), to} {
		if strings.Contains(log, secret) {
			t.Errorf("log reveals %q:\n%s", secret, log)
		}
	}
}

func TestAccountMailFlush(t *testing.T) {
	t.Run("waits for the queue", func(t *testing.T) {
		ts := startServer(t, serverOptions{mode: TLSNone})
		a, _ := newAccountMails(t, testMailer(t, ts.config(TLSNone, nil)), AccountMailsConfig{})
		for i := range 5 {
			if !a.Enqueue(AccountMail{Kind: KindActivation, To: fmt.Sprintf("new%d@example.org", i),
				Username: fmt.Sprintf("new%d", i), Link: testLink, ExpiresIn: 24 * time.Hour}) {
				t.Fatalf("Enqueue(%d) = false", i)
			}
		}
		if s := a.Stats(); s.Queued != 5 {
			t.Errorf("Stats = %+v before Run, want 5 queued", s)
		}
		runMails(t, a)
		flushMails(t, a)
		got := ts.messages()
		if len(got) != 5 {
			t.Fatalf("%d mails arrived by the end of Flush, want 5", len(got))
		}
		// In the order queued.
		for i, r := range got {
			if want := fmt.Sprintf("new%d@example.org", i); len(r.To) != 1 || r.To[0] != want {
				t.Errorf("mail %d to %q, want %s", i, r.To, want)
			}
		}
		if s := a.Stats(); s != (AccountMailStats{Sent: 5}) {
			t.Errorf("Stats = %+v, want 5 sent", s)
		}
	})
	t.Run("waits for retries, gives up with its context", func(t *testing.T) {
		_, cfg := flakyServer(t, 1, tryLater)
		a, _ := newAccountMails(t, testMailer(t, cfg), AccountMailsConfig{RetryDelays: []time.Duration{time.Hour}})
		runMails(t, a)
		a.Enqueue(AccountMail{Kind: KindReset, To: "dan@example.org", Link: testLink, ExpiresIn: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if err := a.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Flush = %v while a retry waits, want the deadline", err)
		}
		if s := a.Stats(); s.Queued != 1 || s.Retried != 1 {
			t.Errorf("Stats = %+v, want 1 queued for its retry", s)
		}
	})
}

func TestAccountMailShutdown(t *testing.T) {
	_, cfg := flakyServer(t, 1, tryLater)
	a, logs := newAccountMails(t, testMailer(t, cfg), AccountMailsConfig{RetryDelays: []time.Duration{time.Hour}})
	stop := runMails(t, a)
	a.Enqueue(AccountMail{Kind: KindReset, To: "erin@example.org", UserID: "u-e", Link: testLink, ExpiresIn: time.Hour})
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().Retried == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The retry an hour away gets its last try at shutdown.
	stop()
	if s := a.Stats(); s.Sent != 1 || s.Queued != 0 {
		t.Errorf("Stats = %+v after shutdown, want the retry sent", s)
	}
	if a.Enqueue(AccountMail{Kind: KindReset, To: "erin@example.org", UserID: "u-e2", Link: testLink, ExpiresIn: time.Hour}) {
		t.Error("Enqueue after Run ended = true, want false")
	}
	if !strings.Contains(logs.String(), `msg="account mail dropped" reason="sender stopped" kind=reset user_id=u-e2`) {
		t.Errorf("drop after shutdown not logged:\n%s", logs)
	}
}

func TestAccountMailOff(t *testing.T) {
	var off *Mailer // as wired when smtp.host is empty
	logs := &syncBuffer{}
	a, err := NewAccountMails(AccountMailsConfig{
		Mailer: off, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("NewAccountMails with mail off: %v", err)
	}
	stop := runMails(t, a)
	if a.Enqueue(AccountMail{Kind: KindReset, To: "frank@example.org", Link: testLink, ExpiresIn: time.Hour}) {
		t.Error("Enqueue = true with mail off")
	}
	if err := a.Flush(t.Context()); err != nil {
		t.Errorf("Flush = %v", err)
	}
	stop()
	if s := a.Stats(); s != (AccountMailStats{}) {
		t.Errorf("Stats = %+v, want zero", s)
	}
	if out := logs.String(); !strings.Contains(out, `level=DEBUG msg="account mail discarded: email is off" kind=reset`) {
		t.Errorf("discard not logged at debug:\n%s", out)
	}
	checkLogSecrets(t, logs.String(), "frank@example.org")
}

func TestEnqueueRefuses(t *testing.T) {
	good := AccountMail{Kind: KindVerifyEmail, To: "gina@example.org", UserID: "u-g", Link: testLink, ExpiresIn: time.Hour}
	with := func(f func(*AccountMail)) AccountMail {
		m := good
		f(&m)
		return m
	}
	tests := []struct {
		name string
		mail AccountMail
		want string // in the log line
	}{
		{"unknown kind", with(func(m *AccountMail) { m.Kind = "welcome" }), `unknown kind \"welcome\"`},
		{"no address", with(func(m *AccountMail) { m.To = "" }), "recipient is not an email address"},
		{"bad address", with(func(m *AccountMail) { m.To = "gina at example.org" }), "recipient is not an email address"},
		{"no link", with(func(m *AccountMail) { m.Link = "" }), "no link"},
		{"link elsewhere", with(func(m *AccountMail) { m.Link = "https://evil.example/verify?token=x" }), "link is not under the issuer URL"},
		{"link over plain http", with(func(m *AccountMail) { m.Link = "http://id.example.com/verify?token=x" }), "link is not under the issuer URL"},
		{"link with a user", with(func(m *AccountMail) { m.Link = "https://id.example.com@evil.example/verify" }), "link is not under the issuer URL"},
		{"no lifetime", with(func(m *AccountMail) { m.ExpiresIn = 0 }), "no link lifetime"},
	}
	ts := startServer(t, serverOptions{mode: TLSNone})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, logs := newAccountMails(t, testMailer(t, ts.config(TLSNone, nil)), AccountMailsConfig{})
			if a.Enqueue(tt.mail) {
				t.Fatal("Enqueue = true")
			}
			out := logs.String()
			if !strings.Contains(out, `level=ERROR msg="account mail refused"`) || !strings.Contains(out, tt.want) {
				t.Errorf("log lacks the refusal %q:\n%s", tt.want, out)
			}
			checkLogSecrets(t, out, good.To)
			if s := a.Stats(); s != (AccountMailStats{Rejected: 1}) {
				t.Errorf("Stats = %+v, want 1 rejected", s)
			}
		})
	}
	if n := len(ts.messages()); n != 0 {
		t.Errorf("%d mails sent", n)
	}
	t.Run("password change needs no link", func(t *testing.T) {
		a, logs := newAccountMails(t, testMailer(t, ts.config(TLSNone, nil)), AccountMailsConfig{})
		if !a.Enqueue(AccountMail{Kind: KindPasswordChanged, To: "gina@example.org"}) {
			t.Errorf("Enqueue = false:\n%s", logs)
		}
	})
}

func TestNewAccountMailsRefuses(t *testing.T) {
	ts := startServer(t, serverOptions{mode: TLSNone})
	m := testMailer(t, ts.config(TLSNone, nil))
	tests := []struct {
		name string
		cfg  AccountMailsConfig
		want string
	}{
		{"no issuer", AccountMailsConfig{Mailer: m}, `issuer "" is not an absolute http or https URL`},
		{"issuer without scheme", AccountMailsConfig{Mailer: m, Issuer: "id.example.com"}, "is not an absolute"},
		{"negative retry delay", AccountMailsConfig{Mailer: m, Issuer: testIssuer,
			RetryDelays: []time.Duration{-time.Second}}, "negative retry delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewAccountMails(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewAccountMails = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestUnderIssuer(t *testing.T) {
	tests := []struct {
		issuer, link string
		want         bool
	}{
		{"https://id.example.com", "https://id.example.com/verify?t=1", true},
		{"https://id.example.com", "https://ID.example.com/verify", true},
		{"https://id.example.com/", "https://id.example.com/", true},
		{"https://id.example.com", "https://id.example.com.evil.example/verify", false},
		{"https://id.example.com", "https://id.example.com:8443/verify", false},
		{"https://id.example.com", "http://id.example.com/verify", false},
		{"https://id.example.com", "//id.example.com/verify", false},
		{"https://id.example.com", "https://user@id.example.com/verify", false},
		{"https://example.com/realm", "https://example.com/realm/verify", true},
		{"https://example.com/realm/", "https://example.com/realm", true},
		{"https://example.com/realm", "https://example.com/realmevil/verify", false},
		{"https://example.com/realm", "https://example.com/realm/../other/verify", false},
		{"https://example.com/realm", "https://example.com/other", false},
		{"https://id.example.com", "javascript:alert(1)", false},
	}
	for _, tt := range tests {
		t.Run(tt.link, func(t *testing.T) {
			issuer, err := url.Parse(tt.issuer)
			if err != nil {
				t.Fatal(err)
			}
			if got := underIssuer(tt.link, issuer); got != tt.want {
				t.Errorf("underIssuer(%q, %q) = %v, want %v", tt.link, tt.issuer, got, tt.want)
			}
		})
	}
}

func TestMaskAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@example.org", "a***@example.org"},
		{"é@example.org", "é***@example.org"},
		{"a@b", "a***@b"},
		{"nobody", "***"},
		{"@example.org", "***"},
	}
	for _, tt := range tests {
		if got := maskAddress(tt.in); got != tt.want {
			t.Errorf("maskAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
