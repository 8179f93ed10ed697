package authn

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// EndReasonLockout is the reason of everything a lock of the account ends.
const EndReasonLockout = "lockout"

// LockoutStore keeps the lockout facts (see storage.Store).
type LockoutStore interface {
	Transactor
	Lockout(ctx context.Context, userID, deviceID string) (storage.AccountLockout, storage.DeviceLockout, error)
	ClearLockout(ctx context.Context, userID, deviceID string) error
	AddressLockout(ctx context.Context, ip string) (storage.AddressLockout, error)
	LockFailure(ctx context.Context, userID, deviceID, ip string) (storage.FailureFacts, error)
	SaveFailure(ctx context.Context, f storage.FailureFacts) error
}

var _ LockoutStore = (*storage.Store)(nil)

// EverythingEnder ends every session and token of a user (Accounts).
type EverythingEnder interface {
	EndEverything(ctx context.Context, userID, reason string, actor Actor) (Ended, error)
}

// LockNotice tells of an account lock, once its transaction committed.
type LockNotice struct {
	User  *storage.User
	State policies.LockState
	// Attempt is the failed attempt that locked the account.
	IP, DeviceID, ClientID string
	At                     time.Time
	NotifyUser             bool
	NotifyAdmin            bool
}

// WithLockout turns on the brute-force defence of the lockout policy:
// gates that refuse locked accounts, devices and addresses before any
// password work, and failure counting in the record phase. ender ends
// everything of an account its lock starts; notify (may be nil) hears of
// each account lock after the fact, and must not block.
func WithLockout(store LockoutStore, ender EverythingEnder, notify func(context.Context, LockNotice)) PipelineOption {
	return func(p *Pipeline) {
		p.lockout = &lockout{store: store, ender: ender, notify: notify}
		if p.tx == nil {
			p.tx = store
		}
	}
}

type lockout struct {
	store  LockoutStore
	ender  EverythingEnder
	notify func(context.Context, LockNotice)
}

// lockState is what the gates read, kept for the record phase.
type lockState struct {
	checked bool
	// dirty means the account or the device has facts a success clears.
	dirty bool
}

// addressGate refuses an address that failed too often, before the
// account is even looked up: a blocked address costs a read, no hashing.
func (l *lockout) addressGate(ctx context.Context, c *Check) (Decision, error) {
	if c.IP == "" || c.Policy.Lockout.IP.MaxFailures == 0 {
		return Proceed(), nil
	}
	a, err := l.store.AddressLockout(ctx, c.IP)
	if err != nil {
		return Decision{}, fmt.Errorf("read address lockout: %w", err)
	}
	if s := c.Policy.Lockout.AddressBlock(c.Now, addressFacts(a)); s.Locked {
		return Denied(ReasonIPBlocked, s.Until), nil
	}
	return Proceed(), nil
}

// accountGate refuses a locked account or device, and demands a captcha
// when the captcha action says so.
func (l *lockout) accountGate(ctx context.Context, c *Check) (Decision, error) {
	if c.User == nil {
		return Proceed(), nil // unknown accounts have no state
	}
	a, d, err := l.store.Lockout(ctx, c.User.ID, lockDevice(c))
	if err != nil {
		return Decision{}, fmt.Errorf("read lockout of user %s: %w", c.User.ID, err)
	}
	pol := c.Policy.Lockout
	af, df := accountFacts(a), deviceFacts(d)
	c.lock = lockState{checked: true, dirty: af != (policies.AccountFacts{}) || df != (policies.DeviceFacts{})}
	if s := pol.AccountLock(c.Now, af); s.Locked {
		return Denied(ReasonLocked, s.Until), nil
	}
	if lockDevice(c) != "" {
		if s := pol.DeviceLock(c.Now, df); s.Locked {
			return Denied(ReasonDeviceLocked, s.Until), nil
		}
	}
	if pol.NeedsCaptcha(c.Now, af) && !c.CaptchaSolved {
		return Challenged(ChallengeCaptcha, ReasonCaptchaRequired), nil
	}
	return Proceed(), nil
}

// lockDevice is the device the attempt's device rule keys on: none when
// the attempt named none or the rule is off (device.max_failures 0), which
// then also leaves locks it made earlier unenforced.
func lockDevice(c *Check) string {
	if c.Policy.Lockout.Device.MaxFailures == 0 {
		return ""
	}
	return c.DeviceID
}

// counts reports whether an outcome is a wrong credential, the only kind
// of failure the counters see: a refusal for another reason (a lock, a
// disabled account, an IP rule, a step of the embedder) never is.
func counts(reason string) bool {
	return reason == ReasonBadPassword || reason == ReasonUnknownUser || reason == ReasonBadSecondFactor
}

// record counts the attempt, in the record transaction, and returns the
// outcome to answer: a failure that started a lock is answered with the
// lock; one that lost a race with another attempt's lock is not counted
// and answered with that lock. Events go with them.
//
// A failure costs two statements whatever it changes: one locks and reads
// the rows of the account, the device and the address, one writes back
// what the policy decided from them. Every decision is taken again under
// those locks, not from the gates' reads, which another attempt may have
// overtaken: that is what makes the count exact.
func (l *lockout) record(ctx context.Context, c *Check, out Outcome, events *[]audit.Event, notices *[]LockNotice) (Outcome, error) {
	pol := c.Policy.Lockout
	if out.OK || (out.proven != nil && out.Decision.Challenge != ChallengeSecondFactor) {
		// The right password, whatever still stands before a session (a
		// password change): the counters start again. Not while a second
		// factor is due, though: the password alone would otherwise wipe
		// the wrong codes, and an attacker who knows it could guess codes
		// forever just below the threshold.
		if c.lock.dirty {
			if err := l.store.ClearLockout(ctx, c.User.ID, c.DeviceID); err != nil {
				return out, fmt.Errorf("clear lockout of user %s: %w", c.User.ID, err)
			}
		}
		return out, nil
	}
	if !counts(out.Reason) {
		return out, nil
	}
	var userID, ip string
	if c.User != nil {
		userID = c.User.ID
	}
	if c.IP != "" && pol.IP.MaxFailures > 0 {
		ip = c.IP
	}
	if userID == "" && ip == "" {
		return out, nil
	}
	facts, err := l.store.LockFailure(ctx, userID, lockDevice(c), ip)
	if err != nil {
		return out, fmt.Errorf("lock lockout of user %q, address %q: %w", userID, ip, err)
	}
	var save storage.FailureFacts
	var locked *policies.LockState
	if c.User != nil {
		var counted bool
		if out, counted, locked = l.countAccount(c, out, facts, &save, events); !counted {
			return out, nil // refused under the lock: nothing changes
		}
	}
	if facts.Address != nil {
		l.countAddress(c, *facts.Address, &save, events)
	}
	if err := l.store.SaveFailure(ctx, save); err != nil {
		return out, fmt.Errorf("save lockout of user %q, address %q: %w", userID, ip, err)
	}
	if locked != nil {
		// The lock ends everything of the account on every device, in
		// its transaction: an attacker who guessed right on another
		// device, or stole a token, loses it with the lock.
		if _, err := l.ender.EndEverything(ctx, c.User.ID, EndReasonLockout, Actor{}); err != nil {
			return out, fmt.Errorf("end everything of locked user %s: %w", c.User.ID, err)
		}
		*notices = append(*notices, LockNotice{User: c.User, State: *locked, IP: c.IP, DeviceID: c.DeviceID,
			ClientID: c.ClientID, At: c.Now, NotifyUser: pol.NotifyUser, NotifyAdmin: pol.NotifyAdmin})
	}
	return out, nil
}

// countAccount decides, from the account's and the device's facts read
// under their locks, what this failure changes, and puts it in save. It
// reports whether the failure was counted, and the account's lock when it
// started one.
func (l *lockout) countAccount(c *Check, out Outcome, facts storage.FailureFacts, save *storage.FailureFacts, events *[]audit.Event) (Outcome, bool, *policies.LockState) {
	pol := c.Policy.Lockout
	af := accountFacts(*facts.Account)
	var df policies.DeviceFacts
	withDevice := facts.Device != nil
	if withDevice {
		df = deviceFacts(*facts.Device)
	}
	// Decided again under the lock: an attempt that passed the gates
	// while a concurrent one was locking the account is not counted.
	if s := pol.AccountLock(c.Now, af); s.Locked {
		return refused(out, ReasonLocked, s), false, nil
	}
	if withDevice {
		if s := pol.DeviceLock(c.Now, df); s.Locked {
			return refused(out, ReasonDeviceLocked, s), false, nil
		}
	}
	f := pol.Fail(c.Now, af, df, withDevice)
	a := storedAccount(c.User.ID, f.Account)
	save.Account = &a
	if withDevice {
		d := storedDevice(c.User.ID, c.DeviceID, f.Device)
		save.Device = &d
	}
	if f.DeviceLocked {
		*events = append(*events, lockEvent(c, audit.TypeDeviceLocked, ReasonDeviceLocked, pol.DeviceLock(c.Now, f.Device)))
	}
	if f.CaptchaRequired {
		*events = append(*events, lockEvent(c, audit.TypeCaptchaRequired, ReasonCaptchaRequired, policies.LockState{}))
	}
	if f.AccountLocked {
		s := pol.AccountLock(c.Now, f.Account)
		e := lockEvent(c, audit.TypeAccountLocked, ReasonLocked, s)
		e.Details["cause"] = s.Cause
		*events = append(*events, e)
		out.Decision = Denied(ReasonLocked, s.Until)
		out.locked = true
		return out, true, &s
	}
	if f.DeviceLocked {
		out.Decision = Denied(ReasonDeviceLocked, pol.DeviceLock(c.Now, f.Device).Until)
		out.locked = true
	}
	return out, true, nil
}

// countAddress decides, from the address's facts read under its lock,
// what this failure changes, and puts it in save.
func (l *lockout) countAddress(c *Check, a storage.AddressLockout, save *storage.FailureFacts, events *[]audit.Event) {
	pol := c.Policy.Lockout
	facts := addressFacts(a)
	if pol.AddressBlock(c.Now, facts).Locked {
		return // blocked by a concurrent attempt: not counted again
	}
	facts, blocked := pol.FailAddress(c.Now, facts)
	sa := storedAddress(c.IP, facts)
	save.Address = &sa
	if blocked {
		*events = append(*events, lockEvent(c, audit.TypeAddressBlocked, ReasonIPBlocked, pol.AddressBlock(c.Now, facts)))
	}
}

// refused turns a failure that was not counted into the lock's refusal.
func refused(out Outcome, reason string, s policies.LockState) Outcome {
	out.Reason = reason
	out.Decision = Denied(reason, s.Until)
	return out
}

func lockEvent(c *Check, typ, reason string, s policies.LockState) audit.Event {
	e := audit.Event{Type: typ, ClientID: c.ClientID, IP: c.IP, Device: c.DeviceID,
		Outcome: audit.OutcomeFailure, Reason: reason, Details: map[string]any{}}
	if c.User != nil {
		e.UserID = c.User.ID
	}
	switch {
	case s.Permanent:
		e.Details["until"] = "unlocked by an administrator"
	case !s.Until.IsZero():
		e.Details["until"] = s.Until.UTC().Format(time.RFC3339)
	}
	return e
}

func accountFacts(a storage.AccountLockout) policies.AccountFacts {
	return policies.AccountFacts{
		Failures: a.Failures, WindowStart: deref(a.WindowStart), LockedAt: deref(a.LockedAt), Cause: a.Cause,
		LocksBefore: a.LocksBefore, DeviceLocks: a.DeviceLocks, DeviceLocksStart: deref(a.DeviceLocksStart),
	}
}

func storedAccount(userID string, f policies.AccountFacts) storage.AccountLockout {
	return storage.AccountLockout{
		UserID: userID, Failures: f.Failures, WindowStart: ref(f.WindowStart), LockedAt: ref(f.LockedAt), Cause: f.Cause,
		LocksBefore: f.LocksBefore, DeviceLocks: f.DeviceLocks, DeviceLocksStart: ref(f.DeviceLocksStart),
	}
}

func deviceFacts(d storage.DeviceLockout) policies.DeviceFacts {
	return policies.DeviceFacts{Failures: d.Failures, WindowStart: deref(d.WindowStart), LockedAt: deref(d.LockedAt)}
}

func storedDevice(userID, deviceID string, f policies.DeviceFacts) storage.DeviceLockout {
	return storage.DeviceLockout{UserID: userID, DeviceID: deviceID, Failures: f.Failures,
		WindowStart: ref(f.WindowStart), LockedAt: ref(f.LockedAt)}
}

func addressFacts(a storage.AddressLockout) policies.AddressFacts {
	return policies.AddressFacts{Failures: a.Failures, WindowStart: deref(a.WindowStart), BlockedAt: deref(a.BlockedAt)}
}

func storedAddress(ip string, f policies.AddressFacts) storage.AddressLockout {
	return storage.AddressLockout{IP: ip, Failures: f.Failures, WindowStart: ref(f.WindowStart), BlockedAt: ref(f.BlockedAt)}
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func ref(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// LockoutFacts is an account's lockout as an administrator sees it.
type LockoutFacts struct {
	Account policies.AccountFacts
	State   policies.LockState
	Devices []DeviceLockoutFacts
}

// DeviceLockoutFacts is one device's part of LockoutFacts.
type DeviceLockoutFacts struct {
	DeviceID string
	Facts    policies.DeviceFacts
	State    policies.LockState
}

// DescribeLockout decides, under pol at now, the state of an account's
// stored lockout facts, for the admin API.
func DescribeLockout(pol policies.Lockout, now time.Time, a storage.AccountLockout, devices []storage.DeviceLockout) LockoutFacts {
	out := LockoutFacts{Account: accountFacts(a)}
	out.State = pol.AccountLock(now, out.Account)
	for _, d := range devices {
		f := deviceFacts(d)
		out.Devices = append(out.Devices, DeviceLockoutFacts{DeviceID: d.DeviceID, Facts: f, State: pol.DeviceLock(now, f)})
	}
	return out
}
