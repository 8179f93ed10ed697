package hashing

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTime is a clock that only sleeps move.
type fakeTime struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeTime) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}
func (f *fakeTime) sleep(_ context.Context, d time.Duration) error { f.advance(d); return nil }

func TestPacerPadsFailuresToTheSlowestKind(t *testing.T) {
	clock := &fakeTime{t: time.Unix(0, 0)}
	p := newPacer(clock.now, clock.sleep)
	p.observe("today", 100*time.Millisecond)
	p.observe("old", 20*time.Millisecond)

	tests := []struct {
		name    string
		took    time.Duration
		wantAll time.Duration
	}{
		{"a cheap old hash is padded to the target", 20 * time.Millisecond, 125 * time.Millisecond},
		{"today's cost is padded by the margin", 100 * time.Millisecond, 125 * time.Millisecond},
		{"a check over the target is left alone", 300 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := clock.now()
			clock.advance(tt.took)
			if err := p.pad(context.Background(), start); err != nil {
				t.Fatal(err)
			}
			if got := clock.now().Sub(start); got != tt.wantAll {
				t.Fatalf("check took %v, want %v", got, tt.wantAll)
			}
		})
	}
}

func TestPacerAverageFollowsLoad(t *testing.T) {
	p := newPacer(time.Now, sleepCtx)
	p.observe("k", 100*time.Millisecond)
	for range 40 {
		p.observe("k", 200*time.Millisecond)
	}
	if got := p.target(); got < 240*time.Millisecond || got > 250*time.Millisecond {
		t.Fatalf("target after load rose = %v, want about 250ms", got)
	}
	p.observe("k", 10*time.Second)
	if got := p.target(); got > maxPace {
		t.Fatalf("target %v above the cap %v", got, maxPace)
	}
}

// A wrong password for an account whose hash predates today's parameters
// takes as long as one for an account that does not exist.
func TestHasherFailuresCostTheSameWhateverTheStoredParameters(t *testing.T) {
	today := Argon2{Memory: 8192, Iterations: 4, Parallelism: 1}
	old := Argon2{Memory: 64, Iterations: 1, Parallelism: 1}
	stored, err := old.Hash("right")
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeTime{t: time.Unix(0, 0)}
	h := NewHasher(today, nil)
	h.pace = newPacer(clock.now, clock.sleep)
	// Real work runs, but only sleeps move the fake clock; give each
	// kind of check a known cost by observing it directly.
	h.pace.observe(today.key(), 80*time.Millisecond)
	h.pace.observe(old.key(), 5*time.Millisecond)

	start := clock.now()
	ok, err := h.Verify(context.Background(), stored, "wrong")
	if err != nil || ok {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	known := clock.now().Sub(start)

	start = clock.now()
	if err := h.Dummy(context.Background(), "wrong"); err != nil {
		t.Fatal(err)
	}
	unknown := clock.now().Sub(start)
	// The fake clock stands still during the real work, so the dummy's
	// own observation pulls today's average down a little: both checks
	// end exactly at the target of their moment.
	if known != 100*time.Millisecond {
		t.Fatalf("known user with old hash took %v, want today's cost with the margin, 100ms", known)
	}
	if want := h.pace.target(); unknown != want {
		t.Fatalf("unknown user took %v, want the target %v", unknown, want)
	}

	start = clock.now()
	if ok, err := h.Verify(context.Background(), stored, "right"); err != nil || !ok {
		t.Fatalf("Verify(right) = %v, %v", ok, err)
	}
	if got := clock.now().Sub(start); got != 0 {
		t.Fatalf("a success was padded by %v", got)
	}
}

func TestHasherCalibratesTodaysCostBeforePaddingAnOldHash(t *testing.T) {
	today := Argon2{Memory: 1024, Iterations: 1, Parallelism: 1}
	old := Argon2{Memory: 64, Iterations: 1, Parallelism: 1}
	stored, _ := old.Hash("right")
	h := NewHasher(today, nil)
	if _, err := h.Verify(context.Background(), stored, "wrong"); err != nil {
		t.Fatal(err)
	}
	if !h.pace.known(today.key()) {
		t.Fatal("a failed check of an old hash did not measure today's cost first")
	}
}

func TestLimiterBoundsMemoryAndRefusesWhenFull(t *testing.T) {
	l := NewLimiter(100, 20*time.Millisecond)
	release, err := l.Acquire(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(context.Background(), 60); !errors.Is(err, ErrBusy) {
		t.Fatalf("second hash over the budget: err = %v, want ErrBusy", err)
	}
	if got := l.Stats(); got.InUseKiB != 60 || got.Refused != 1 {
		t.Fatalf("stats = %+v", got)
	}
	// A waiting hash gets its turn as soon as memory frees up.
	done := make(chan error, 1)
	l2 := NewLimiter(100, 5*time.Second)
	r1, _ := l2.Acquire(context.Background(), 60)
	go func() {
		r, err := l2.Acquire(context.Background(), 60)
		if err == nil {
			r()
		}
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r1()
	if err := <-done; err != nil {
		t.Fatalf("queued hash: %v", err)
	}
	release()
	if got := l.Stats().InUseKiB; got != 0 {
		t.Fatalf("in use after release = %d", got)
	}
	// A hash bigger than the whole budget runs alone rather than never.
	r, err := l.Acquire(context.Background(), 1000)
	if err != nil {
		t.Fatalf("oversized hash: %v", err)
	}
	r()
}

func TestLimiterConcurrentHashesStayWithinBudget(t *testing.T) {
	const budget, each = 256, 64
	l := NewLimiter(budget, 10*time.Second)
	var inUse, peak atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			release, err := l.Acquire(context.Background(), each)
			if err != nil {
				t.Error(err)
				return
			}
			n := inUse.Add(each)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			inUse.Add(-each)
			release()
		})
	}
	wg.Wait()
	if peak.Load() > budget {
		t.Fatalf("peak %d KiB over budget %d", peak.Load(), budget)
	}
}

func TestLimiterReleasesMemoryAfterAHeavyBurst(t *testing.T) {
	released := make(chan struct{}, 4)
	l := NewLimiter(100, time.Second, WithRelease(time.Millisecond, func() { released <- struct{}{} }))
	light, _ := l.Acquire(context.Background(), 10)
	light()
	select {
	case <-released:
		t.Fatal("released after light use")
	case <-time.After(20 * time.Millisecond):
	}
	heavy, _ := l.Acquire(context.Background(), 60)
	heavy()
	select {
	case <-released:
	case <-time.After(2 * time.Second):
		t.Fatal("no release after a burst that used the budget")
	}
}

func TestHasherRefusesWhenBusy(t *testing.T) {
	p := Argon2{Memory: 64, Iterations: 1, Parallelism: 1}
	l := NewLimiter(64, time.Millisecond)
	h := NewHasher(p, l)
	hold, _ := l.Acquire(context.Background(), 64)
	defer hold()
	if _, err := h.Hash(context.Background(), "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash: %v", err)
	}
	stored, _ := p.Hash("x")
	if _, err := h.Verify(context.Background(), stored, "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify: %v", err)
	}
	if err := h.Dummy(context.Background(), "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Dummy: %v", err)
	}
	// Generated secrets are not held up by password hashing.
	if ok, err := h.Verify(context.Background(), HighEntropy("s"), "s"); err != nil || !ok {
		t.Fatalf("sha256 Verify while busy = %v, %v", ok, err)
	}
}
