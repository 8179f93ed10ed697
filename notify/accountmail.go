package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/textproto"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"

	"github.com/portcullis/portcullis/templates"
)

// Kinds of account mail: the templates package's mail kinds, which write
// them (templates/mail/).
const (
	// KindVerifyEmail asks the owner to confirm their address, after they
	// register or when an unconfirmed account signs in.
	KindVerifyEmail = templates.MailVerifyEmail
	// KindActivation carries the link to choose a password for an account
	// an administrator made.
	KindActivation = templates.MailActivation
	// KindReset carries the link to choose a new password after someone
	// asked for a reset.
	KindReset = templates.MailReset
	// KindPasswordChanged is the security notice after a password change;
	// its link, optional, is one to choose a new password.
	KindPasswordChanged = templates.MailPasswordChanged
)

// AccountMail is one mail about an account's life: its address, its
// password.
type AccountMail struct {
	// Kind is one of the Kind constants.
	Kind string
	// To is the recipient, an RFC 5322 address.
	To string
	// UserID names the account in logs, which must not carry the
	// address; "" when unknown.
	UserID string
	// Username is the account's name as the mail shows it; "" leaves it
	// out.
	Username string
	// Link is what the mail asks its reader to open. It is a credential:
	// it is never logged. It must lie under the issuer's URL, so that a
	// mail of ours never sends its reader elsewhere. Required for every
	// kind but KindPasswordChanged.
	Link string
	// ExpiresIn is the link's lifetime, which the mail states.
	ExpiresIn time.Duration
	// When is when it happened (the password change); zero means when
	// Enqueue is called.
	When time.Time
}

// HTMLSender is a Sender that can also send a mail with an HTML part;
// *Mailer is one. AccountMails sends through it when its Mailer is one,
// and sends the plain text alone through Send otherwise.
type HTMLSender interface {
	Sender
	SendHTML(ctx context.Context, msg Message, html string) error
}

// AccountMailsConfig configures AccountMails.
type AccountMailsConfig struct {
	// Mailer sends the mails; nil means email is off, and Enqueue
	// discards every mail.
	Mailer Sender
	// Templates writes the mails; nil means NewAccountMails parses the
	// embedded ones itself.
	Templates *templates.MailRenderer
	// Issuer is the server's issuer URL, absolute; the mails name it, and
	// every link must lie under it. Required with a Mailer.
	Issuer string
	// Logger receives a line for every mail refused, dropped, retried or
	// failed; nil discards.
	Logger *slog.Logger
	// Now is the clock for a mail without When; nil means time.Now.
	Now func() time.Time
	// QueueSize is how many mails may wait, for Run or for a retry
	// (DefaultQueueSize when 0 or less).
	QueueSize int
	// ShutdownWait bounds how long Run keeps sending what is queued once
	// its context has ended (DefaultShutdownWait when 0 or less).
	ShutdownWait time.Duration
	// RetryDelays are the waits before each retry of a mail whose sending
	// failed for a reason that may pass (the server down, slow or saying
	// "try later"): one retry per entry. A mail the server refuses for
	// good (a 5xx reply) is not retried. nil means 10s, 1m and 5m; an
	// empty, non-nil slice means no retries.
	RetryDelays []time.Duration
}

// AccountMails writes and sends account mails in the background, so that
// the request that causes one never waits for the SMTP server nor fails
// because of it. Make one with NewAccountMails; it is safe for concurrent
// use.
type AccountMails struct {
	cfg    AccountMailsConfig
	issuer *url.URL
	log    *slog.Logger
	q      *sendQueue[accountJob]

	sent, failed, retried, dropped, rejected atomic.Uint64
}

// accountJob is one rendered mail waiting to be sent.
type accountJob struct {
	kind, userID string
	msg          Message
	html         string
	// to is the address as logs may show it; link is kept so that it can
	// be cut out of any error that might echo it.
	to, link string
}

// NewAccountMails returns AccountMails for cfg. With a Mailer, cfg needs an
// absolute Issuer.
func NewAccountMails(cfg AccountMailsConfig) (*AccountMails, error) {
	if m, ok := cfg.Mailer.(*Mailer); ok && m == nil {
		// A nil *Mailer (email off, wired through a variable) would make
		// a non-nil Sender that panics on the first mail.
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
	if cfg.RetryDelays == nil {
		// A person is waiting for the mail: the first retry comes soon,
		// and the last while the link is still likely to be wanted.
		cfg.RetryDelays = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}
	}
	a := &AccountMails{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Mailer != nil {
		var problems []string
		u, err := url.Parse(cfg.Issuer)
		if err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" || u.User != nil {
			problems = append(problems, fmt.Sprintf("issuer %q is not an absolute http or https URL", cfg.Issuer))
		}
		for _, d := range cfg.RetryDelays {
			if d < 0 {
				problems = append(problems, fmt.Sprintf("negative retry delay %s", d))
				break
			}
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("notify: account mails: %s", strings.Join(problems, "; "))
		}
		a.issuer = u
		if a.cfg.Templates == nil {
			t, err := templates.NewMailRenderer()
			if err != nil {
				return nil, fmt.Errorf("notify: account mails: %w", err)
			}
			a.cfg.Templates = t
		}
	}
	a.q = newSendQueue(cfg.QueueSize, cfg.ShutdownWait, cfg.RetryDelays, a.deliver, a.drop)
	return a, nil
}

// AccountMailStats counts what AccountMails did since it was made.
type AccountMailStats struct {
	// Queued is the number of mails waiting for Run or for a retry, or
	// being sent.
	Queued int
	// Sent counts mails the server accepted, Failed those given up on
	// (refused for good, or out of retries), Retried the retries made.
	Sent, Failed, Retried uint64
	// Dropped counts mails never sent because the queue was full or Run
	// had stopped, or because Run's ShutdownWait ran out.
	Dropped uint64
	// Rejected counts mails Enqueue refused as malformed: an unknown kind,
	// a bad address, a link not under the issuer, a failed rendering.
	Rejected uint64
}

// Stats returns the counts so far, for metrics.
func (a *AccountMails) Stats() AccountMailStats {
	return AccountMailStats{
		Queued: a.q.queued(), Sent: a.sent.Load(), Failed: a.failed.Load(), Retried: a.retried.Load(),
		Dropped: a.dropped.Load(), Rejected: a.rejected.Load(),
	}
}

// Enqueue renders m and queues it for Run, returning at once: it never
// waits for the SMTP server, so the request that sends a mail is never
// held up or failed by it. It reports whether m was queued; when not, it
// has logged why: email is off (at debug level: that is configuration,
// not a fault), m is malformed, the queue is full or Run has stopped.
func (a *AccountMails) Enqueue(m AccountMail) bool {
	ctx := context.Background()
	if a.cfg.Mailer == nil {
		a.log.LogAttrs(ctx, slog.LevelDebug, "account mail discarded: email is off",
			slog.String("kind", m.Kind), slog.String("user_id", m.UserID))
		return false
	}
	if m.When.IsZero() {
		// Stamped now, not when Run gets to it, which may be later.
		m.When = a.cfg.Now()
	}
	job, err := a.prepare(m)
	if err != nil {
		a.rejected.Add(1)
		a.log.LogAttrs(ctx, slog.LevelError, "account mail refused",
			slog.String("kind", m.Kind), slog.String("user_id", m.UserID),
			slog.String("error", redact(err.Error(), m.Link, m.To)))
		return false
	}
	if reason := a.q.offer(job); reason != "" {
		a.dropped.Add(1)
		a.log.LogAttrs(ctx, slog.LevelError, "account mail dropped",
			slog.String("reason", reason), slog.String("kind", job.kind), slog.String("user_id", job.userID),
			slog.String("to", job.to), slog.Int("queue_size", a.q.capacity()))
		return false
	}
	return true
}

// prepare checks m and renders it. Its errors never carry the link.
func (a *AccountMails) prepare(m AccountMail) (accountJob, error) {
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return accountJob{}, errors.New("recipient is not an email address")
	}
	if m.Link != "" && !underIssuer(m.Link, a.issuer) {
		return accountJob{}, errors.New("link is not under the issuer URL")
	}
	// Render checks the rest: the kind, a link where one is needed, its
	// lifetime.
	subject, text, html, err := a.cfg.Templates.Render(m.Kind, templates.MailData{
		Site:      siteName(a.cfg.Issuer),
		Issuer:    a.cfg.Issuer,
		Username:  clean(m.Username, 100),
		Link:      m.Link,
		ExpiresIn: m.ExpiresIn,
		When:      m.When,
	})
	if err != nil {
		return accountJob{}, err
	}
	return accountJob{
		kind: m.Kind, userID: m.UserID,
		msg:  Message{To: m.To, Subject: subject, Text: text},
		html: html, to: maskAddress(to.Address), link: m.Link,
	}, nil
}

// underIssuer reports whether link is an address of the issuer's: same
// scheme and host, and a path at or below the issuer's. It compares the
// cleaned path, so "/realm/../elsewhere" is not below "/realm".
func underIssuer(link string, issuer *url.URL) bool {
	u, err := url.Parse(link)
	if err != nil || u.Opaque != "" || u.User != nil ||
		!strings.EqualFold(u.Scheme, issuer.Scheme) || !strings.EqualFold(u.Host, issuer.Host) {
		return false
	}
	base := strings.TrimSuffix(issuer.Path, "/")
	p := path.Clean("/" + u.Path)
	return base == "" || p == base || strings.HasPrefix(p, base+"/")
}

// Run sends queued mails until ctx ends, retrying those that failed for a
// reason that may pass, after RetryDelays. Then it gives what is still
// queued, retries included, one last try within ShutdownWait, and drops
// (logs and counts) the rest. Call Run once, even with email off.
func (a *AccountMails) Run(ctx context.Context) { a.q.run(ctx) }

// Flush waits until every mail queued so far has been sent or given up
// on, retries included, or ctx ends. It is for tests and for a shutdown
// that wants the mail out before it goes on; it needs Run to be running.
func (a *AccountMails) Flush(ctx context.Context) error {
	if err := a.q.flush(ctx); err != nil {
		return fmt.Errorf("notify: flush account mails: %w", err)
	}
	return nil
}

// deliver makes one attempt at j, and says whether to retry it.
func (a *AccountMails) deliver(ctx context.Context, j accountJob, try attempt) (retry bool) {
	var err error
	if hs, ok := a.cfg.Mailer.(HTMLSender); ok {
		err = hs.SendHTML(ctx, j.msg, j.html)
	} else {
		err = a.cfg.Mailer.Send(ctx, j.msg)
	}
	attrs := []slog.Attr{
		slog.String("kind", j.kind), slog.String("user_id", j.userID), slog.String("to", j.to),
		slog.Int("attempt", try.n),
	}
	if err == nil {
		a.sent.Add(1)
		if try.n > 1 {
			a.log.LogAttrs(ctx, slog.LevelInfo, "account mail sent after retrying", attrs...)
		}
		return false
	}
	// The error names the server and what it said; the link and the
	// address are cut out in case it echoes them.
	attrs = append(attrs, slog.String("error", redact(err.Error(), j.link, j.msg.To)))
	perm := permanent(err)
	if !perm && !try.last {
		a.retried.Add(1)
		a.log.LogAttrs(ctx, slog.LevelWarn, "account mail not sent, will retry", attrs...)
		return true
	}
	if perm {
		attrs = append(attrs, slog.Bool("permanent", true))
	}
	a.failed.Add(1)
	a.log.LogAttrs(ctx, slog.LevelError, "account mail not sent", attrs...)
	return false
}

// drop logs and counts j, given up on at shutdown.
func (a *AccountMails) drop(ctx context.Context, j accountJob, reason string) {
	a.dropped.Add(1)
	a.log.LogAttrs(ctx, slog.LevelError, "account mail dropped",
		slog.String("reason", reason), slog.String("kind", j.kind), slog.String("user_id", j.userID), slog.String("to", j.to))
}

// permanent reports whether err is the SMTP server refusing for good (a
// 5xx reply), which no retry will change. Anything else (a connection
// refused or cut, a timeout, a 4xx "try later") may pass.
func permanent(err error) bool {
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode() >= 500 && se.ErrorCode() < 600
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 500 && te.Code < 600
	}
	return false
}

// maskAddress is addr as logs show it: the first character of the local
// part and the domain, enough to tell a typo in the domain from a full
// mailbox without keeping who it was.
func maskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(addr)
	return string(r) + "***" + addr[at:]
}

// redact cuts link and the recipient's address out of s, an error about
// a mail to them: the link is a credential, the address personal data,
// and go-mail's errors name the recipients they failed for.
func redact(s, link, to string) string {
	if link != "" {
		s = strings.ReplaceAll(s, link, "[link]")
	}
	if a, err := mail.ParseAddress(to); err == nil {
		s = strings.ReplaceAll(s, a.Address, maskAddress(a.Address))
	}
	return s
}

// sendQueue is the machinery Lockouts and AccountMails share: a bounded
// queue that callers add to without waiting, and one sender (run) that
// delivers from it in order, retries what deliver asks it to after the
// given delays, and at shutdown sends what is left within a time limit.
// pending counts what is queued, being sent or waiting for a retry, and
// is what flush waits on.
type sendQueue[T any] struct {
	items        chan queued[T]
	shutdownWait time.Duration
	retryDelays  []time.Duration
	// deliver makes one attempt at an item and says whether to retry it;
	// it is not asked to when try.last. drop is told of an item given up
	// on at shutdown.
	deliver func(ctx context.Context, item T, try attempt) (retry bool)
	drop    func(ctx context.Context, item T, reason string)

	// mu orders offer against the end of run, so that nothing is queued
	// after run's last look at the queue; waiting counts retries held by
	// run, which take room in the queue as the items channel's do.
	mu      sync.Mutex
	stopped bool
	pending int
	waiting int
	idle    chan struct{}
}

// queued is an item with the attempts made at it so far, and, while it
// waits for a retry, when that is due.
type queued[T any] struct {
	item  T
	tries int
	due   time.Time
}

// attempt is which try deliver is making: n counts from 1, and last says
// that no retry follows whatever happens.
type attempt struct {
	n    int
	last bool
}

func newSendQueue[T any](size int, shutdownWait time.Duration, retryDelays []time.Duration,
	deliver func(context.Context, T, attempt) bool, drop func(context.Context, T, string)) *sendQueue[T] {
	idle := make(chan struct{})
	close(idle)
	return &sendQueue[T]{
		items: make(chan queued[T], size), shutdownWait: shutdownWait, retryDelays: retryDelays,
		deliver: deliver, drop: drop, idle: idle,
	}
}

func (q *sendQueue[T]) capacity() int { return cap(q.items) }

func (q *sendQueue[T]) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending
}

// offer queues item without waiting. It returns "" when item is queued,
// and else why not: "queue full" or "sender stopped".
func (q *sendQueue[T]) offer(item T) (refused string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return "sender stopped"
	}
	if len(q.items)+q.waiting >= cap(q.items) {
		return "queue full"
	}
	// Cannot block: only offer sends, under mu, and there is room.
	q.items <- queued[T]{item: item}
	if q.pending == 0 {
		q.idle = make(chan struct{})
	}
	q.pending++
	return ""
}

// run delivers until ctx ends, then shuts down.
func (q *sendQueue[T]) run(ctx context.Context) {
	// later holds the items waiting for a retry; only this goroutine
	// touches it.
	var later []queued[T]
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// A mail under way is not cut off by shutdown: it may already be half
	// delivered, and Mailer's timeout still bounds it.
	sendCtx := context.WithoutCancel(ctx)
	for {
		var due <-chan time.Time
		if len(later) > 0 {
			next := later[0].due
			for _, e := range later[1:] {
				if e.due.Before(next) {
					next = e.due
				}
			}
			timer.Reset(time.Until(next))
			due = timer.C
		}
		select {
		case e := <-q.items:
			later = q.try(sendCtx, e, later, false)
		case <-due:
			now := time.Now()
			var still []queued[T]
			for _, e := range later {
				if e.due.After(now) {
					still = append(still, e)
					continue
				}
				q.unwait()
				still = q.try(sendCtx, e, still, false)
			}
			later = still
		case <-ctx.Done():
			q.shutdown(ctx, later)
			return
		}
	}
}

// try makes one attempt at e and, when deliver asks for a retry, adds e to
// later for it.
func (q *sendQueue[T]) try(ctx context.Context, e queued[T], later []queued[T], final bool) []queued[T] {
	e.tries++
	last := final || e.tries > len(q.retryDelays)
	if q.deliver(ctx, e.item, attempt{n: e.tries, last: last}) && !last {
		e.due = time.Now().Add(q.retryDelays[e.tries-1])
		q.mu.Lock()
		q.waiting++
		q.mu.Unlock()
		return append(later, e)
	}
	q.done()
	return later
}

// shutdown stops offer from queueing and gives what is left, retries
// first as the oldest, a last try within shutdownWait.
func (q *sendQueue[T]) shutdown(ctx context.Context, later []queued[T]) {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.shutdownWait)
	defer cancel()
	last := func(e queued[T]) {
		if wctx.Err() != nil {
			q.drop(ctx, e.item, "shutdown wait ran out")
			q.done()
			return
		}
		q.try(wctx, e, nil, true)
	}
	for _, e := range later {
		q.unwait()
		last(e)
	}
	for {
		select {
		case e := <-q.items:
			last(e)
		default:
			return
		}
	}
}

func (q *sendQueue[T]) unwait() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting--
}

// done marks one queued item handled.
func (q *sendQueue[T]) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending--
	if q.pending == 0 {
		close(q.idle)
	}
}

// flush waits until nothing is pending, or ctx ends.
func (q *sendQueue[T]) flush(ctx context.Context) error {
	q.mu.Lock()
	idle := q.idle
	q.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
