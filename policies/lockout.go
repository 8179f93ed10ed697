package policies

import (
	"time"
)

// Values of Lockout.Action.
const (
	LockoutActionLock    = "lock"
	LockoutActionCaptcha = "captcha"
)

// Causes of an account lock, as stored and reported.
const (
	LockCauseFailures = "failures" // max_failures wrong credentials within window
	LockCauseCascade  = "cascade"  // user.max_device_locks devices locked within user.reset_after
)

// Lockout is the brute-force policy: failure counters for the account, for
// the device and for the address, and what happens when each overflows.
//
// Every window is fixed, not sliding: it opens at the first failure and,
// once it has passed, the next failure opens a new one counting 1. A
// fixed window needs two facts per counter (count, start) and gives the
// same answer on every instance; a sliding one would need each failure's
// time.
type Lockout struct {
	// MaxFailures wrong credentials for one account within Window trigger
	// Action. Default 5; 0 turns account lockout off.
	MaxFailures int `json:"max_failures" toml:"max_failures"`
	// Window is the account failure window. Default 10m.
	Window Duration `json:"window" toml:"window"`
	// Action is what overflowing MaxFailures does: "lock" (default) locks
	// the account for Duration; "captcha" makes every further attempt on
	// the account solve a captcha first, until a success or the window
	// passes.
	Action string `json:"action" toml:"action"`
	// Duration is how long an account lock lasts. Default 15m.
	Duration Duration `json:"duration" toml:"duration"`
	// MaxTemporaryLocks temporary account locks make the next lock
	// permanent, until an administrator unlocks. Default 0 (never).
	MaxTemporaryLocks int `json:"max_temporary_locks" toml:"max_temporary_locks"`
	// Device locks one device for one account.
	Device DeviceLockout `json:"device" toml:"device"`
	// User locks the account on every device after several device locks.
	User UserLockout `json:"user" toml:"user"`
	// IP blocks an address after failures across all accounts.
	IP IPLockout `json:"ip" toml:"ip"`
	// NotifyUser emails the account's owner when the account locks.
	NotifyUser bool `json:"notify_user" toml:"notify_user"`
	// NotifyAdmin emails smtp.admin_address when an account locks.
	NotifyAdmin bool `json:"notify_admin" toml:"notify_admin"`
}

// DeviceLockout is the per-device rule: a device is the device_id a
// client sends or the browser's signed device cookie.
type DeviceLockout struct {
	// MaxFailures wrong credentials for one account from one device
	// within ResetAfter lock that device for that account. Default 3; 0
	// turns device locks off.
	MaxFailures int `json:"max_failures" toml:"max_failures"`
	// ResetAfter is the device failure window. Default 15m.
	ResetAfter Duration `json:"reset_after" toml:"reset_after"`
	// LockFor is how long a device lock lasts. Default 15m.
	LockFor Duration `json:"lock_for" toml:"lock_for"`
}

// UserLockout is the cascade from device locks to the account.
type UserLockout struct {
	// MaxDeviceLocks device locks of one account within ResetAfter lock
	// the account on every device. Default 3; 0 turns the cascade off.
	MaxDeviceLocks int `json:"max_device_locks" toml:"max_device_locks"`
	// ResetAfter is the device-lock window. Default 24h.
	ResetAfter Duration `json:"reset_after" toml:"reset_after"`
	// LockFor is how long the cascade's account lock lasts; 0s means until
	// an administrator unlocks. Default 1h.
	LockFor Duration `json:"lock_for" toml:"lock_for"`
}

// IPLockout is the per-address budget across all accounts, unknown ones
// included.
type IPLockout struct {
	// MaxFailures failed sign-ins from one address within Window block
	// it from signing in for BlockFor. Default 50; 0 turns it off.
	MaxFailures int `json:"max_failures" toml:"max_failures"`
	// Window is the address failure window. Default 10m.
	Window Duration `json:"window" toml:"window"`
	// BlockFor is how long an address stays blocked. Default 15m.
	BlockFor Duration `json:"block_for" toml:"block_for"`
}

func defaultLockout() Lockout {
	return Lockout{
		MaxFailures: 5,
		Window:      Duration(10 * time.Minute),
		Action:      LockoutActionLock,
		Duration:    Duration(15 * time.Minute),
		Device:      DeviceLockout{MaxFailures: 3, ResetAfter: Duration(15 * time.Minute), LockFor: Duration(15 * time.Minute)},
		User:        UserLockout{MaxDeviceLocks: 3, ResetAfter: Duration(24 * time.Hour), LockFor: Duration(time.Hour)},
		IP:          IPLockout{MaxFailures: 50, Window: Duration(10 * time.Minute), BlockFor: Duration(15 * time.Minute)},
	}
}

func (l Lockout) validate(v *validator) {
	v.nonNegativeInt("lockout.max_failures", l.MaxFailures)
	v.positive("lockout.window", l.Window)
	switch l.Action {
	case LockoutActionLock, LockoutActionCaptcha:
	default:
		v.fail("lockout.action", "must be %q or %q (got %q)", LockoutActionLock, LockoutActionCaptcha, l.Action)
	}
	v.positive("lockout.duration", l.Duration)
	v.nonNegativeInt("lockout.max_temporary_locks", l.MaxTemporaryLocks)
	v.nonNegativeInt("lockout.device.max_failures", l.Device.MaxFailures)
	v.positive("lockout.device.reset_after", l.Device.ResetAfter)
	v.positive("lockout.device.lock_for", l.Device.LockFor)
	v.nonNegativeInt("lockout.user.max_device_locks", l.User.MaxDeviceLocks)
	v.positive("lockout.user.reset_after", l.User.ResetAfter)
	v.nonNegative("lockout.user.lock_for", l.User.LockFor)
	v.nonNegativeInt("lockout.ip.max_failures", l.IP.MaxFailures)
	v.positive("lockout.ip.window", l.IP.Window)
	v.positive("lockout.ip.block_for", l.IP.BlockFor)
	if l.Device.MaxFailures > 0 && l.MaxFailures > 0 && l.Device.MaxFailures > l.MaxFailures {
		v.warn("lockout.device.max_failures", "%d is above lockout.max_failures (%d): the account locks before any device does", l.Device.MaxFailures, l.MaxFailures)
	}
}

// AccountFacts is what is stored about an account's failures and locks:
// facts, never an end time, so that a lock's end follows the policy in
// force when it is asked, and a changed duration applies to existing locks.
type AccountFacts struct {
	Failures    int
	WindowStart time.Time
	// LockedAt is when the current (or last) lock began; zero for none.
	LockedAt time.Time
	Cause    string
	// LocksBefore counts the account locks before the current one since
	// the last success or unlock: the escalation's count.
	LocksBefore int
	// DeviceLocks counts the devices locked within the cascade window
	// that began at DeviceLocksStart.
	DeviceLocks      int
	DeviceLocksStart time.Time
}

// DeviceFacts is what is stored about one device of one account.
type DeviceFacts struct {
	Failures    int
	WindowStart time.Time
	LockedAt    time.Time
}

// AddressFacts is what is stored about one client address.
type AddressFacts struct {
	Failures    int
	WindowStart time.Time
	BlockedAt   time.Time
}

// LockState is a decision: whether something is locked now and until when.
type LockState struct {
	Locked bool
	// Until is when the lock ends; zero with Locked means until an
	// administrator unlocks.
	Until time.Time
	// Permanent is Locked with no end.
	Permanent bool
	Cause     string
}

// lockEnd is the end of a lock that began at since and lasts d (0 = never).
func lockEnd(now, since time.Time, d Duration) LockState {
	if since.IsZero() {
		return LockState{}
	}
	if d == 0 {
		return LockState{Locked: true, Permanent: true}
	}
	until := since.Add(time.Duration(d))
	if !now.Before(until) {
		return LockState{}
	}
	return LockState{Locked: true, Until: until}
}

// Account decides whether the account described by f is locked at now.
func (l Lockout) AccountLock(now time.Time, f AccountFacts) LockState {
	if f.LockedAt.IsZero() {
		return LockState{}
	}
	d := l.Duration
	if f.Cause == LockCauseCascade {
		d = l.User.LockFor
	}
	if l.MaxTemporaryLocks > 0 && f.LocksBefore >= l.MaxTemporaryLocks {
		d = 0 // escalated
	}
	s := lockEnd(now, f.LockedAt, d)
	s.Cause = f.Cause
	return s
}

// NeedsCaptcha reports whether, under the captcha action, the account's
// failures demand a captcha before the next attempt.
func (l Lockout) NeedsCaptcha(now time.Time, f AccountFacts) bool {
	return l.Action == LockoutActionCaptcha && l.MaxFailures > 0 &&
		f.Failures >= l.MaxFailures && inWindow(now, f.WindowStart, l.Window)
}

// Device decides whether a device is locked for its account at now.
func (l Lockout) DeviceLock(now time.Time, d DeviceFacts) LockState {
	return lockEnd(now, d.LockedAt, l.Device.LockFor)
}

// Address decides whether an address is blocked at now.
func (l Lockout) AddressBlock(now time.Time, a AddressFacts) LockState {
	return lockEnd(now, a.BlockedAt, l.IP.BlockFor)
}

func inWindow(now, start time.Time, window Duration) bool {
	return !start.IsZero() && now.Sub(start) < time.Duration(window)
}

// count adds one failure to a fixed-window counter.
func count(now time.Time, n int, start time.Time, window Duration) (int, time.Time) {
	if !inWindow(now, start, window) {
		return 1, now
	}
	return n + 1, start
}

// A successful sign-in clears the account's facts and the device's: the
// counters start again, and so does the escalation count, since a person
// who proves they hold the password is not the attack before.

// Failure is what one counted failure changed.
type Failure struct {
	Account AccountFacts
	Device  DeviceFacts
	// AccountLocked, DeviceLocked and CaptchaRequired say what this
	// failure started; each is true for exactly one failure.
	AccountLocked   bool
	DeviceLocked    bool
	CaptchaRequired bool
}

// Fail applies one wrong credential for an account, from a device
// (withDevice false when the attempt named none), to the facts as they
// are at now. The caller has checked that neither the account nor the
// device is locked: attempts refused for a lock are not counted again.
func (l Lockout) Fail(now time.Time, a AccountFacts, d DeviceFacts, withDevice bool) Failure {
	out := Failure{Account: a, Device: d}
	if withDevice && l.Device.MaxFailures > 0 {
		out.Device.Failures, out.Device.WindowStart = count(now, d.Failures, d.WindowStart, l.Device.ResetAfter)
		if out.Device.Failures >= l.Device.MaxFailures {
			out.Device = DeviceFacts{LockedAt: now}
			out.DeviceLocked = true
			if l.User.MaxDeviceLocks > 0 {
				out.Account.DeviceLocks, out.Account.DeviceLocksStart = count(now, a.DeviceLocks, a.DeviceLocksStart, l.User.ResetAfter)
			}
		}
	}
	if l.MaxFailures > 0 {
		wasCaptcha := l.NeedsCaptcha(now, a)
		out.Account.Failures, out.Account.WindowStart = count(now, a.Failures, a.WindowStart, l.Window)
		if out.Account.Failures >= l.MaxFailures {
			switch l.Action {
			case LockoutActionLock:
				out.lockAccount(now, LockCauseFailures)
			case LockoutActionCaptcha:
				out.CaptchaRequired = !wasCaptcha
			}
		}
	}
	if !out.AccountLocked && l.User.MaxDeviceLocks > 0 && out.DeviceLocked && out.Account.DeviceLocks >= l.User.MaxDeviceLocks {
		out.lockAccount(now, LockCauseCascade)
	}
	return out
}

func (f *Failure) lockAccount(now time.Time, cause string) {
	before := 0
	if !f.Account.LockedAt.IsZero() {
		before = f.Account.LocksBefore + 1
	}
	f.Account = AccountFacts{LockedAt: now, Cause: cause, LocksBefore: before}
	f.AccountLocked = true
}

// FailAddress applies one failed sign-in from an address, and reports
// whether it started a block.
func (l Lockout) FailAddress(now time.Time, a AddressFacts) (AddressFacts, bool) {
	if l.IP.MaxFailures == 0 {
		return a, false
	}
	if !a.BlockedAt.IsZero() && !l.AddressBlock(now, a).Locked {
		a = AddressFacts{} // an ended block starts the count again
	}
	a.Failures, a.WindowStart = count(now, a.Failures, a.WindowStart, l.IP.Window)
	if a.Failures >= l.IP.MaxFailures {
		return AddressFacts{BlockedAt: now}, true
	}
	return a, false
}
