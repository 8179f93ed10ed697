package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
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
	// queue carries events recorded with RecordBatched to Run's writer.
	queue   chan *storage.AuditEvent
	running atomic.Bool
}

// Batching of high-volume events (see RecordBatched).
const (
	queueSize     = 8192
	maxBatch      = 500
	flushInterval = 50 * time.Millisecond
)

// NewRecorder returns a recorder writing to store and echoing each event to
// logger (nil discards), stamping events with now (nil means time.Now). It
// panics without a store, a wiring mistake better caught at start-up.
func NewRecorder(store Store, logger *slog.Logger, now func() time.Time) *Recorder {
	if store == nil {
		panic("audit.NewRecorder: store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{store: store, log: logger, now: now, queue: make(chan *storage.AuditEvent, queueSize)}
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
// writes at once like Record — events are never dropped. An event not yet
// written is lost if the process dies, which is why security decisions use
// Record, written in the transaction of the change they describe.
func (r *Recorder) RecordBatched(ctx context.Context, e Event) error {
	if r == nil {
		return nil
	}
	row, e, err := r.row(ctx, e)
	if err != nil {
		return err
	}
	if r.running.Load() {
		select {
		case r.queue <- row:
			r.log.LogAttrs(ctx, slog.LevelInfo, "audit event", logAttrs(row, e)...)
			return nil
		default:
		}
	}
	return r.store1(ctx, row, e)
}

// Run writes batched events until ctx ends, then writes what is left.
func (r *Recorder) Run(ctx context.Context) {
	r.running.Store(true)
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	batch := make([]*storage.AuditEvent, 0, maxBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		// Written even while shutting down: ctx may be done already.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.store.AppendAuditBatch(wctx, batch); err != nil {
			r.log.LogAttrs(ctx, slog.LevelError, "audit events not stored",
				slog.Int("count", len(batch)), slog.String("error", err.Error()))
		}
		batch = batch[:0]
	}
	for {
		select {
		case row := <-r.queue:
			batch = append(batch, row)
			if len(batch) == maxBatch {
				flush()
			}
		case <-tick.C:
			flush()
		case <-ctx.Done():
			r.running.Store(false)
			for {
				select {
				case row := <-r.queue:
					batch = append(batch, row)
					if len(batch) == maxBatch {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
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
