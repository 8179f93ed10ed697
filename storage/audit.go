package storage

import (
	"context"
	"strings"
	"time"
)

// AuditEvent is one row of the audit trail. Details holds a JSON object as
// text ("" for none); the audit package owns its encoding, storage only keeps
// it.
type AuditEvent struct {
	ID         int64     `gorm:"column:id;primaryKey;autoIncrement"`
	OccurredAt time.Time `gorm:"column:occurred_at"`
	Type       string    `gorm:"column:type"`
	Actor      string    `gorm:"column:actor"`
	UserID     string    `gorm:"column:user_id"`
	ClientID   string    `gorm:"column:client_id"`
	IP         string    `gorm:"column:ip"`
	Device     string    `gorm:"column:device"`
	Outcome    string    `gorm:"column:outcome"`
	Reason     string    `gorm:"column:reason"`
	Details    string    `gorm:"column:details"`
}

// TableName pins the table name.
func (AuditEvent) TableName() string { return "audit_events" }

// AuditFilter selects audit events. Empty strings and zero times do not
// filter. From is inclusive and To exclusive, so consecutive windows neither
// overlap nor leave gaps. BeforeID > 0, the id of the last event of a page,
// returns the events that follow it in newest-first order; an id that is not
// in the table (deleted since) yields nothing, which is right, as retention
// deleted whatever followed it too. Limit <= 0 means no limit.
type AuditFilter struct {
	Type, UserID, ClientID, IP string
	From, To                   time.Time
	BeforeID                   int64
	Limit                      int
}

// auditDeleteBatch bounds the rows one retention statement deletes, so that
// pruning millions of rows never holds SQLite's single write lock (which
// every login waits on) for long, nor grows one huge PostgreSQL transaction.
const auditDeleteBatch = 10000

// AppendAudit inserts e, inside the transaction carried by ctx when there is
// one, so an event can commit or roll back with the change it records. The
// database assigns e.ID (any value given is ignored: PostgreSQL refuses
// explicit identity values). OccurredAt defaults to the store clock and is
// kept in UTC to the microsecond, the precision both backends share, so e
// holds exactly what a later read returns.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEvent) error {
	s.prepareAudit(e)
	return mapErr("append audit event", s.conn(ctx).Create(e).Error)
}

// AppendAuditBatch stores several events with one multi-row INSERT.
func (s *Store) AppendAuditBatch(ctx context.Context, events []*AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		s.prepareAudit(e)
	}
	return mapErr("append audit events", s.conn(ctx).CreateInBatches(events, 500).Error)
}

func (s *Store) prepareAudit(e *AuditEvent) {
	e.ID = 0
	if e.OccurredAt.IsZero() {
		e.OccurredAt = s.now()
	}
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
	// Events quote what clients sent (user agents, attempted usernames), and
	// PostgreSQL refuses invalid UTF-8 and NUL in TEXT: a hostile byte must
	// not make the record of an attack fail to write.
	for _, f := range []*string{&e.Type, &e.Actor, &e.UserID, &e.ClientID, &e.IP, &e.Device, &e.Outcome, &e.Reason, &e.Details} {
		*f = cleanText(*f)
	}
}

// ListAudit returns the events matching f, newest first: by occurred_at,
// then by id for events stamped the same instant. Ordering by time rather
// than by id alone lets a time window be read from its end in an index (see
// the migration) instead of past every newer row; it also puts an event
// stamped before it was stored (a slow instance) where it belongs.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	q := s.conn(ctx).Model(&AuditEvent{})
	order := "occurred_at DESC, id DESC"
	// On PostgreSQL the first filter given, in order of how few rows a
	// value usually has, drives the query: it is written as a one-value
	// range and leads the ORDER BY, so only its (column, occurred_at, id)
	// index yields rows in that order and the page is read from its newest
	// end. Written as "=", PostgreSQL folds the column out of the ORDER BY
	// and may walk the time index instead, filtering: quick for a common
	// value, a scan of the whole table for a rare one, and a cached generic
	// plan (pgx prepares statements) does that for every value. SQLite
	// picks an equality index that matches the ORDER BY by itself, and
	// given a range beside an equality it would sort instead.
	drive := s.dialect == DialectPostgres
	for _, eq := range []struct{ column, value string }{
		{"user_id", f.UserID}, {"ip", f.IP}, {"client_id", f.ClientID}, {"type", f.Type},
	} {
		switch {
		case eq.value == "":
		case drive:
			q = q.Where(eq.column+" >= ? AND "+eq.column+" <= ?", eq.value, eq.value)
			order = eq.column + " DESC, " + order
			drive = false
		default:
			q = q.Where(eq.column+" = ?", eq.value)
		}
	}
	if !f.From.IsZero() {
		q = q.Where("occurred_at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where("occurred_at < ?", f.To.UTC())
	}
	if f.BeforeID > 0 {
		// The cursor's own time is found by primary key, so the cursor
		// stays one opaque id; the row comparison is an index condition on
		// every (…, occurred_at, id) index.
		q = q.Where("(occurred_at, id) < ((SELECT c.occurred_at FROM audit_events c WHERE c.id = ?), ?)", f.BeforeID, f.BeforeID)
	}
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	var out []AuditEvent
	if err := q.Order(order).Find(&out).Error; err != nil {
		return nil, mapErr("list audit events", err)
	}
	for i := range out {
		// Drivers hand back the session's or a fixed zone; callers compare
		// and render UTC.
		out[i].OccurredAt = out[i].OccurredAt.UTC()
	}
	return out, nil
}

// DeleteAuditBefore deletes the events that occurred before t, for
// retention, and reports how many it deleted. It deletes in batches; when ctx
// is cancelled between batches it returns what it deleted so far with the
// error.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for {
		db := s.conn(ctx)
		old := db.Model(&AuditEvent{}).Select("id").Where("occurred_at < ?", t.UTC()).Limit(auditDeleteBatch)
		res := db.Where("id IN (?)", old).Delete(&AuditEvent{})
		if res.Error != nil {
			return total, mapErr("delete audit events", res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < auditDeleteBatch {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, mapErr("delete audit events", err)
		}
	}
}

// cleanText makes s storable as TEXT on every backend: valid UTF-8, no NUL.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}
