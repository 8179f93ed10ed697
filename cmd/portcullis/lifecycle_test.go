package main

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
)

// smtpSink is an SMTP server on loopback keeping the data of every mail.
type smtpSink struct {
	mu    sync.Mutex
	mails []string
	port  int
}

type sinkSession struct{ sink *smtpSink }

func (s sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	s.sink.mails = append(s.sink.mails, string(b))
	s.sink.mu.Unlock()
	return nil
}
func (s sinkSession) Reset()        {}
func (s sinkSession) Logout() error { return nil }

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	sink := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{sink}, nil }))
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.port = l.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return sink
}

func (s *smtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mails)
}

func TestUsersExpireAndResetPassword(t *testing.T) {
	sink := startSMTPSink(t)
	p := newInProcess(t)
	p.env = []string{"PORTCULLIS_SMTP_HOST=127.0.0.1", "PORTCULLIS_SMTP_PORT=" + strconv.Itoa(sink.port),
		"PORTCULLIS_SMTP_TLS=none", "PORTCULLIS_SMTP_FROM=Portcullis <noreply@example.com>"}
	out := p.mustRun("correct horse\n", "users", "create", "--username", "alice", "--email", "alice@example.com", "--password-stdin")
	var u struct {
		ID        string  `json:"id"`
		ExpiresAt *string `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out), &u); err != nil || u.ID == "" {
		t.Fatalf("users create printed %s (%v)", out, err)
	}
	p.mustRun("correct horse\n", "users", "create", "--username", "bob", "--password-stdin")

	steps := []struct {
		name  string
		args  []string
		want  []string
		fail  bool
		mails int // in the sink after the step
	}{
		{name: "neither flag", args: []string{"users", "expire", "alice"}, fail: true, want: []string{"exactly one of --at and --clear"}},
		{name: "both flags", args: []string{"users", "expire", "alice", "--at", "2030-01-01T00:00:00Z", "--clear"}, fail: true,
			want: []string{"exactly one of --at and --clear"}},
		{name: "bad date", args: []string{"users", "expire", "alice", "--at", "next week"}, fail: true,
			want: []string{`--at "next week": must be an RFC 3339 time`}},
		{name: "unknown user", args: []string{"users", "expire", "carol", "--clear"}, fail: true,
			want: []string{`no user has the id or username "carol"`}},
		{name: "future date", args: []string{"users", "expire", "alice", "--at", "2099-01-02T03:04:05+01:00"},
			want: []string{"user alice (" + u.ID + ") expires at 2099-01-02T02:04:05Z"}},
		{name: "past date", args: []string{"users", "expire", u.ID, "--at", "2001-01-01T00:00:00Z"},
			want: []string{"expires at 2001-01-01T00:00:00Z", "the account has expired: 0 session(s) ended, 0 token(s) revoked"}},
		{name: "cleared", args: []string{"users", "expire", "alice", "--clear"}, want: []string{"expiry date cleared; the account never expires"}},
		{name: "reset without link", args: []string{"users", "reset-password", "alice", "--no-link"},
			want: []string{"must change their password at the next sign-in", "no reset link was mailed: --no-link"}},
		{name: "reset, no address", args: []string{"users", "reset-password", "bob"},
			want: []string{"no reset link was mailed: the account has no email address"}},
		{name: "reset with link", args: []string{"users", "reset-password", "alice"},
			want: []string{"a password reset link was mailed to alice@example.com"}, mails: 1},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := p.run("", s.args...)
			out := r.stdout
			if s.fail {
				if r.code == 0 {
					t.Fatalf("exit 0, want a failure; stdout %s", r.stdout)
				}
				out = r.stderr
			} else if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, w := range s.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if n := sink.count(); n != s.mails {
				t.Errorf("%d mails sent, want %d", n, s.mails)
			}
		})
	}
	sink.mu.Lock()
	mail := strings.Join(sink.mails, "")
	sink.mu.Unlock()
	// Quoted-printable or not, the link's path and parameter name show.
	if !strings.Contains(mail, "reset-password?token") {
		t.Errorf("the mail holds no reset link:\n%s", mail)
	}

	store := p.store()
	got, err := store.User(t.Context(), u.ID)
	if err != nil || got.ExpiresAt != nil || !got.PasswordMustChange {
		t.Errorf("alice = %+v (%v), want no expiry date and the password marked", got, err)
	}
	for typ, want := range map[string]int{audit.TypeAccountExpiryChanged: 3, audit.TypePasswordChangeRequired: 3, audit.TypeLinkSent: 1} {
		rows, err := store.ListAudit(t.Context(), storage.AuditFilter{Type: typ, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != want {
			t.Errorf("%d %s events, want %d", len(rows), typ, want)
		}
		for _, e := range rows {
			if !strings.HasPrefix(e.Actor, "cli:") {
				t.Errorf("%s event by %q", typ, e.Actor)
			}
		}
	}
}
