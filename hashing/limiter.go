package hashing

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy means the hashing memory stayed in use by other checks for the
// whole queue timeout. It is the server's load, not the caller's mistake:
// answer 503 with Retry-After (temporarily_unavailable on OAuth endpoints).
var ErrBusy = errors.New("hashing: too many password checks at once, try again shortly")

// Limiter bounds the memory that argon2 hashes running at once may use.
// Every argon2id hash allocates its memory parameter up front (19 MiB at
// the recommended setting), so without a bound anyone can make the server
// allocate gigabytes with parallel wrong-password requests, no account
// needed. A hash waits up to the queue timeout for memory, then is refused
// with ErrBusy.
type Limiter struct {
	sem    *semaphore.Weighted
	budget int64 // KiB
	wait   time.Duration

	inUse   atomic.Int64 // KiB held now
	refused atomic.Int64

	// release runs once the limiter has stayed idle for idleAfter after
	// heavy use, to hand the burst's memory back to the operating system.
	release   func()
	idleAfter time.Duration
	mu        sync.Mutex
	heavy     bool
	timer     *time.Timer
}

// LimiterOption configures a Limiter.
type LimiterOption func(*Limiter)

// WithRelease makes the limiter call release (for a server,
// runtime/debug.FreeOSMemory) once hashing has been idle for after,
// following a burst that used at least half the budget. Go's scavenger
// returns freed heap to the system only slowly; after a burst of 19 MiB
// allocations that would leave the process holding its peak for minutes.
func WithRelease(after time.Duration, release func()) LimiterOption {
	return func(l *Limiter) { l.idleAfter, l.release = after, release }
}

// NewLimiter returns a limiter allowing budgetKiB of hashing memory at
// once, each hash waiting at most wait for its share.
func NewLimiter(budgetKiB int64, wait time.Duration, opts ...LimiterOption) *Limiter {
	if budgetKiB < 1 {
		budgetKiB = 1
	}
	l := &Limiter{sem: semaphore.NewWeighted(budgetKiB), budget: budgetKiB, wait: wait}
	for _, o := range opts {
		o(l)
	}
	return l
}

// LimiterStats is a snapshot for metrics.
type LimiterStats struct {
	BudgetKiB int64
	InUseKiB  int64
	Refused   int64 // hashes refused with ErrBusy since start
}

// Stats returns the limiter's current figures.
func (l *Limiter) Stats() LimiterStats {
	return LimiterStats{BudgetKiB: l.budget, InUseKiB: l.inUse.Load(), Refused: l.refused.Load()}
}

// Acquire takes kib of the budget, waiting at most the queue timeout, and
// returns the function that gives it back; ErrBusy when the wait ran out.
// A hash bigger than the whole budget (a stored hash made under parameters
// above today's) runs alone rather than never. A nil Limiter bounds
// nothing.
func (l *Limiter) Acquire(ctx context.Context, kib int64) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	kib = min(max(kib, 1), l.budget)
	wctx, cancel := context.WithTimeout(ctx, l.wait)
	defer cancel()
	if !l.sem.TryAcquire(kib) {
		if err := l.sem.Acquire(wctx, kib); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			l.refused.Add(1)
			return nil, ErrBusy
		}
	}
	if n := l.inUse.Add(kib); n*2 >= l.budget && l.release != nil {
		l.mu.Lock()
		l.heavy = true
		l.mu.Unlock()
	}
	return func() {
		l.sem.Release(kib)
		if l.inUse.Add(-kib) == 0 {
			l.idle()
		}
	}, nil
}

// idle schedules the release after a heavy burst; a hash starting in the
// meantime does not cancel it, since the release only returns memory that
// is already free.
func (l *Limiter) idle() {
	if l.release == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.heavy {
		return
	}
	l.heavy = false
	if l.timer != nil {
		l.timer.Reset(l.idleAfter)
		return
	}
	l.timer = time.AfterFunc(l.idleAfter, l.release)
}
