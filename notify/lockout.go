package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// Cause is why an account was locked.
type Cause string

// Causes of an account lock, the steps of the lockout cascade. The first
// two are spelled as policies.LockCauseFailures and LockCauseCascade, the
// causes the lockout facts and audit events store, so that one converts to
// the other.
const (
	// CauseWrongPasswords: too many wrong passwords for the account.
	CauseWrongPasswords Cause = "failures"
	// CauseLockedDevices: too many of the devices signing in to the
	// account were locked for wrong passwords.
	CauseLockedDevices Cause = "cascade"
	// CauseEscalated: the account was locked again too often
	// (lockout.max_temporary_locks), so this lock lasts until an
	// administrator lifts it.
	CauseEscalated Cause = "escalated"
)

// AccountLockNotice describes one account lock, for its mails.
type AccountLockNotice struct {
	UserID   string
	Username string
	// Email is the account owner's address; "" means no mail to the owner.
	Email string
	// LockedAt is when the lock began; zero means now.
	LockedAt time.Time
	// Until is when the lock ends; zero means when an administrator
	// unlocks the account.
	Until time.Time
	Cause Cause
	// IP, Device and Client (the application's client id) are those of
	// the attempt that locked the account; "" when unknown.
	IP     string
	Device string
	Client string
	// NotifyUser and NotifyAdmin say which mails the lockout policy wants.
	NotifyUser  bool
	NotifyAdmin bool
}

// Sender delivers one mail; *Mailer is one.
type Sender interface {
	Send(ctx context.Context, msg Message) error
}

// LockoutsConfig configures Lockouts.
type LockoutsConfig struct {
	// Mailer sends the mails; nil means email is off, and every notice is
	// discarded without a word (the lock itself stands regardless).
	Mailer Sender
	// Issuer is the server's issuer URL, the one address the mails name,
	// so that a reader can tell which service wrote and where to go.
	Issuer string
	// AdminAddress receives the administrators' mail; "" means none.
	AdminAddress string
	// Logger receives a line for every mail that fails and every notice
	// dropped; nil discards.
	Logger *slog.Logger
	// Now is the clock for a notice without LockedAt; nil means time.Now.
	Now func() time.Time
	// QueueSize is how many notices Notify may hold for Run
	// (DefaultQueueSize when 0 or less).
	QueueSize int
	// ShutdownWait bounds how long Run keeps sending what is queued once
	// its context has ended (DefaultShutdownWait when 0 or less).
	ShutdownWait time.Duration
}

// Queue defaults.
const (
	// DefaultQueueSize holds a burst far larger than accounts lock in
	// practice, yet bounds the memory an attack that locks accounts by
	// the thousand can take.
	DefaultQueueSize    = 256
	DefaultShutdownWait = 5 * time.Second
)

// Lockouts writes and sends the mails for account locks. Make one with
// NewLockouts; it is safe for concurrent use.
type Lockouts struct {
	cfg LockoutsConfig
	log *slog.Logger
	// q is the queue Notify adds to and Run sends from (sendQueue, shared
	// with AccountMails); lock notices are never retried.
	q *sendQueue[AccountLockNotice]

	sent, failed, dropped atomic.Uint64
}

// NewLockouts returns Lockouts for cfg.
func NewLockouts(cfg LockoutsConfig) *Lockouts {
	if m, ok := cfg.Mailer.(*Mailer); ok && m == nil {
		// A nil *Mailer (email off, wired through a variable) would make
		// a non-nil Sender that panics on the first lock.
		cfg.Mailer = nil
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.ShutdownWait <= 0 {
		cfg.ShutdownWait = DefaultShutdownWait
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Lockouts{cfg: cfg, log: logger}
	l.q = newSendQueue(cfg.QueueSize, cfg.ShutdownWait, nil, l.deliver, l.drop)
	return l
}

// LockoutStats counts what Lockouts did since it was made.
type LockoutStats struct {
	// Queued is the number of notices waiting for Run, or being sent.
	Queued int
	// Sent and Failed count mails (a notice may make two).
	Sent, Failed uint64
	// Dropped counts notices never sent because the queue was full or Run
	// had stopped, or because Run's ShutdownWait ran out.
	Dropped uint64
}

// Stats returns the counts so far, for metrics.
func (l *Lockouts) Stats() LockoutStats {
	return LockoutStats{Queued: l.q.queued(), Sent: l.sent.Load(), Failed: l.failed.Load(), Dropped: l.dropped.Load()}
}

// AccountLocked sends n's mails now: the owner's when n.NotifyUser and the
// account has an address, the administrators' when n.NotifyAdmin and
// AdminAddress is set. It tries both even if one fails, and returns what
// failed. It waits for the SMTP server; a sign-in uses Notify instead.
func (l *Lockouts) AccountLocked(ctx context.Context, n AccountLockNotice) error {
	if l.cfg.Mailer == nil {
		return nil
	}
	if n.LockedAt.IsZero() {
		n.LockedAt = l.cfg.Now()
	}
	var errs []error
	send := func(to string, msg Message) {
		if err := l.cfg.Mailer.Send(ctx, msg); err != nil {
			l.failed.Add(1)
			errs = append(errs, fmt.Errorf("lockout notice to the %s: %w", to, err))
			return
		}
		l.sent.Add(1)
	}
	if l.toUser(n) {
		send("user", l.userMessage(n))
	}
	if l.toAdmin(n) {
		send("administrators", l.adminMessage(n))
	}
	return errors.Join(errs...)
}

// toUser and toAdmin say whether n makes a mail for the owner and for the
// administrators.
func (l *Lockouts) toUser(n AccountLockNotice) bool {
	return n.NotifyUser && n.Email != ""
}

func (l *Lockouts) toAdmin(n AccountLockNotice) bool {
	return n.NotifyAdmin && l.cfg.AdminAddress != ""
}

// Notify queues n for Run and returns at once, so a sign-in never waits for
// mail. When the queue is full, or Run has stopped, n is dropped: logged at
// error and counted in Stats.Dropped. It reports false only then; with
// email off, or no mail for n to send, there is nothing to queue, and that
// is no loss.
func (l *Lockouts) Notify(n AccountLockNotice) bool {
	// A notice with no mail to send takes no room: an attack locking
	// accounts by the thousand under a policy that tells nobody must not
	// crowd out the notices that do tell someone.
	if l.cfg.Mailer == nil || !l.toUser(n) && !l.toAdmin(n) {
		return true
	}
	if n.LockedAt.IsZero() {
		// Stamped now, not when Run gets to it, which may be later.
		n.LockedAt = l.cfg.Now()
	}
	reason := l.q.offer(n)
	if reason == "" {
		return true
	}
	l.dropped.Add(1)
	l.log.LogAttrs(context.Background(), slog.LevelError, "lockout notice dropped",
		slog.String("reason", reason), slog.String("user_id", n.UserID), slog.Int("queue_size", l.q.capacity()))
	return false
}

// Run sends queued notices until ctx ends, then sends what is still queued
// within ShutdownWait and drops (logs and counts) the rest. A mail that
// fails is logged at error and counted; it is not retried: the lock is in
// the audit log whatever happens to its mail. Call Run once.
func (l *Lockouts) Run(ctx context.Context) { l.q.run(ctx) }

// deliver sends n's mails, logging what fails. It never asks for a retry.
func (l *Lockouts) deliver(ctx context.Context, n AccountLockNotice, _ attempt) (retry bool) {
	if err := l.AccountLocked(ctx, n); err != nil {
		// The error names the server and what it said, never the password
		// nor the recipient's address.
		l.log.LogAttrs(ctx, slog.LevelError, "lockout notice not sent",
			slog.String("user_id", n.UserID), slog.String("cause", string(n.Cause)), slog.String("error", err.Error()))
	}
	return false
}

// drop logs and counts n, given up on at shutdown.
func (l *Lockouts) drop(ctx context.Context, n AccountLockNotice, reason string) {
	l.dropped.Add(1)
	l.log.LogAttrs(ctx, slog.LevelError, "lockout notice dropped",
		slog.String("reason", reason), slog.String("user_id", n.UserID))
}

// Flush waits until every notice queued so far has been sent or has
// failed, or ctx ends. It is for tests and for a shutdown that wants the
// mail out before it goes on; it needs Run to be running.
func (l *Lockouts) Flush(ctx context.Context) error {
	if err := l.q.flush(ctx); err != nil {
		return fmt.Errorf("notify: flush lockout notices: %w", err)
	}
	return nil
}

// timeFormat is precise to the second, because a person told "14:20" who
// tries at 14:20:10 must not find the account still locked; UTC with its
// name, because the server does not know the reader's zone.
const timeFormat = "2006-01-02 15:04:05 MST"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// site is how the mails name the service: the issuer's host, which the
// reader knows from the sign-in page's address bar.
func (l *Lockouts) site() string { return siteName(l.cfg.Issuer) }

// siteName is the host of issuer, how every mail names the service.
func siteName(issuer string) string {
	if u, err := url.Parse(issuer); err == nil && u.Host != "" {
		return u.Host
	}
	return "Portcullis"
}

// userCause says why, to the account owner.
func userCause(c Cause) string {
	switch c {
	case CauseWrongPasswords:
		return "a wrong password was entered for it too many times"
	case CauseLockedDevices:
		return "wrong passwords were entered for it from too many devices"
	case CauseEscalated:
		return "it was locked for wrong passwords too many times in a row"
	default:
		return "of repeated failed sign-in attempts"
	}
}

// adminCause says why, to an administrator.
func adminCause(c Cause) string {
	switch c {
	case CauseWrongPasswords:
		return "too many wrong passwords"
	case CauseLockedDevices:
		return "too many locked devices"
	case CauseEscalated:
		return "escalated to permanent after repeated locks"
	default:
		return "unknown (" + clean(string(c), 40) + ")"
	}
}

func (l *Lockouts) userMessage(n AccountLockNotice) Message {
	site := l.site()
	var b strings.Builder
	fmt.Fprintf(&b, "Hello %s,\n\n", clean(n.Username, 100))
	fmt.Fprintf(&b, "Your account \"%s\" at %s was locked at %s, because %s.\n\n",
		clean(n.Username, 100), site, formatTime(n.LockedAt), userCause(n.Cause))
	if n.Until.IsZero() {
		b.WriteString("It stays locked until an administrator unlocks it.\n\n")
	} else {
		fmt.Fprintf(&b, "It stays locked until %s. After that you can sign in again.\n\n", formatTime(n.Until))
	}
	if n.IP != "" {
		fmt.Fprintf(&b, "The attempt that locked it came from the IP address %s.\n\n", clean(n.IP, 64))
	}
	b.WriteString("If this was you, there is nothing else to do: once the lock ends, sign in with your correct password.\n\n")
	b.WriteString("If it was not you, someone may be trying to guess your password. Once you can sign in again, " +
		"change your password to a new one that you use nowhere else, and tell your administrator about this message.\n\n")
	// The issuer on a line of its own, so that no mail program takes the
	// full stop after it for part of the address.
	fmt.Fprintf(&b, "The sign-in pages of %s are always at addresses that begin with\n\n    %s/\n\n", site, l.issuerURL())
	b.WriteString("Enter your password nowhere else. No one will ever ask you for it by email. " +
		"This message was sent automatically; replies are not read.\n")
	return Message{To: n.Email, Subject: "Your account at " + site + " was locked", Text: b.String()}
}

func (l *Lockouts) adminMessage(n AccountLockNotice) Message {
	unknown := func(s string, max int) string {
		if s == "" {
			return "(unknown)"
		}
		return clean(s, max)
	}
	until := "until an administrator unlocks it"
	if !n.Until.IsZero() {
		until = fmt.Sprintf("%s (for %s)", formatTime(n.Until), shortDuration(n.Until.Sub(n.LockedAt)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "An account at %s was locked.\n\n", l.site())
	fmt.Fprintf(&b, "Username:  %s\n", unknown(n.Username, 100))
	fmt.Fprintf(&b, "User id:   %s\n", unknown(n.UserID, 100))
	fmt.Fprintf(&b, "Cause:     %s\n", adminCause(n.Cause))
	fmt.Fprintf(&b, "Locked at: %s\n", formatTime(n.LockedAt))
	fmt.Fprintf(&b, "Until:     %s\n", until)
	fmt.Fprintf(&b, "IP:        %s\n", unknown(n.IP, 64))
	fmt.Fprintf(&b, "Device:    %s\n", unknown(n.Device, 100))
	fmt.Fprintf(&b, "Client:    %s\n", unknown(n.Client, 100))
	fmt.Fprintf(&b, "Owner notified by email: %s\n\n", yesNo(n.NotifyUser && n.Email != ""))
	b.WriteString("The IP and device are those of the attempt that locked the account. " +
		"The audit log (GET /admin/audit) has every attempt before it.\n")
	return Message{
		To:      l.cfg.AdminAddress,
		Subject: fmt.Sprintf("Account locked: %s (%s)", unknown(n.Username, 100), adminCause(n.Cause)),
		Text:    b.String(),
	}
}

// issuerURL is the issuer as written, or the site name when it is not a
// URL.
func (l *Lockouts) issuerURL() string {
	if u, err := url.Parse(l.cfg.Issuer); err == nil && u.Host != "" {
		return l.cfg.Issuer
	}
	return l.site()
}

// shortDuration is d to the second as a person writes it: "15m", "1h30m",
// not "15m0s".
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// clean makes s safe to put in a mail: control characters (a newline in a
// device id could forge lines of the mail) become U+FFFD, and anything
// beyond max runes is cut off with an ellipsis.
func clean(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
