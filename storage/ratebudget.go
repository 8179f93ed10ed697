package storage

import (
	"context"
	"fmt"
	"time"
)

// MaxRateKeyLen bounds a rate budget's key in bytes. Keys are part of the
// primary key, and PostgreSQL refuses index entries of a few kilobytes
// with an error that would read as an outage; a caller with longer keys
// hashes them first.
const MaxRateKeyLen = 512

// TakeRateBudget counts one attempt against key's budget of limit attempts
// per window and reports whether this attempt is within it, and its count
// in the window (1 for the first).
//
// Windows are fixed, not sliding: a window starts at the store's clock
// truncated to a multiple of window since the zero time (so a 24h window
// is a UTC day), and every instance agrees on it. A burst that straddles
// a boundary can therefore get up to twice limit through in a short time;
// the price of needing one row per key per window.
//
// The count is taken by one INSERT … ON CONFLICT DO UPDATE … RETURNING,
// never read and written back, so parallel attempts on any instances get
// distinct counts 1, 2, 3, … and exactly limit of them are allowed.
// Refused attempts count too: they cost nothing extra, and a client that
// keeps hammering a closed budget shows in the count. Inside a transaction
// (InTx) the attempt is uncounted if the transaction rolls back, so take
// the budget outside any transaction whose failure should still count.
//
// A row is per key and window start, so a key is meant for one window
// length: callers put the purpose (and so the window) in the key, like
// "register:ip:192.0.2.1".
//
// key must be non-empty text of at most MaxRateKeyLen bytes; window at
// least a second; limit not negative (0 refuses everything).
func (s *Store) TakeRateBudget(ctx context.Context, key string, window time.Duration, limit int64) (allowed bool, count int64, err error) {
	const op = "take rate budget"
	switch {
	case key == "" || len(key) > MaxRateKeyLen:
		return false, 0, fmt.Errorf("%s: key must be 1 to %d bytes, got %d", op, MaxRateKeyLen, len(key))
	case !StorableText(key):
		return false, 0, fmt.Errorf("%s: key must be valid UTF-8 without NUL (hash binary keys first)", op)
	case window < time.Second:
		return false, 0, fmt.Errorf("%s: window %v is shorter than a second", op, window)
	case limit < 0:
		return false, 0, fmt.Errorf("%s: negative limit %d", op, limit)
	}
	start := s.now().UTC().Truncate(window)
	var counts []int64
	err = s.conn(ctx).Raw("INSERT INTO rate_counters (key, window_start, count, expires_at) VALUES (?, ?, 1, ?) "+
		"ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + 1 RETURNING count",
		key, start, start.Add(window)).Scan(&counts).Error
	if err != nil {
		return false, 0, mapErr(op, err)
	}
	if len(counts) != 1 {
		return false, 0, fmt.Errorf("%s: the upsert returned %d rows, want 1: %w", op, len(counts), ErrUnavailable)
	}
	return counts[0] <= limit, counts[0], nil
}

// DeleteExpiredRateCounters removes counters whose window ended before
// cutoff: every key ever counted leaves one row per window.
func (s *Store) DeleteExpiredRateCounters(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.conn(ctx).Exec("DELETE FROM rate_counters WHERE expires_at < ?", cutoff.UTC())
	return res.RowsAffected, mapErr("delete expired rate counters", res.Error)
}
