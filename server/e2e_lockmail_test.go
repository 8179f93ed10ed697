package server_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// mailCatcher is a real SMTP server on loopback that keeps what it is
// sent: the lock mails go through a whole SMTP conversation.
type mailCatcher struct {
	mu   sync.Mutex
	msgs []caught
	port int
}

type caught struct {
	from string
	to   []string
	data string
}

func startMailCatcher(t *testing.T) *mailCatcher {
	t.Helper()
	mc := &mailCatcher{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &catchSession{mc: mc}, nil }))
	s.Domain = "localhost"
	s.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc.port = l.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp: %v", err)
		}
	}()
	t.Cleanup(func() { _ = s.Close(); _ = l.Close(); <-done })
	return mc
}

func (mc *mailCatcher) caught() []caught {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return append([]caught(nil), mc.msgs...)
}

type catchSession struct {
	mc   *mailCatcher
	from string
	to   []string
}

func (s *catchSession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *catchSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *catchSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mc.mu.Lock()
	s.mc.msgs = append(s.mc.msgs, caught{from: s.from, to: s.to, data: string(b)})
	s.mc.mu.Unlock()
	return nil
}
func (s *catchSession) Reset()        { s.from, s.to = "", nil }
func (s *catchSession) Logout() error { return nil }

// An account lock mails its owner and the administrators, over SMTP.
func TestAccountLockSendsMail(t *testing.T) {
	mc := startMailCatcher(t)
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, func(c *config.Config) {
		c.SMTP.Host, c.SMTP.Port, c.SMTP.TLS = "127.0.0.1", mc.port, config.SMTPNoTLS
		c.SMTP.From, c.SMTP.AdminAddress = "Portcullis <noreply@example.com>", "security@example.com"
		c.Lockout.NotifyUser, c.Lockout.NotifyAdmin = true, true
		c.Lockout.Device.MaxFailures = 0
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.srv.Background(ctx) }()
	defer func() { cancel(); <-done }()

	f := fixtureOn(t, in, true)
	authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	br := f.browser()
	// dave typed an address he never proved: his lock mails the
	// administrators only.
	f.createUser(authn.UserSpec{Username: "dave", Password: alicePass, Email: "dave@example.com"})
	for _, who := range []string{"alice", "dave"} {
		for range 5 {
			br.postLogin(authURL, who, "Tr0ub4dor-guess")
		}
	}
	flush, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := in.srv.LockMail().Flush(flush); err != nil {
		t.Fatal(err)
	}
	byRcpt := map[string]string{}
	for _, m := range mc.caught() {
		for _, to := range m.to {
			byRcpt[to] = m.data
		}
	}
	user, admin := byRcpt["alice@example.com"], byRcpt["security@example.com"]
	if user == "" || admin == "" {
		t.Fatalf("mails went to %v, want alice@example.com and security@example.com", mc.caught())
	}
	if !strings.Contains(user, "locked") || strings.Contains(user, "Tr0ub4dor") {
		t.Errorf("the owner's mail:\n%s", user)
	}
	named := false
	for _, m := range mc.caught() {
		named = named || (slices.Contains(m.to, "security@example.com") && strings.Contains(m.data, f.userID))
	}
	if !named {
		t.Errorf("no administrators' mail names the locked user's id:\n%s", admin)
	}
	if _, ok := byRcpt["dave@example.com"]; ok {
		t.Error("a lock mailed an address its owner never verified")
	}
	adminMails := 0
	for _, m := range mc.caught() {
		if slices.Contains(m.to, "security@example.com") {
			adminMails++
		}
	}
	if adminMails != 2 {
		t.Errorf("%d mails to the administrators, want one per lock (2)", adminMails)
	}
}
