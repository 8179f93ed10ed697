package notify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testIssuer = "https://id.example.com"
	adminAddr  = "security@id.example.com"
)

// newLockouts returns Lockouts sending through a test server's mailer, and
// the buffer its log goes to.
func newLockouts(t *testing.T, ts *testServer, cfg LockoutsConfig) (*Lockouts, *syncBuffer) {
	t.Helper()
	m, err := NewMailer(ts.config(TLSNone, nil))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg.Mailer = m
	cfg.Issuer = testIssuer
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if cfg.Now == nil {
		cfg.Now = fixedClock
	}
	return NewLockouts(cfg), logs
}

func TestAccountLockedMails(t *testing.T) {
	lockedAt := time.Date(2031, 5, 6, 7, 0, 0, 0, time.UTC)
	timed := AccountLockNotice{
		UserID: "u-42", Username: "alice", Email: "alice@example.org",
		LockedAt: lockedAt, Until: lockedAt.Add(15 * time.Minute), Cause: CauseWrongPasswords,
		IP: "203.0.113.7", Device: "dev-9f3a", Client: "shop-web", NotifyUser: true, NotifyAdmin: true,
	}
	with := func(f func(*AccountLockNotice)) AccountLockNotice {
		n := timed
		f(&n)
		return n
	}
	tests := []struct {
		name   string
		notice AccountLockNotice
		admin  string // LockoutsConfig.AdminAddress
		// user and admin are what each mail's body must contain, in
		// order; nil means that mail must not be sent.
		user, adminMail []string
	}{
		{
			name: "timed lock, both told", notice: timed, admin: adminAddr,
			user: []string{
				"Hello alice,",
				`Your account "alice" at id.example.com was locked at 2031-05-06 07:00:00 UTC, because a wrong password was entered for it too many times.`,
				"It stays locked until 2031-05-06 07:15:00 UTC. After that you can sign in again.",
				"from the IP address 203.0.113.7",
				"If it was not you, someone may be trying to guess your password.",
				"change your password",
				"tell your administrator",
				"The sign-in pages of id.example.com are always at addresses that begin with\n\n    https://id.example.com/\n",
				"Enter your password nowhere else.",
			},
			adminMail: []string{
				"Username:  alice", "User id:   u-42", "Cause:     too many wrong passwords",
				"Locked at: 2031-05-06 07:00:00 UTC", "Until:     2031-05-06 07:15:00 UTC (for 15m)",
				"IP:        203.0.113.7", "Device:    dev-9f3a", "Client:    shop-web", "Owner notified by email: yes",
			},
		},
		{
			name:      "user without an email address",
			notice:    with(func(n *AccountLockNotice) { n.Email = "" }),
			admin:     adminAddr,
			adminMail: []string{"Username:  alice", "Owner notified by email: no"},
		},
		{
			name:      "policy does not notify the user",
			notice:    with(func(n *AccountLockNotice) { n.NotifyUser = false }),
			admin:     adminAddr,
			adminMail: []string{"Username:  alice", "Owner notified by email: no"},
		},
		{
			name:   "no admin address",
			notice: timed,
			user:   []string{"It stays locked until 2031-05-06 07:15:00 UTC."},
		},
		{
			name:   "policy does not notify the admin",
			notice: with(func(n *AccountLockNotice) { n.NotifyAdmin = false }),
			admin:  adminAddr,
			user:   []string{"It stays locked until 2031-05-06 07:15:00 UTC."},
		},
		{
			name: "escalated to permanent",
			notice: with(func(n *AccountLockNotice) {
				n.Until, n.Cause = time.Time{}, CauseEscalated
			}),
			admin: adminAddr,
			user: []string{
				"because it was locked for wrong passwords too many times in a row.",
				"It stays locked until an administrator unlocks it.",
			},
			adminMail: []string{
				"Cause:     escalated to permanent after repeated locks",
				"Until:     until an administrator unlocks it",
			},
		},
		{
			name:      "too many locked devices",
			notice:    with(func(n *AccountLockNotice) { n.Cause = CauseLockedDevices }),
			admin:     adminAddr,
			user:      []string{"because wrong passwords were entered for it from too many devices."},
			adminMail: []string{"Cause:     too many locked devices"},
		},
		{
			name: "unknown IP and device, lock time from the clock",
			notice: with(func(n *AccountLockNotice) {
				n.IP, n.Device, n.LockedAt, n.Until = "", "", time.Time{}, fixedClock().Add(time.Hour)
			}),
			admin:     adminAddr,
			user:      []string{"was locked at 2031-05-06 07:08:09 UTC", "It stays locked until 2031-05-06 08:08:09 UTC."},
			adminMail: []string{"Locked at: 2031-05-06 07:08:09 UTC", "(for 1h)", "IP:        (unknown)", "Device:    (unknown)"},
		},
		{
			// The device id comes from a request: a newline in it must not
			// make lines of the mail, nor a link pass for one of ours.
			name: "device id with forged lines",
			notice: with(func(n *AccountLockNotice) {
				n.Device = "x\r\nReset your password at https://evil.example/reset"
			}),
			admin:     adminAddr,
			adminMail: []string{"Device:    x\uFFFD\uFFFDReset your password at https://evil.example/reset"},
			user:      []string{"Hello alice,"},
		},
		{
			name:   "nobody to tell",
			notice: with(func(n *AccountLockNotice) { n.NotifyUser, n.NotifyAdmin = false, false }),
			admin:  adminAddr,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, serverOptions{mode: TLSNone})
			l, _ := newLockouts(t, ts, LockoutsConfig{AdminAddress: tt.admin})
			if err := l.AccountLocked(t.Context(), tt.notice); err != nil {
				t.Fatalf("AccountLocked: %v", err)
			}
			byRcpt := map[string]parsed{}
			for _, r := range ts.messages() {
				if len(r.To) != 1 {
					t.Fatalf("RCPT TO %q, want one recipient per mail", r.To)
				}
				if r.From != "noreply@id.example.com" {
					t.Errorf("MAIL FROM %q", r.From)
				}
				byRcpt[r.To[0]] = parseMessage(t, r.Data)
			}
			want := 0
			if tt.user != nil {
				want++
				checkMail(t, "user", byRcpt, tt.notice.Email, "Your account at id.example.com was locked", tt.user)
				if m, ok := byRcpt[tt.notice.Email]; ok && tt.notice.Device != "" && strings.Contains(m.Body, tt.notice.Device) {
					t.Errorf("user mail names the device id:\n%s", m.Body)
				}
			}
			if tt.adminMail != nil {
				want++
				subject := fmt.Sprintf("Account locked: alice (%s)", adminCause(tt.notice.Cause))
				checkMail(t, "admin", byRcpt, adminAddr, subject, tt.adminMail)
			}
			if len(byRcpt) != want {
				t.Errorf("%d mails sent (to %v), want %d", len(byRcpt), slices.Sorted(maps.Keys(byRcpt)), want)
			}
			if got := l.Stats(); got.Sent != uint64(want) || got.Failed != 0 {
				t.Errorf("Stats = %+v, want %d sent", got, want)
			}
		})
	}
}

// checkMail asserts that the mail to rcpt has subject and contains each of
// want, in order, and links to nothing but the issuer.
func checkMail(t *testing.T, which string, byRcpt map[string]parsed, rcpt, subject string, want []string) {
	t.Helper()
	m, ok := byRcpt[rcpt]
	if !ok {
		t.Errorf("no %s mail to %s", which, rcpt)
		return
	}
	if m.Subject != subject {
		t.Errorf("%s mail subject %q, want %q", which, m.Subject, subject)
	}
	if !strings.Contains(m.To, rcpt) {
		t.Errorf("%s mail To %q, want %s", which, m.To, rcpt)
	}
	if !strings.Contains(m.From, "noreply@id.example.com") {
		t.Errorf("%s mail From %q", which, m.From)
	}
	rest := m.Body
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%s mail lacks (or has out of order) %q:\n%s", which, w, m.Body)
			continue
		}
		rest = rest[i+len(w):]
	}
	// Every line but the device's (cleaned, labelled, admin only) is ours:
	// a link in them may only be the issuer.
	for _, line := range strings.Split(m.Body, "\n") {
		if strings.HasPrefix(line, "Device:") {
			continue
		}
		for _, link := range regexp.MustCompile(`https?://[^\s]*[^\s.,]`).FindAllString(line, -1) {
			if link != testIssuer && link != testIssuer+"/" {
				t.Errorf("%s mail links to %q, not the issuer", which, link)
			}
		}
	}
	for _, secret := range []string{"password:", "Password:"} {
		if strings.Contains(m.Body, secret) {
			t.Errorf("%s mail looks like it carries a password:\n%s", which, m.Body)
		}
	}
}

func TestAccountLockedFailures(t *testing.T) {
	n := AccountLockNotice{
		UserID: "u-1", Username: "bob", Email: "bob@example.org", Cause: CauseWrongPasswords,
		Until: fixedClock().Add(time.Minute), NotifyUser: true, NotifyAdmin: true,
	}
	t.Run("refused user address, admin still told", func(t *testing.T) {
		ts := startServer(t, serverOptions{mode: TLSNone, refuse: "bob@example.org"})
		l, _ := newLockouts(t, ts, LockoutsConfig{AdminAddress: adminAddr})
		err := l.AccountLocked(t.Context(), n)
		if err == nil || !strings.Contains(err.Error(), "lockout notice to the user") || !strings.Contains(err.Error(), "550") {
			t.Fatalf("AccountLocked = %v, want the user's mail refused with 550", err)
		}
		got := ts.messages()
		if len(got) != 1 || !slices.Equal(got[0].To, []string{adminAddr}) {
			t.Fatalf("got %d mails, want only the admin's", len(got))
		}
		if s := l.Stats(); s.Sent != 1 || s.Failed != 1 {
			t.Errorf("Stats = %+v, want 1 sent and 1 failed", s)
		}
	})
	t.Run("mail off", func(t *testing.T) {
		var off *Mailer // as wired when smtp.host is empty
		l := NewLockouts(LockoutsConfig{Mailer: off, AdminAddress: adminAddr, Issuer: testIssuer})
		if err := l.AccountLocked(t.Context(), n); err != nil {
			t.Errorf("AccountLocked = %v, want nil with mail off", err)
		}
		if !l.Notify(n) {
			t.Error("Notify = false with mail off; nothing was lost")
		}
		if err := l.Flush(t.Context()); err != nil {
			t.Errorf("Flush = %v", err)
		}
		if s := l.Stats(); s != (LockoutStats{}) {
			t.Errorf("Stats = %+v, want zero", s)
		}
	})
}

func TestNotifyQueue(t *testing.T) {
	notice := func(i int) AccountLockNotice {
		return AccountLockNotice{
			UserID: fmt.Sprintf("u-%d", i), Username: fmt.Sprintf("user%d", i), Cause: CauseWrongPasswords,
			Until: fixedClock().Add(time.Minute), NotifyAdmin: true,
		}
	}
	// usernames lists the users the admin mails received were about, in
	// the order the server got them.
	usernames := func(t *testing.T, ts *testServer) []string {
		t.Helper()
		var names []string
		for _, r := range ts.messages() {
			subject := parseMessage(t, r.Data).Subject
			name, _, _ := strings.Cut(strings.TrimPrefix(subject, "Account locked: "), " ")
			names = append(names, name)
		}
		return names
	}
	start := func(t *testing.T, l *Lockouts) (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Run(ctx)
		}()
		return func() {
			cancel()
			<-done
		}
	}
	flush := func(t *testing.T, l *Lockouts) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name      string
		queueSize int
		// before are notified before Run starts, after while it runs.
		before, after int
		wantNames     []string
		wantDropped   uint64
	}{
		{name: "sent in order", queueSize: 8, before: 3, after: 3,
			wantNames: []string{"user0", "user1", "user2", "user3", "user4", "user5"}},
		{name: "queue full drops and counts", queueSize: 2, before: 4,
			wantNames: []string{"user0", "user1"}, wantDropped: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, serverOptions{mode: TLSNone})
			l, logs := newLockouts(t, ts, LockoutsConfig{AdminAddress: adminAddr, QueueSize: tt.queueSize})
			for i := range tt.before {
				queued := l.Notify(notice(i))
				if wantQueued := i < tt.queueSize; queued != wantQueued {
					t.Errorf("Notify(user%d) = %v, want %v", i, queued, wantQueued)
				}
			}
			if got := l.Stats(); got.Queued != min(tt.before, tt.queueSize) || got.Dropped != tt.wantDropped {
				t.Errorf("Stats before Run = %+v, want %d queued, %d dropped", got, min(tt.before, tt.queueSize), tt.wantDropped)
			}
			stop := start(t, l)
			defer stop()
			flush(t, l)
			for i := tt.before; i < tt.before+tt.after; i++ {
				if !l.Notify(notice(i)) {
					t.Errorf("Notify(user%d) = false while Run runs", i)
				}
				// One at a time, so the order is Notify's, not a race.
				flush(t, l)
			}
			if got := usernames(t, ts); !slices.Equal(got, tt.wantNames) {
				t.Errorf("admin mails about %v, want %v", got, tt.wantNames)
			}
			got := l.Stats()
			if want := (LockoutStats{Sent: uint64(len(tt.wantNames)), Dropped: tt.wantDropped}); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
			if dropped := strings.Count(logs.String(), `msg="lockout notice dropped" reason="queue full"`); uint64(dropped) != tt.wantDropped {
				t.Errorf("%d drop lines logged, want %d:\n%s", dropped, tt.wantDropped, logs)
			}
		})
	}
}

// TestNotifyNothingToSend: a notice that makes no mail takes no room in the
// queue, so a flood of them cannot crowd out one that does.
func TestNotifyNothingToSend(t *testing.T) {
	ts := startServer(t, serverOptions{mode: TLSNone})
	l, _ := newLockouts(t, ts, LockoutsConfig{QueueSize: 1}) // no admin address
	for _, n := range []AccountLockNotice{
		{UserID: "u-1", Email: "a@example.org"},                                      // policy tells nobody
		{UserID: "u-2", NotifyUser: true},                                            // no address
		{UserID: "u-3", NotifyAdmin: true},                                           // no admin address
		{UserID: "u-4", Email: "d@example.org", NotifyUser: true},                    // takes the one place
		{UserID: "u-5", Email: "e@example.org", NotifyUser: true, NotifyAdmin: true}, // finds it taken
	} {
		want := n.UserID != "u-5"
		if got := l.Notify(n); got != want {
			t.Errorf("Notify(%s) = %v, want %v", n.UserID, got, want)
		}
	}
	if s := l.Stats(); s.Queued != 1 || s.Dropped != 1 {
		t.Errorf("Stats = %+v, want 1 queued, 1 dropped", s)
	}
}

func TestRunShutdown(t *testing.T) {
	ts := startServer(t, serverOptions{mode: TLSNone})
	l, logs := newLockouts(t, ts, LockoutsConfig{AdminAddress: adminAddr})
	for _, name := range []string{"carol", "dave"} {
		l.Notify(AccountLockNotice{UserID: "id-" + name, Username: name, Cause: CauseWrongPasswords, NotifyAdmin: true})
	}
	// Run with its context already ended still sends what was queued.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l.Run(ctx)
	if got := len(ts.messages()); got != 2 {
		t.Fatalf("%d mails sent on shutdown, want 2", got)
	}
	if l.Notify(AccountLockNotice{UserID: "id-erin", Username: "erin", NotifyAdmin: true}) {
		t.Error("Notify after Run ended = true, want false")
	}
	if s := l.Stats(); s.Sent != 2 || s.Dropped != 1 || s.Queued != 0 {
		t.Errorf("Stats = %+v, want 2 sent, 1 dropped", s)
	}
	if !strings.Contains(logs.String(), `reason="sender stopped" user_id=id-erin`) {
		t.Errorf("drop after shutdown not logged:\n%s", logs)
	}
}

func TestRunLogsFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	const password = "Pa55-never-logged"
	m, err := NewMailer(Config{
		Host: "127.0.0.1", Port: port, From: "noreply@id.example.com", TLS: TLSNone,
		Username: "mailer", Password: password, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	lo := NewLockouts(LockoutsConfig{
		Mailer: m, Issuer: testIssuer, AdminAddress: adminAddr, Now: fixedClock,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		lo.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	lo.Notify(AccountLockNotice{UserID: "u-7", Username: "frank", Email: "frank@example.org",
		Cause: CauseLockedDevices, NotifyUser: true, NotifyAdmin: true})
	fctx, fcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer fcancel()
	if err := lo.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if s := lo.Stats(); s.Failed != 2 || s.Sent != 0 {
		t.Errorf("Stats = %+v, want 2 failed", s)
	}
	out := logs.String()
	for _, want := range []string{`level=ERROR msg="lockout notice not sent" user_id=u-7 cause=cascade`, "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{password, "frank@example.org"} {
		if strings.Contains(out, secret) {
			t.Errorf("log reveals %q:\n%s", secret, out)
		}
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{15 * time.Minute, "15m"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{24*time.Hour + 30*time.Second, "24h0m30s"},
		{45 * time.Second, "45s"},
		{1500 * time.Millisecond, "2s"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.in); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"dev-1", 10, "dev-1"},
		{"a\nb\rc\td", 10, "a\uFFFDb\uFFFDc\uFFFDd"},
		{"bidi\u202Eevil", 20, "bidi\uFFFDevil"},
		{"bad\xffutf8", 20, "bad\uFFFDutf8"},
		{"abcdefgh", 4, "abcd…"},
		{"Zoë", 3, "Zoë"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := clean(tt.in, tt.max); got != tt.want {
				t.Errorf("clean(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that Run's goroutine can write while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
