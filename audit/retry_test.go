package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
)

// outageStore is a fakeStore that can be down: while down, and for the next
// failBatches batch writes, writes fail with an error wrapping
// storage.ErrUnavailable, as storage reports an outage. A batch holding a
// row refuse matches is refused with an error that is not an outage, as a
// database refusing bad data would.
type outageStore struct {
	fakeStore
	mu          sync.Mutex
	down        bool
	failBatches int
	refuse      func(*storage.AuditEvent) bool
}

var errRefused = errors.New(`new row for relation "audit_events" violates check constraint`)

func (o *outageStore) setDown(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
}

func (o *outageStore) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	o.mu.Lock()
	down := o.down
	o.mu.Unlock()
	if down {
		return fmt.Errorf("append audit event: %w: connection refused", storage.ErrUnavailable)
	}
	return o.fakeStore.AppendAudit(ctx, e)
}

func (o *outageStore) AppendAuditBatch(ctx context.Context, events []*storage.AuditEvent) error {
	o.mu.Lock()
	fail := o.down || o.failBatches > 0
	if o.failBatches > 0 {
		o.failBatches--
	}
	refuse := o.refuse
	o.mu.Unlock()
	if fail {
		return fmt.Errorf("append audit events: %w: connection refused", storage.ErrUnavailable)
	}
	for _, e := range events {
		if refuse != nil && refuse(e) {
			return fmt.Errorf("append audit events: %w", errRefused)
		}
	}
	return o.fakeStore.AppendAuditBatch(ctx, events)
}

// stored is the "i" detail of every stored row, in the order stored.
func (o *outageStore) stored(t *testing.T) []int {
	t.Helper()
	o.fakeStore.mu.Lock()
	defer o.fakeStore.mu.Unlock()
	return indexes(t, o.rows)
}

func indexes(t *testing.T, rows []storage.AuditEvent) []int {
	t.Helper()
	out := make([]int, 0, len(rows))
	for _, r := range rows {
		var d struct{ I int }
		if err := json.Unmarshal([]byte(r.Details), &d); err != nil {
			t.Fatalf("row %d details %q: %v", r.ID, r.Details, err)
		}
		out = append(out, d.I)
	}
	return out
}

// sleeper is the injected clock and sleep of the retry loop: a wait moves
// the clock at once. hook, when set, runs before the n-th wait (from 0);
// false from it ends the wait early, as a cancelled context does.
type sleeper struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
	hook  func(ctx context.Context, n int) bool
}

func (s *sleeper) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) bool {
	s.mu.Lock()
	n := len(s.waits)
	s.waits = append(s.waits, d)
	hook := s.hook
	s.mu.Unlock()
	if hook != nil && !hook(ctx, n) || ctx.Err() != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
	return true
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

// startRun runs rec until the returned stop is called (or the test ends),
// returning once Run takes events, so that none is written directly.
func startRun(t *testing.T, rec *audit.Recorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	waitFor(t, "Run to start", func() bool { return audit.IsRunning(rec) })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitClosed(t *testing.T, what string, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// recordBatched records events from..to-1, each with its number as detail
// "i", and returns how many RecordBatched refused.
func recordBatched(t *testing.T, rec *audit.Recorder, from, to int) (failed int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := rec.RecordBatched(t.Context(), audit.Event{Type: audit.TypeTokenIssued, Details: map[string]any{"i": i}}); err != nil {
			if !errors.Is(err, storage.ErrUnavailable) {
				t.Fatalf("RecordBatched %d: %v, want nil or an outage", i, err)
			}
			failed++
		}
	}
	return failed
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// dropLines are the "audit events dropped" lines of a text log.
func dropLines(log string) []string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, `msg="audit events dropped"`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// A batch the database cannot take is kept and written once it can: every
// event stored exactly once and in order, the waits doubling from 100 ms to
// 5 s with jitter; rows the database refuses are dropped alone, counted and
// logged, and do not hold up the rest.
func TestRunWritesThroughFailures(t *testing.T) {
	const n = 1200 // several batches
	tests := []struct {
		name        string
		failBatches int
		refuse      func(i int) bool
	}{
		{name: "healthy"},
		{name: "three outage failures", failBatches: 3},
		{name: "outage past the backoff cap", failBatches: 10},
		{name: "refused rows", refuse: func(i int) bool { return i%100 == 7 }},
		{name: "outage and refused rows", failBatches: 2, refuse: func(i int) bool { return i == 0 || i == 499 || i == 1100 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &outageStore{failBatches: tt.failBatches}
			want := upTo(n)
			if tt.refuse != nil {
				store.refuse = func(e *storage.AuditEvent) bool { return tt.refuse(indexes(t, []storage.AuditEvent{*e})[0]) }
				want = slices.DeleteFunc(want, tt.refuse)
			}
			clk := &sleeper{now: epoch()}
			logs := &logBuffer{}
			rec := audit.NewRecorder(store, textLogger(logs), clk.Now, audit.WithRetry(audit.Retry{Sleep: clk.Sleep}))
			stop := startRun(t, rec)
			if failed := recordBatched(t, rec, 0, n); failed != 0 {
				t.Fatalf("%d events refused while queueing", failed)
			}
			// Stopping now would leave the retries to the shutdown's
			// shorter budget.
			waitFor(t, "every event to be written or dropped", func() bool {
				st := rec.Stats()
				return st.Queued == 0 && len(store.stored(t))+int(st.Dropped()) == n
			})
			stop()

			if got := store.stored(t); !slices.Equal(got, want) {
				t.Errorf("stored %d events, want %d, each once and in order; first %v", len(got), len(want), got[:min(len(got), 10)])
			}
			refused := uint64(n - len(want))
			if got, want := rec.Stats(), (audit.Stats{Retries: uint64(tt.failBatches), DroppedRefused: refused}); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
			waits := clk.Waits()
			if len(waits) != tt.failBatches {
				t.Fatalf("%d waits, want one per failure (%d): %v", len(waits), tt.failBatches, waits)
			}
			for k, d := range waits {
				nominal := min(audit.DefaultBackoff<<k, audit.DefaultMaxBackoff)
				if d < nominal/2 || d > nominal {
					t.Errorf("wait %d = %v, want %v jittered to within [%v, %v]", k, d, nominal, nominal/2, nominal)
				}
			}
			lines := dropLines(logs.String())
			if refused == 0 && len(lines) != 0 {
				t.Errorf("drops logged with nothing dropped: %q", lines)
			}
			if refused > 0 {
				if len(lines) == 0 || len(lines) >= int(refused) && refused > 3 {
					t.Errorf("%d drop lines for %d refused events, want one per batch:\n%s", len(lines), refused, strings.Join(lines, "\n"))
				}
				for _, l := range lines {
					for _, w := range []string{"level=ERROR", "reason=refused", "count=", "check constraint"} {
						if !strings.Contains(l, w) {
							t.Errorf("drop line %q lacks %q", l, w)
						}
					}
				}
			}
		})
	}
}

// An outage longer than Retry.GiveUpAfter costs the batch in hand, counted
// and logged once with its size; the queue behind it moves on, in full
// batches, and events after the outage are stored.
func TestRunGivesUpOnABatchAfterItsBudget(t *testing.T) {
	store := &outageStore{down: true}
	stalled, release := make(chan struct{}), make(chan struct{})
	clk := &sleeper{now: epoch(), hook: func(ctx context.Context, n int) bool {
		if n > 0 {
			return true
		}
		close(stalled)
		select {
		case <-release:
			return true
		case <-ctx.Done():
			return false
		}
	}}
	logs := &logBuffer{}
	retry := audit.Retry{Backoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, GiveUpAfter: time.Second, Sleep: clk.Sleep}
	rec := audit.NewRecorder(store, textLogger(logs), clk.Now, audit.WithRetry(retry))
	stop := startRun(t, rec)

	recordBatched(t, rec, 0, 1)
	waitClosed(t, "the first retry", stalled)
	// Run holds event 0 and waits: these queue behind it.
	if failed := recordBatched(t, rec, 1, 11); failed != 0 {
		t.Fatalf("%d events refused while queueing", failed)
	}
	if got := rec.Stats().Queued; got != 11 {
		t.Errorf("Queued = %d, want 11 (one in hand, ten in the queue)", got)
	}
	close(release)
	waitFor(t, "both batches to be given up", func() bool { return rec.Stats().DroppedRetriesExhausted == 11 })
	store.setDown(false)
	recordBatched(t, rec, 11, 14)
	stop()

	if got := store.stored(t); !slices.Equal(got, []int{11, 12, 13}) {
		t.Errorf("stored %v, want the events after the outage, 11 to 13", got)
	}
	waits := clk.Waits()
	st := rec.Stats()
	if want := (audit.Stats{Retries: uint64(len(waits)), DroppedRetriesExhausted: 11}); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	var total time.Duration
	for _, d := range waits {
		total += d
		if d > retry.MaxBackoff {
			t.Errorf("wait %v beyond MaxBackoff %v", d, retry.MaxBackoff)
		}
	}
	if total < 2*retry.GiveUpAfter || total > 2*(retry.GiveUpAfter+retry.MaxBackoff) {
		t.Errorf("waited %v in all for two batches, want about 2×%v", total, retry.GiveUpAfter)
	}
	lines := dropLines(logs.String())
	if len(lines) != 2 {
		t.Fatalf("%d drop lines, want one per batch given up:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, count := range []string{"count=1 ", "count=10 "} {
		for _, w := range []string{"level=ERROR", count, "reason=retries_exhausted", "database unavailable"} {
			if !strings.Contains(lines[i], w) {
				t.Errorf("drop line %q lacks %q", lines[i], w)
			}
		}
	}
}

// While Run retries, the queue is bounded: events past it are written
// directly, and dropped and counted when that fails too. Shutdown during
// the outage keeps trying for Retry.ShutdownWait and then counts and logs
// what it could not write.
func TestRunShutdownDuringAnOutage(t *testing.T) {
	const queue = 4
	tests := []struct {
		name     string
		backAt   int // the wait after which the database is back; 0 for never
		stored   []int
		shutdown uint64
	}{
		{name: "outage outlasts the shutdown wait", shutdown: 5},
		{name: "database back during the shutdown wait", backAt: 2, stored: []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &outageStore{down: true}
			stalled := make(chan struct{})
			clk := &sleeper{now: epoch(), hook: func(ctx context.Context, n int) bool {
				switch {
				case n == 0:
					// Holds Run in its first retry until shutdown.
					close(stalled)
					<-ctx.Done()
					return false
				case n == tt.backAt:
					store.setDown(false)
				}
				return true
			}}
			logs := &logBuffer{}
			rec := audit.NewRecorder(store, textLogger(logs), clk.Now, audit.WithQueueSize(queue),
				audit.WithRetry(audit.Retry{ShutdownWait: time.Second, Sleep: clk.Sleep}))
			stop := startRun(t, rec)
			recordBatched(t, rec, 0, 1)
			waitClosed(t, "the first retry", stalled)

			if failed := recordBatched(t, rec, 1, 11); failed != 6 {
				t.Errorf("%d events failed, want the 6 the full queue left to a direct write", failed)
			}
			if st := rec.Stats(); st.Queued != 1+queue || st.DroppedQueueFull != 6 {
				t.Errorf("during the outage Stats = %+v, want 5 queued (one batch, a full queue), 6 dropped", st)
			}
			stop()

			if got := store.stored(t); !slices.Equal(got, tt.stored) {
				t.Errorf("stored %v, want %v", got, tt.stored)
			}
			st := rec.Stats()
			if st.Queued != 0 || st.DroppedQueueFull != 6 || st.DroppedShutdown != tt.shutdown || st.DroppedRetriesExhausted != 0 {
				t.Errorf("after shutdown Stats = %+v, want nothing queued, 6 dropped on a full queue, %d at shutdown", st, tt.shutdown)
			}
			if st.Dropped()+uint64(len(tt.stored)) != 11 {
				t.Errorf("%d dropped and %d stored of 11 recorded", st.Dropped(), len(tt.stored))
			}
			lines := dropLines(logs.String())
			if tt.shutdown == 0 {
				if len(lines) != 0 {
					t.Errorf("drops logged with nothing dropped at shutdown: %q", lines)
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("%d drop lines, want one for the shutdown:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			for _, w := range []string{"level=ERROR", fmt.Sprintf("count=%d ", tt.shutdown), "reason=shutdown", "database unavailable"} {
				if !strings.Contains(lines[0], w) {
					t.Errorf("drop line %q lacks %q", lines[0], w)
				}
			}
		})
	}
}
