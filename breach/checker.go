package breach

import (
	"context"
	"fmt"
)

// FailureMode says what a Checker answers when the online check fails.
type FailureMode int

const (
	// FailOpen treats a password as not breached when the online check
	// cannot answer. The offline list has still been consulted, so an
	// outage of the range API weakens the check to the offline list
	// instead of stopping every sign-up and password change. The zero
	// value.
	FailOpen FailureMode = iota
	// FailClosed treats a password as breached when the online check
	// cannot answer, for deployments that would rather refuse a password
	// than accept one unchecked.
	FailClosed
)

func (m FailureMode) String() string {
	switch m {
	case FailOpen:
		return "fail_open"
	case FailClosed:
		return "fail_closed"
	default:
		return fmt.Sprintf("FailureMode(%d)", int(m))
	}
}

// Checker answers the check_breached rule: the offline list first, then,
// when configured, the range API. Either part may be nil.
type Checker struct {
	// Offline is consulted first; a hit answers without any network
	// traffic. Typically Offline().
	Offline *List
	// Online, when set, is asked about passwords the offline list does
	// not hold.
	Online *HIBP
	// Mode decides the answer when Online fails.
	Mode FailureMode
}

// Breached reports whether password is known to be breached.
//
// The answer is always breached: refuse the password when it is true. The
// error is for logging: it is non-nil only when the online check failed, and
// breached then follows Mode, false for FailOpen and true for FailClosed.
// A hit in the offline list returns (true, nil) without asking online; a
// Checker with neither part returns (false, nil).
func (c Checker) Breached(ctx context.Context, password string) (bool, error) {
	exact, lower, hasLower := digestsOf(password)
	if c.Offline != nil {
		if c.Offline.containsDigest(exact) || (hasLower && c.Offline.containsDigest(lower)) {
			return true, nil
		}
	}
	if c.Online == nil {
		return false, nil
	}
	// Online the password is checked only as typed: the range API has
	// every case variant people actually used, and a second query would
	// double the latency for little gain.
	breached, err := c.Online.breachedDigest(ctx, exact)
	if err != nil {
		return c.Mode == FailClosed, fmt.Errorf("online check, %s: %w", c.Mode, err)
	}
	return breached, nil
}
