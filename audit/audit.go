package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

// Event types. Embedders may record their own; Query filters on any string.
const (
	TypeLoginSuccess       = "login.success"
	TypeLoginFailed        = "login.failed"
	TypeTokenIssued        = "token.issued"
	TypeTokenRefreshed     = "token.refreshed"
	TypeTokenReuseDetected = "token.reuse_detected"
	TypeTokenRevoked       = "token.revoked"
	TypeSessionStarted     = "session.started"
	TypeSessionEnded       = "session.ended"
	TypePolicyChanged      = "policy.changed"
	TypeKeyRotated         = "key.rotated"
	TypeClientCreated      = "client.created"
	TypeClientDeleted      = "client.deleted"
	TypeUserCreated        = "user.created"
	TypeUserDeleted        = "user.deleted"
	TypePasswordChanged    = "password.changed"
	// Brute-force defence: each with the user, device, IP and client of
	// the attempt that caused it, and the reason.
	TypeAccountLocked   = "account.locked"
	TypeAccountUnlocked = "account.unlocked"
	TypeDeviceLocked    = "device.locked"
	TypeAddressBlocked  = "ip.blocked"
	TypeCaptchaRequired = "captcha.required"
	// Account lifecycle.
	TypeUserRegistered         = "user.registered"
	TypeLinkSent               = "account_link.sent" // Reason: the link's kind
	TypeEmailVerified          = "email.verified"
	TypePasswordResetRequested = "password.reset_requested"
	TypePasswordChangeRequired = "password.change_required" // an administrator's mark
	TypeAccountExpiryChanged   = "account.expiry_changed"
	// Second factors.
	TypeMFAEnrolled         = "mfa.enrolled"
	TypeMFARemoved          = "mfa.removed"
	TypeMFAReset            = "mfa.reset" // every factor of the account, by an administrator
	TypeMFARecoveryCodes    = "mfa.recovery_codes_generated"
	TypeMFARecoveryCodeUsed = "mfa.recovery_code_used"
	// The device authorization grant (RFC 8628).
	TypeDeviceCodeIssued   = "device_code.issued"
	TypeDeviceCodeApproved = "device_code.approved"
	TypeDeviceCodeDenied   = "device_code.denied"
	TypeDeviceCodeRefused  = "device_code.user_code_refused" // a wrong, expired or throttled user code
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Page sizes of Query.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Event is one security event. Actor is who acted (a user id, or a client
// id for a machine); UserID is the user the event is about, ClientID the
// application. Reason is machine-readable ("bad_password", "locked"), for
// failures especially. ID is assigned when the event is stored; Record
// ignores it.
type Event struct {
	ID       int64          `json:"id"`
	Time     time.Time      `json:"time"` // RFC 3339, UTC
	Type     string         `json:"type"`
	Actor    string         `json:"actor"`
	UserID   string         `json:"user_id"`
	ClientID string         `json:"client_id"`
	IP       string         `json:"ip"`
	Device   string         `json:"device"`
	Outcome  string         `json:"outcome"`
	Reason   string         `json:"reason"`
	Details  map[string]any `json:"details,omitempty"`
}

// Store is what a Recorder needs of storage; *storage.Store satisfies it.
// A write that failed because the database could not answer must wrap
// storage.ErrUnavailable: Run retries those, and takes any other error as
// the database refusing the rows themselves (see Recorder.deliver).
type Store interface {
	AppendAudit(ctx context.Context, e *storage.AuditEvent) error
	AppendAuditBatch(ctx context.Context, events []*storage.AuditEvent) error
	ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error)
}

var _ Store = (*storage.Store)(nil)

// Recorder records events and queries them. It is safe for concurrent use.
type Recorder struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	retry Retry
	// queue carries events recorded with RecordBatched to Run's writer.
	queue chan *storage.AuditEvent
	// mu orders RecordBatched's enqueue against Run's shutdown: once Run
	// has set running false under the write lock, no event can still be
	// put in a queue nobody will read, so what Run drains is all there is
	// and the loss it reports is the whole loss.
	mu      sync.RWMutex
	running bool
	// held is the length of the batch Run has taken off the queue and not
	// yet written, so that Stats can count it as waiting too.
	held  atomic.Int64
	stats counters
}

// counters are the Recorder's statistics, atomics so that Stats can be read
// from a metrics scrape while Run and requests update them.
type counters struct {
	retries, queueFull, retriesExhausted, refused, shutdown atomic.Uint64
}

// Stats describes the batched writer since the Recorder was made. Events
// recorded with Record are not in it: their writer learns of a failure from
// the error.
type Stats struct {
	// Queued is the number of batched events waiting to be written: in the
	// queue or in the batch Run is writing (or retrying). It is at most the
	// queue capacity plus one batch.
	Queued int
	// Retries counts the times a write that failed for an outage was tried
	// again.
	Retries uint64
	// Dropped events, which were logged but will never be stored, by why:
	// DroppedQueueFull found the queue full (or Run not running) and failed
	// the direct write too; DroppedRetriesExhausted were retried for
	// Retry.GiveUpAfter without the database taking them; DroppedRefused
	// were refused by the database for what they hold, not for an outage;
	// DroppedShutdown were still unwritten when Run stopped and
	// Retry.ShutdownWait ran out.
	DroppedQueueFull        uint64
	DroppedRetriesExhausted uint64
	DroppedRefused          uint64
	DroppedShutdown         uint64
}

// Dropped is the total of the Dropped counts.
func (s Stats) Dropped() uint64 {
	return s.DroppedQueueFull + s.DroppedRetriesExhausted + s.DroppedRefused + s.DroppedShutdown
}

// Stats returns the batched writer's counts so far; a nil *Recorder has
// none.
func (r *Recorder) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	return Stats{
		Queued:                  len(r.queue) + int(r.held.Load()),
		Retries:                 r.stats.retries.Load(),
		DroppedQueueFull:        r.stats.queueFull.Load(),
		DroppedRetriesExhausted: r.stats.retriesExhausted.Load(),
		DroppedRefused:          r.stats.refused.Load(),
		DroppedShutdown:         r.stats.shutdown.Load(),
	}
}

// Reasons for dropping batched events, as logged and as the metric's
// reason label.
const (
	DropQueueFull        = "queue_full"
	DropRetriesExhausted = "retries_exhausted"
	DropRefused          = "refused"
	DropShutdown         = "shutdown"
)

// Batching of high-volume events (see RecordBatched).
const (
	// DefaultQueueSize is the capacity of the queue of batched events.
	DefaultQueueSize = 8192
	// MaxBatch is the most events one write stores.
	MaxBatch      = 500
	flushInterval = 50 * time.Millisecond
	// writeTimeout bounds one attempt, so that a database that accepts
	// connections but never answers is retried like one that refuses them.
	writeTimeout = 10 * time.Second
)

// Retry says how Run retries a batch the database could not take. Zero
// fields take the defaults given.
type Retry struct {
	// Backoff is the first wait after a failure (100 ms); each further
	// failure doubles it, up to MaxBackoff (5 s). Every wait is jittered to
	// between half and all of its value, so that instances that lost the
	// same database do not all come back at the same instant.
	Backoff, MaxBackoff time.Duration
	// GiveUpAfter bounds how long one batch is retried (2 min, more than
	// a restart or a managed failover takes), after which it is dropped
	// and the next one tried. Storage files every failure it does not
	// recognise under ErrUnavailable, so without a bound a batch the
	// database will never take would pass for an outage and hold the
	// queue for good.
	GiveUpAfter time.Duration
	// ShutdownWait bounds how long Run keeps writing, retries included,
	// once its context has ended (5 s).
	ShutdownWait time.Duration
	// Sleep waits d, or less if ctx ends first, and reports whether it
	// waited the whole d. Tests inject one that moves their clock instead.
	Sleep func(ctx context.Context, d time.Duration) bool
}

// Retry defaults.
const (
	DefaultBackoff      = 100 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
	DefaultGiveUpAfter  = 2 * time.Minute
	DefaultShutdownWait = 5 * time.Second
)

func (rt Retry) withDefaults() Retry {
	if rt.Backoff <= 0 {
		rt.Backoff = DefaultBackoff
	}
	if rt.MaxBackoff <= 0 {
		rt.MaxBackoff = DefaultMaxBackoff
	}
	rt.MaxBackoff = max(rt.MaxBackoff, rt.Backoff)
	if rt.GiveUpAfter <= 0 {
		rt.GiveUpAfter = DefaultGiveUpAfter
	}
	if rt.ShutdownWait <= 0 {
		rt.ShutdownWait = DefaultShutdownWait
	}
	if rt.Sleep == nil {
		rt.Sleep = sleep
	}
	return rt
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads d over [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d-d/2+1)
}

// Option configures a Recorder.
type Option func(*Recorder)

// WithRetry sets how Run retries failed writes.
func WithRetry(rt Retry) Option {
	return func(r *Recorder) { r.retry = rt.withDefaults() }
}

// WithQueueSize sets the capacity of the queue of batched events
// (DefaultQueueSize when n <= 0).
func WithQueueSize(n int) Option {
	return func(r *Recorder) {
		if n > 0 {
			r.queue = make(chan *storage.AuditEvent, n)
		}
	}
}

// NewRecorder returns a recorder writing to store and echoing each event to
// logger (nil discards), stamping events with now (nil means time.Now). It
// panics without a store, a wiring mistake better caught at start-up.
func NewRecorder(store Store, logger *slog.Logger, now func() time.Time, opts ...Option) *Recorder {
	if store == nil {
		panic("audit.NewRecorder: store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	r := &Recorder{store: store, log: logger, now: now, retry: Retry{}.withDefaults()}
	for _, o := range opts {
		o(r)
	}
	if r.queue == nil {
		r.queue = make(chan *storage.AuditEvent, DefaultQueueSize)
	}
	return r
}

// Record stores e, inside the transaction ctx carries if any, and logs it at
// info, so that operators watching logs see security events without querying
// the database. Time defaults to now. An event that cannot be stored is still
// logged, at error, so the record survives in the log at least; so is one
// whose transaction later rolls back, as the line cannot wait for the commit.
func (r *Recorder) Record(ctx context.Context, e Event) error {
	if r == nil {
		return nil
	}
	row, e, err := r.row(ctx, e)
	if err != nil {
		return err
	}
	return r.store1(ctx, row, e)
}

// RecordBatched is Record for high-volume events (every token issued): the
// event is stamped and logged now and written with others in one INSERT a
// few milliseconds later by Run, so recording it does not add a database
// write to the request. While Run is not running, or its queue is full, it
// writes at once like Record, which holds a burst back to the database's
// pace rather than dropping it; only when that write fails too is the event
// lost (counted in Stats.DroppedQueueFull). An event not yet written is lost
// if the process dies, which is why security decisions use Record, written
// in the transaction of the change they describe.
func (r *Recorder) RecordBatched(ctx context.Context, e Event) error {
	if r == nil {
		return nil
	}
	row, e, err := r.row(ctx, e)
	if err != nil {
		return err
	}
	if r.enqueue(row) {
		r.log.LogAttrs(ctx, slog.LevelInfo, "audit event", logAttrs(row, e)...)
		return nil
	}
	if err := r.store1(ctx, row, e); err != nil {
		r.stats.queueFull.Add(1)
		return err
	}
	return nil
}

// enqueue hands row to Run, reporting false when Run is not running or its
// queue is full.
func (r *Recorder) enqueue(row *storage.AuditEvent) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.running {
		return false
	}
	select {
	case r.queue <- row:
		return true
	default:
		return false
	}
}

// Run writes batched events until ctx ends, then writes what is left within
// Retry.ShutdownWait. A batch the database cannot take is kept and retried
// with backoff for up to Retry.GiveUpAfter while new events queue behind it,
// so memory stays bounded by the queue plus that batch. Events finally
// dropped are counted in Stats and logged at error, one line per loss with
// its count.
func (r *Recorder) Run(ctx context.Context) {
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	batch := make([]*storage.AuditEvent, 0, MaxBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		// Writes are not cancelled with ctx: a write cut off mid-commit
		// may have stored its rows, and retrying it would store them
		// twice. Waits are, so that shutdown starts at once.
		left, err := r.deliver(ctx, context.WithoutCancel(ctx), batch, r.retry.GiveUpAfter)
		if len(left) > 0 && ctx.Err() == nil {
			r.drop(ctx, DropRetriesExhausted, len(left), err)
			left = nil
		}
		// What is left when ctx ended is the shutdown's to write.
		batch = append(batch[:0], left...)
		r.held.Store(int64(len(batch)))
	}
	for {
		select {
		case row := <-r.queue:
			batch = append(batch, row)
			r.held.Add(1)
			if len(batch) >= MaxBatch {
				flush()
			}
		case <-tick.C:
			// Everything queued goes in this write, not only what was read
			// before the tick: after a stall (a retried batch) the backlog
			// leaves in full batches.
			batch = r.topUp(batch)
			flush()
		case <-ctx.Done():
			r.shutdown(ctx, batch)
			return
		}
	}
}

// shutdown stops the queue and writes batch and whatever is queued, within
// Retry.ShutdownWait; what it cannot write in that time it drops, counts
// and logs.
func (r *Recorder) shutdown(ctx context.Context, batch []*storage.AuditEvent) {
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	// From here RecordBatched writes directly: the queue only empties.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.retry.ShutdownWait)
	defer cancel()
	for {
		if batch = r.topUp(batch); len(batch) == 0 {
			return
		}
		left, err := r.deliver(wctx, wctx, batch, r.retry.ShutdownWait)
		if len(left) > 0 {
			// Out of time: one outage would sink every batch after this
			// one too, so they are counted as lost with it at once.
			n := len(left)
			for {
				if _, ok := r.take(); !ok {
					break
				}
				n++
			}
			if err == nil {
				err = wctx.Err()
			}
			r.drop(ctx, DropShutdown, n, err)
			r.held.Store(0)
			return
		}
		batch = batch[:0]
		r.held.Store(0)
	}
}

// topUp adds queued events to batch, without waiting, up to MaxBatch.
func (r *Recorder) topUp(batch []*storage.AuditEvent) []*storage.AuditEvent {
	for len(batch) < MaxBatch {
		row, ok := r.take()
		if !ok {
			break
		}
		batch = append(batch, row)
		r.held.Add(1)
	}
	return batch
}

// take returns a queued event without waiting.
func (r *Recorder) take() (*storage.AuditEvent, bool) {
	select {
	case row := <-r.queue:
		return row, true
	default:
		return nil, false
	}
}

// deliver writes batch with writeCtx, retrying with backoff what the
// database could not take for up to budget, waiting with ctx, and returns
// the events left unwritten (none when it wrote them all) with the last
// error.
//
// Only an outage is retried: an error wrapping storage.ErrUnavailable (or a
// timed-out attempt). Any other error means the database answered and
// refused the rows themselves, which no retry changes, so the rows are then
// written one at a time and only those refused are dropped: one bad event
// must neither sink the 499 beside it nor hold the queue. Storage files any
// failure it does not recognise under ErrUnavailable, so a row refused for
// a reason it does not name would be retried like an outage; the audit
// table has no constraint a cleaned row can break, and budget still ends
// such a retry, at the cost of its batch.
//
// budget is measured twice, as the sum of the waits and on the injected
// clock, and ends at whichever comes first: the first holds when the clock
// is frozen, the second when each attempt itself hangs until writeTimeout.
func (r *Recorder) deliver(ctx, writeCtx context.Context, batch []*storage.AuditEvent, budget time.Duration) ([]*storage.AuditEvent, error) {
	start := r.now()
	var waited time.Duration
	backoff := r.retry.Backoff
	for {
		err := r.write(writeCtx, batch)
		if err == nil {
			return nil, nil
		}
		if !transient(err) {
			if batch, err = r.writeEach(ctx, writeCtx, batch); len(batch) == 0 {
				return nil, nil
			}
		}
		if ctx.Err() != nil || waited >= budget || r.now().Sub(start) >= budget {
			return batch, err
		}
		d := jitter(backoff)
		if !r.retry.Sleep(ctx, d) {
			return batch, err
		}
		r.stats.retries.Add(1)
		waited += d
		backoff = min(2*backoff, r.retry.MaxBackoff)
	}
}

// writeEach writes batch one event at a time, dropping (counting, logging
// once) those the database refuses, until one fails for an outage: it
// returns that event and those after it, with the error.
func (r *Recorder) writeEach(ctx, writeCtx context.Context, batch []*storage.AuditEvent) ([]*storage.AuditEvent, error) {
	var (
		refused  int
		firstErr error
	)
	defer func() {
		if refused > 0 {
			r.drop(ctx, DropRefused, refused, firstErr)
		}
	}()
	for i := range batch {
		err := r.write(writeCtx, batch[i:i+1])
		switch {
		case err == nil:
		case transient(err):
			return batch[i:], err
		default:
			refused++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return nil, nil
}

func (r *Recorder) write(ctx context.Context, batch []*storage.AuditEvent) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := r.store.AppendAuditBatch(ctx, batch); err != nil {
		return fmt.Errorf("audit: write %d events: %w", len(batch), err)
	}
	return nil
}

func transient(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// drop counts n events lost for reason and says so once, at error: each
// event already has its own line in the log (at info, when it was queued),
// so the record survives there; this line says it is not in the database.
func (r *Recorder) drop(ctx context.Context, reason string, n int, err error) {
	var c *atomic.Uint64
	switch reason {
	case DropRetriesExhausted:
		c = &r.stats.retriesExhausted
	case DropRefused:
		c = &r.stats.refused
	case DropShutdown:
		c = &r.stats.shutdown
	default:
		c = &r.stats.queueFull
	}
	c.Add(uint64(n))
	attrs := []slog.Attr{slog.Int("count", n), slog.String("reason", reason)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	r.log.LogAttrs(ctx, slog.LevelError, "audit events dropped", attrs...)
}

// row validates and stamps e and builds its storage row. An event that
// names no address or device gets the request's (reqinfo), so every event
// recorded while serving a request says where it came from without each
// caller passing it; an explicit value, such as the address of the session
// an event is about, is kept.
func (r *Recorder) row(ctx context.Context, e Event) (*storage.AuditEvent, Event, error) {
	if e.Type == "" {
		return nil, e, errors.New("audit: record: event has no type")
	}
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if e.IP == "" || e.Device == "" {
		info := reqinfo.From(ctx)
		if e.IP == "" {
			e.IP = info.IPString()
		}
		if e.Device == "" {
			e.Device = info.DeviceID
		}
	}
	if ip, ok := normalizeIP(e.IP); ok {
		// One spelling per address, or filtering by ip misses events.
		e.IP = ip
	}
	row := &storage.AuditEvent{
		OccurredAt: e.Time, Type: e.Type, Actor: e.Actor, UserID: e.UserID, ClientID: e.ClientID,
		IP: e.IP, Device: e.Device, Outcome: e.Outcome, Reason: e.Reason,
	}
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return nil, e, fmt.Errorf("audit: record %s: encode details: %w", e.Type, err)
		}
		row.Details = string(b)
	}
	return row, e, nil
}

// store1 writes one event now, in ctx's transaction if any.
func (r *Recorder) store1(ctx context.Context, row *storage.AuditEvent, e Event) error {
	err := r.store.AppendAudit(ctx, row)
	attrs := logAttrs(row, e)
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
		r.log.LogAttrs(ctx, slog.LevelError, "audit event not stored", attrs...)
		return fmt.Errorf("audit: record %s: %w", e.Type, err)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "audit event", attrs...)
	return nil
}

// logAttrs renders an event for the log, leaving out empty fields. Details
// go as their stored JSON: a JSON log handler embeds the object as is, a
// text one quotes it, and neither shows Go's map syntax.
func logAttrs(row *storage.AuditEvent, e Event) []slog.Attr {
	attrs := make([]slog.Attr, 0, 11)
	if row.ID != 0 {
		attrs = append(attrs, slog.Int64("audit_id", row.ID))
	}
	attrs = append(attrs, slog.String("type", e.Type), slog.Time("occurred_at", row.OccurredAt))
	for _, f := range []struct{ key, value string }{
		{"actor", e.Actor}, {"user_id", e.UserID}, {"client_id", e.ClientID}, {"ip", e.IP},
		{"device", e.Device}, {"outcome", e.Outcome}, {"reason", e.Reason},
	} {
		if f.value != "" {
			attrs = append(attrs, slog.String(f.key, f.value))
		}
	}
	if row.Details != "" {
		attrs = append(attrs, slog.Any("details", json.RawMessage(row.Details)))
	}
	return attrs
}

// Query selects events for Recorder.Query. Empty fields do not filter. From
// is inclusive, To exclusive. Cursor is the next value of a previous page,
// Limit the page size (0 means DefaultLimit, at most MaxLimit).
type Query struct {
	Type, UserID, ClientID, IP string
	From, To                   time.Time
	Cursor                     string
	Limit                      int
}

// Query returns one page of events, newest first, and the cursor of the next
// page ("" on the last). A query that cannot be run as given (a malformed
// cursor, an out-of-range limit, an address that is not one, a window that
// ends before it starts) is a *fielderr.Error naming each field at fault.
func (r *Recorder) Query(ctx context.Context, q Query) (events []Event, next string, err error) {
	if r == nil {
		return nil, "", nil
	}
	var problems fielderr.Error
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		problems.Add("limit", "must be from 1 to %d", MaxLimit)
	}
	before, ok := decodeCursor(q.Cursor)
	if !ok {
		problems.Add("cursor", "malformed; pass the next value of a previous page unchanged")
	}
	ip := q.IP
	if ip != "" {
		if ip, ok = normalizeIP(ip); !ok {
			problems.Add("ip", "must be an IPv4 or IPv6 address")
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		problems.Add("to", "must be after from")
	}
	if err := problems.Err(); err != nil {
		return nil, "", fmt.Errorf("audit: query: %w", err)
	}

	// One row more than the page says whether there is another page
	// without a second query.
	rows, err := r.store.ListAudit(ctx, storage.AuditFilter{
		Type: q.Type, UserID: q.UserID, ClientID: q.ClientID, IP: ip,
		From: q.From, To: q.To, BeforeID: before, Limit: limit + 1,
	})
	if err != nil {
		return nil, "", fmt.Errorf("audit: query: %w", err)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].ID)
	}
	events = make([]Event, 0, len(rows))
	for _, row := range rows {
		e, err := fromRow(row)
		if err != nil {
			return nil, "", fmt.Errorf("audit: query: %w", err)
		}
		events = append(events, e)
	}
	return events, next, nil
}

func fromRow(row storage.AuditEvent) (Event, error) {
	e := Event{
		ID: row.ID, Time: row.OccurredAt.UTC(), Type: row.Type, Actor: row.Actor, UserID: row.UserID,
		ClientID: row.ClientID, IP: row.IP, Device: row.Device, Outcome: row.Outcome, Reason: row.Reason,
	}
	if row.Details != "" {
		// Numbers stay json.Number: a float64 would round large ids.
		dec := json.NewDecoder(bytes.NewReader([]byte(row.Details)))
		dec.UseNumber()
		if err := dec.Decode(&e.Details); err != nil {
			return Event{}, fmt.Errorf("decode details of event %d: %w", row.ID, err)
		}
	}
	return e, nil
}

// Cursors are the id of the last event of a page, base64url-encoded: opaque
// so that clients pass them back rather than build them, which leaves the
// encoding free to change.
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

// decodeCursor returns the id in c, 0 for no cursor, ok false when c is not
// one encodeCursor made.
func decodeCursor(c string) (id int64, ok bool) {
	if c == "" {
		return 0, true
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	id, err = strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 || encodeCursor(id) != c {
		return 0, false
	}
	return id, true
}

// normalizeIP spells an address the way the server's client IP resolution
// does: no zone, IPv4-mapped IPv6 as plain IPv4.
func normalizeIP(s string) (string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s, false
	}
	return a.WithZone("").Unmap().String(), true
}
