package hashing

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Hasher is what a server hashes and checks chosen secrets with: the
// current argon2id parameters, a Limiter on the memory of hashes running
// at once, and a pacer that makes every failed check take as long as the
// slowest kind of check, so that the time a wrong password takes does not
// say whether the account exists or how old its hash is. Without pacing,
// raising the parameters (the documented upgrade path) makes a known user
// with an old, cheaper hash answer faster than an unknown one, whose dummy
// check runs under today's parameters.
//
// Time here is the machine's real time: it measures work, not policy.
type Hasher struct {
	params  Argon2
	limiter *Limiter
	pace    *pacer
}

// NewHasher returns a Hasher for params; limiter nil means no bound (tools
// hashing one password at a time).
func NewHasher(params Argon2, limiter *Limiter) *Hasher {
	return &Hasher{params: params, limiter: limiter, pace: newPacer(time.Now, sleepCtx)}
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Argon2 { return h.params }

// Limiter returns the hasher's limiter (nil when unbounded).
func (h *Hasher) Limiter() *Limiter { return h.limiter }

// Hash returns the PHC string of secret under the current parameters.
func (h *Hasher) Hash(ctx context.Context, secret string) (string, error) {
	release, err := h.limiter.Acquire(ctx, int64(h.params.Memory))
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	defer release()
	return h.params.Hash(secret)
}

// NeedsRehash reports whether encoded was made with other parameters than
// the current ones.
func (h *Hasher) NeedsRehash(encoded string) bool { return h.params.NeedsRehash(encoded) }

// Verify checks secret against encoded, in constant time, within the
// memory bound. A mismatch takes at least the paced time of a failure;
// generated (SHA-256) secrets are neither bounded nor paced: they cost
// nothing and their 256 random bits are not guessable.
func (h *Hasher) Verify(ctx context.Context, encoded, secret string) (bool, error) {
	if strings.HasPrefix(encoded, "$sha256$") {
		return Verify(encoded, secret)
	}
	start := h.pace.now()
	key, kib := costOf(encoded)
	if key != h.params.key() {
		// Pacing compares against today's parameters, so it needs to
		// know what a check under them costs before it can pad to it.
		if err := h.calibrate(ctx, secret); err != nil {
			return false, err
		}
	}
	release, err := h.limiter.Acquire(ctx, kib)
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	t0 := h.pace.now()
	ok, err := Verify(encoded, secret)
	h.pace.observe(key, h.pace.now().Sub(t0))
	release()
	if err != nil || ok {
		return ok, err
	}
	return false, h.pace.pad(ctx, start)
}

// Dummy spends the work of a failed check under the current parameters,
// paced like one: what an unknown or refused account costs.
func (h *Hasher) Dummy(ctx context.Context, secret string) error {
	start := h.pace.now()
	if err := h.dummy(ctx, secret); err != nil {
		return err
	}
	return h.pace.pad(ctx, start)
}

func (h *Hasher) dummy(ctx context.Context, secret string) error {
	release, err := h.limiter.Acquire(ctx, int64(h.params.Memory))
	if err != nil {
		return fmt.Errorf("verify password: %w", err)
	}
	defer release()
	t0 := h.pace.now()
	h.params.Dummy(secret)
	h.pace.observe(h.params.key(), h.pace.now().Sub(t0))
	return nil
}

func (h *Hasher) calibrate(ctx context.Context, secret string) error {
	if h.pace.known(h.params.key()) {
		return nil
	}
	return h.dummy(ctx, secret)
}

func (p Argon2) key() string {
	return fmt.Sprintf("argon2id m=%d,t=%d,p=%d", p.Memory, p.Iterations, p.Parallelism)
}

// costOf names the kind of work checking encoded takes, for pacing, and
// the memory it holds, for the limiter. Malformed hashes fail before any
// work; they are paced like the cheapest check.
func costOf(encoded string) (key string, kib int64) {
	if p, _, _, err := parseArgon2(encoded); err == nil {
		return p.key(), int64(p.Memory)
	}
	if cost, err := bcrypt.Cost([]byte(encoded)); err == nil {
		// bcrypt's state is 4 KiB; it is bounded like the rest so a
		// flood of checks against imported hashes still queues.
		return fmt.Sprintf("bcrypt %d", cost), 4
	}
	return "malformed", 1
}

// pacer keeps a moving average of how long each kind of check takes and
// pads failures up to a margin over the slowest kind seen.
type pacer struct {
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu    sync.Mutex
	costs map[string]time.Duration
}

const (
	// paceMargin lifts the target above the average, so that ordinary
	// jitter of the slowest kind lands under it and is padded too,
	// rather than sticking out above everything else.
	paceMargin = 1.25
	// maxPace bounds the padding whatever was measured (a stalled
	// machine must not turn every wrong password into a long wait).
	maxPace = 5 * time.Second
	// maxKinds bounds the table: parameters change rarely, but hashes
	// in storage could each carry their own.
	maxKinds = 32
)

func newPacer(now func() time.Time, sleep func(context.Context, time.Duration) error) *pacer {
	return &pacer{now: now, sleep: sleep, costs: make(map[string]time.Duration)}
}

func (p *pacer) observe(key string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.costs[key]
	switch {
	case !ok:
		if len(p.costs) >= maxKinds {
			for k := range p.costs {
				delete(p.costs, k)
				break
			}
		}
		p.costs[key] = d
	default:
		// An exponential average with weight 1/8: it follows load within
		// a few dozen checks without one slow check moving it far.
		p.costs[key] = old + (d-old)/8
	}
}

func (p *pacer) known(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.costs[key]
	return ok
}

func (p *pacer) target() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var slowest time.Duration
	for _, d := range p.costs {
		slowest = max(slowest, d)
	}
	return min(time.Duration(float64(slowest)*paceMargin), maxPace)
}

// pad waits until the check that began at start has taken the target.
func (p *pacer) pad(ctx context.Context, start time.Time) error {
	if rest := p.target() - p.now().Sub(start); rest > 0 {
		return p.sleep(ctx, rest)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
