package notify

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSendOverSMTP(t *testing.T) {
	cert, roots := selfSigned(t)
	const user, pass = "mailer", "s3cret-Pa55word"
	tests := []struct {
		name   string
		server serverOptions
		// client adjusts the mailer's Config, made for the server's mode
		// and trusting its certificate.
		client   func(*Config)
		to       string
		wantErr  string // substring; "" when the mail must arrive
		wantTLS  bool
		wantUser string
	}{
		{name: "plain on loopback", server: serverOptions{mode: TLSNone}, to: "alice@example.org"},
		{name: "starttls", server: serverOptions{mode: TLSStartTLS, cert: cert}, to: "alice@example.org", wantTLS: true},
		{name: "implicit tls", server: serverOptions{mode: TLSImplicit, cert: cert}, to: "alice@example.org", wantTLS: true},
		{name: "auth plain over starttls",
			server: serverOptions{mode: TLSStartTLS, cert: cert, username: user, password: pass},
			client: func(c *Config) { c.Username, c.Password = user, pass },
			to:     "alice@example.org", wantTLS: true, wantUser: user},
		{name: "auth plain over implicit tls",
			server: serverOptions{mode: TLSImplicit, cert: cert, username: user, password: pass},
			client: func(c *Config) { c.Username, c.Password = user, pass },
			to:     "alice@example.org", wantTLS: true, wantUser: user},
		{name: "auth login when plain is not offered",
			server: serverOptions{mode: TLSStartTLS, cert: cert, username: user, password: pass, loginOnly: true},
			client: func(c *Config) { c.Username, c.Password = user, pass },
			to:     "alice@example.org", wantTLS: true, wantUser: user},
		{name: "auth plain in plain text to loopback",
			server: serverOptions{mode: TLSNone, username: user, password: pass},
			client: func(c *Config) { c.Username, c.Password = user, pass },
			to:     "alice@example.org", wantUser: user},
		{name: "wrong password",
			server:  serverOptions{mode: TLSStartTLS, cert: cert, username: user, password: pass},
			client:  func(c *Config) { c.Username, c.Password = user, "not-the-Pa55word" },
			to:      "alice@example.org",
			wantErr: "535"},
		{name: "server wants auth, none configured",
			server:  serverOptions{mode: TLSStartTLS, cert: cert, username: user, password: pass},
			to:      "alice@example.org",
			wantErr: "authenticate"},
		{name: "username but server offers no auth",
			server:  serverOptions{mode: TLSStartTLS, cert: cert},
			client:  func(c *Config) { c.Username, c.Password = user, pass },
			to:      "alice@example.org",
			wantErr: "offers no SMTP AUTH"},
		{name: "recipient refused",
			server:  serverOptions{mode: TLSStartTLS, cert: cert, refuse: "nobody@example.org"},
			to:      "nobody@example.org",
			wantErr: "550"},
		{name: "certificate not trusted",
			server:  serverOptions{mode: TLSStartTLS, cert: cert},
			client:  func(c *Config) { c.RootCAs = nil },
			to:      "alice@example.org",
			wantErr: "certificate"},
		{name: "implicit tls certificate not trusted",
			server:  serverOptions{mode: TLSImplicit, cert: cert},
			client:  func(c *Config) { c.RootCAs = nil },
			to:      "alice@example.org",
			wantErr: "certificate"},
		{name: "starttls wanted, server does not offer it",
			server:  serverOptions{mode: TLSNone},
			client:  func(c *Config) { c.TLS = TLSStartTLS },
			to:      "alice@example.org",
			wantErr: "STARTTLS"},
		{name: "implicit tls to a plain server",
			server:  serverOptions{mode: TLSNone},
			client:  func(c *Config) { c.TLS = TLSImplicit },
			to:      "alice@example.org",
			wantErr: "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.server)
			cfg := ts.config(tt.server.mode, roots)
			if tt.client != nil {
				tt.client(&cfg)
			}
			m, err := NewMailer(cfg)
			if err != nil {
				t.Fatalf("NewMailer: %v", err)
			}
			err = m.Send(t.Context(), Message{To: tt.to, Subject: "Hello", Text: "Body text.\n"})
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Send = nil, want an error containing %q", tt.wantErr)
				}
				t.Logf("Send: %v", err)
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Send = %v, want an error containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), m.Addr()) {
					t.Errorf("Send = %v, want the error to name the server %s", err, m.Addr())
				}
				if strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), cfg.Password) && cfg.Password != "" {
					t.Errorf("error reveals the password: %v", err)
				}
				if got := ts.messages(); len(got) != 0 {
					t.Errorf("server accepted %d messages, want none", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := ts.messages()
			if len(got) != 1 {
				t.Fatalf("server accepted %d messages, want 1", len(got))
			}
			r := got[0]
			if r.From != "noreply@id.example.com" || !slices.Equal(r.To, []string{tt.to}) {
				t.Errorf("envelope MAIL FROM %q RCPT TO %q, want noreply@id.example.com and %q", r.From, r.To, tt.to)
			}
			if r.TLS != tt.wantTLS {
				t.Errorf("encrypted = %v, want %v", r.TLS, tt.wantTLS)
			}
			if r.User != tt.wantUser {
				t.Errorf("authenticated as %q, want %q", r.User, tt.wantUser)
			}
			if p := parseMessage(t, r.Data); p.Subject != "Hello" || p.Body != "Body text.\n" {
				t.Errorf("message subject %q body %q", p.Subject, p.Body)
			}
		})
	}
}

func TestSendMessageHeaders(t *testing.T) {
	ts := startServer(t, serverOptions{mode: TLSNone})
	m, err := NewMailer(ts.config(TLSNone, nil))
	if err != nil {
		t.Fatal(err)
	}
	// Non-ASCII, a long line and a line that is only a dot: each needs
	// encoding or SMTP's dot-stuffing to arrive unchanged.
	text := "Grüße, Zoë.\n" + strings.Repeat("long line ", 30) + "\n.\nEnd.\n"
	msg := Message{To: "Zoë Example <zoe@example.org>", Subject: "Konto gesperrt – bitte lesen", Text: text}
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := ts.messages()
	if len(got) != 1 {
		t.Fatalf("server accepted %d messages, want 1", len(got))
	}
	p := parseMessage(t, got[0].Data)
	checks := []struct{ name, got, want string }{
		{"From", p.From, `"Portcullis" <noreply@id.example.com>`},
		{"Subject", p.Subject, msg.Subject},
		{"Date", p.Date, fixedClock().Format(time.RFC1123Z)},
		{"Auto-Submitted", p.AutoSubmitted, "auto-generated"},
		{"User-Agent and X-Mailer", p.UserAgent, ""},
		{"body", p.Body, text},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(p.To, "zoe@example.org") {
		t.Errorf("To = %q, want zoe@example.org", p.To)
	}
	if !strings.HasPrefix(p.MessageID, "<") || !strings.HasSuffix(p.MessageID, "@id.example.com>") {
		t.Errorf("Message-Id = %q, want <random@id.example.com>", p.MessageID)
	}
	if !slices.Equal(got[0].To, []string{"zoe@example.org"}) {
		t.Errorf("RCPT TO %q, want zoe@example.org", got[0].To)
	}
}

func TestSendRefusesBadMessages(t *testing.T) {
	ts := startServer(t, serverOptions{mode: TLSNone})
	m, err := NewMailer(ts.config(TLSNone, nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"no recipient", Message{Subject: "s", Text: "t"}, "recipient"},
		{"recipient not an address", Message{To: "alice", Subject: "s", Text: "t"}, "recipient"},
		{"two recipients", Message{To: "a@example.org, b@example.org", Subject: "s", Text: "t"}, "recipient"},
		{"subject with a newline", Message{To: "a@example.org", Subject: "s\r\nBcc: x@evil.example", Text: "t"}, "one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Send(t.Context(), tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Send = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if n := len(ts.messages()); n != 0 {
		t.Errorf("server accepted %d messages, want none", n)
	}
}

// TestSendGivesUp covers a server that is down or hangs: Send must return
// an error, and within its timeout or the caller's deadline, not hang a
// notice queue behind it.
func TestSendGivesUp(t *testing.T) {
	// A port nothing listens on: listen, note it, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	// A server that accepts connections and never says a word.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	silentPort := silent.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name    string
		port    int
		timeout time.Duration
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		wantIs  error // nil: any error
	}{
		{name: "nothing listening", port: closedPort, timeout: 5 * time.Second},
		{name: "server never greets, timeout", port: silentPort, timeout: 300 * time.Millisecond,
			wantIs: context.DeadlineExceeded},
		{name: "server never greets, caller's deadline", port: silentPort, timeout: time.Minute,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 300*time.Millisecond)
			},
			wantIs: context.DeadlineExceeded},
		{name: "server never greets, caller cancels", port: silentPort, timeout: time.Minute,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantIs: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMailer(Config{Host: "127.0.0.1", Port: tt.port, From: "noreply@id.example.com", TLS: TLSNone, Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			if tt.ctx != nil {
				ctx, cancel = tt.ctx(ctx)
			}
			defer cancel()
			start := time.Now()
			err = m.Send(ctx, Message{To: "alice@example.org", Subject: "s", Text: "t"})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("Send = nil, want an error")
			}
			t.Logf("Send: %v", err)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Send = %v, want it to wrap %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), m.Addr()) {
				t.Errorf("Send = %v, want the error to name %s", err, m.Addr())
			}
			// Generous: the point is that it does not wait for the
			// minute-long timeout or for ever.
			if elapsed > 10*time.Second {
				t.Errorf("Send took %s", elapsed)
			}
		})
	}
}

func TestNewMailerRefuses(t *testing.T) {
	ok := Config{Host: "smtp.example.com", Port: 587, From: "noreply@example.com", Timeout: time.Second}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring; "" when valid
	}{
		{"valid", func(*Config) {}, ""},
		{"tls none on loopback", func(c *Config) { c.Host, c.TLS = "127.0.0.1", TLSNone }, ""},
		{"tls none on localhost", func(c *Config) { c.Host, c.TLS = "localhost", TLSNone }, ""},
		{"tls none on ipv6 loopback", func(c *Config) { c.Host, c.TLS = "::1", TLSNone }, ""},
		{"implicit tls", func(c *Config) { c.Port, c.TLS = 465, TLSImplicit }, ""},
		{"no host", func(c *Config) { c.Host = "" }, "no SMTP host"},
		{"host with port", func(c *Config) { c.Host = "smtp.example.com:25" }, "without a port"},
		{"bracketed ipv6", func(c *Config) { c.Host = "[::1]" }, "without a port"},
		{"port zero", func(c *Config) { c.Port = 0 }, "1 to 65535"},
		{"port too big", func(c *Config) { c.Port = 65536 }, "1 to 65535"},
		{"no from", func(c *Config) { c.From = "" }, "not an email address"},
		{"from not an address", func(c *Config) { c.From = "portcullis" }, "not an email address"},
		{"tls none across a network", func(c *Config) { c.TLS = TLSNone }, "only allowed to a loopback host"},
		{"tls none to a private address", func(c *Config) { c.Host, c.TLS = "10.0.0.25", TLSNone }, "only allowed to a loopback host"},
		{"unknown tls mode", func(c *Config) { c.TLS = "ssl" }, "unknown TLS mode"},
		{"password without username", func(c *Config) { c.Password = "hunter2" }, "without a username"},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			_, err := NewMailer(c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewMailer = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewMailer = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}
