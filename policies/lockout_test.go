package policies

import (
	"testing"
	"time"
)

var lt0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func lat(d string) time.Time { return lt0.Add(time.Duration(ld(d))) }

func ld(s string) Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration(v)
}

// failures applies n wrong passwords one minute apart from device dev
// ("" for none), starting at start, skipping those a lock refuses as the
// pipeline does, and returns the facts and what each failure started.
func failures(l Lockout, a AccountFacts, d DeviceFacts, start time.Time, n int, dev bool) (AccountFacts, DeviceFacts, []Failure) {
	var out []Failure
	for i := range n {
		now := start.Add(time.Duration(i) * time.Minute)
		if l.AccountLock(now, a).Locked || (dev && l.DeviceLock(now, d).Locked) {
			continue
		}
		f := l.Fail(now, a, d, dev)
		a, d = f.Account, f.Device
		out = append(out, f)
	}
	return a, d, out
}

func TestLockoutStateMachine(t *testing.T) {
	base := defaultLockout()
	withAction := func(a string) Lockout { l := base; l.Action = a; return l }
	escalating := base
	escalating.MaxTemporaryLocks = 1
	noDevice := base
	noDevice.Device.MaxFailures = 0

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"the fifth failure locks the account, for duration", func(t *testing.T) {
			a, _, fs := failures(noDevice, AccountFacts{}, DeviceFacts{}, lt0, 5, false)
			for i, f := range fs {
				if f.AccountLocked != (i == 4) {
					t.Fatalf("failure %d: AccountLocked = %v", i+1, f.AccountLocked)
				}
			}
			s := noDevice.AccountLock(lat("4m"), a)
			if !s.Locked || !s.Until.Equal(lat("19m")) || s.Cause != LockCauseFailures {
				t.Fatalf("state = %+v, want locked until 4m+15m by failures", s)
			}
			if noDevice.AccountLock(lat("19m"), a).Locked {
				t.Fatal("still locked when duration has passed")
			}
		}},
		{"failures outside the window start a new count", func(t *testing.T) {
			a, _, _ := failures(noDevice, AccountFacts{}, DeviceFacts{}, lt0, 4, false)
			f := noDevice.Fail(lat("10m"), a, DeviceFacts{}, false) // window opened at lt0
			if f.AccountLocked || f.Account.Failures != 1 || !f.Account.WindowStart.Equal(lat("10m")) {
				t.Fatalf("after the window: %+v", f)
			}
			f = noDevice.Fail(lat("9m59s"), a, DeviceFacts{}, false)
			if !f.AccountLocked {
				t.Fatal("the fifth failure just inside the window did not lock")
			}
		}},
		{"a changed duration recalculates an existing lock", func(t *testing.T) {
			a, _, _ := failures(noDevice, AccountFacts{}, DeviceFacts{}, lt0, 5, false)
			longer := noDevice
			longer.Duration = ld("1h")
			if s := longer.AccountLock(lat("30m"), a); !s.Locked || !s.Until.Equal(lat("64m")) {
				t.Fatalf("under a 1h duration: %+v, want locked until 4m+1h", s)
			}
			shorter := noDevice
			shorter.Duration = ld("5m")
			if shorter.AccountLock(lat("10m"), a).Locked {
				t.Fatal("under a 5m duration the lock from 4m is still on at 10m")
			}
		}},
		{"device failures lock the device, not the account", func(t *testing.T) {
			a, d, fs := failures(base, AccountFacts{}, DeviceFacts{}, lt0, 3, true)
			if !fs[2].DeviceLocked || fs[2].AccountLocked {
				t.Fatalf("third failure from a device: %+v", fs[2])
			}
			if !base.DeviceLock(lat("3m"), d).Locked || base.AccountLock(lat("3m"), a).Locked {
				t.Fatal("want the device locked and the account open")
			}
			if !base.DeviceLock(lat("16m"), d).Locked || base.DeviceLock(lat("17m"), d).Locked {
				t.Fatal("device lock from 2m does not end at 2m + lock_for")
			}
		}},
		{"three device locks cascade to the account", func(t *testing.T) {
			var a AccountFacts
			var locked []Failure
			for i := range 3 {
				var fs []Failure
				a, _, fs = failures(base, a, DeviceFacts{}, lt0.Add(time.Duration(i)*time.Hour), 3, true)
				locked = append(locked, fs[len(fs)-1])
			}
			if locked[0].AccountLocked || locked[1].AccountLocked || !locked[2].AccountLocked {
				t.Fatalf("cascade: %v %v %v", locked[0].AccountLocked, locked[1].AccountLocked, locked[2].AccountLocked)
			}
			s := base.AccountLock(lat("2h3m"), a)
			if !s.Locked || s.Cause != LockCauseCascade || !s.Until.Equal(lat("3h2m")) {
				t.Fatalf("cascade lock = %+v, want until 2h2m + user.lock_for", s)
			}
		}},
		{"device locks outside user.reset_after do not cascade", func(t *testing.T) {
			var a AccountFacts
			var last []Failure
			for i := range 3 {
				a, _, last = failures(base, a, DeviceFacts{}, lt0.Add(time.Duration(i)*13*time.Hour), 3, true)
			}
			if last[len(last)-1].AccountLocked {
				t.Fatal("device locks 26h apart cascaded")
			}
		}},
		{"user.lock_for 0 locks until an administrator unlocks", func(t *testing.T) {
			l := base
			l.User.LockFor = 0
			var a AccountFacts
			for i := range 3 {
				a, _, _ = failures(l, a, DeviceFacts{}, lt0.Add(time.Duration(i)*time.Hour), 3, true)
			}
			if s := l.AccountLock(lat("1000h"), a); !s.Locked || !s.Permanent {
				t.Fatalf("state = %+v, want permanent", s)
			}
		}},
		{"escalation: the lock after max_temporary_locks is permanent", func(t *testing.T) {
			l := escalating
			l.Device.MaxFailures = 0
			a, _, _ := failures(l, AccountFacts{}, DeviceFacts{}, lt0, 5, false)
			if s := l.AccountLock(lat("5m"), a); !s.Locked || s.Permanent {
				t.Fatalf("first lock = %+v, want temporary", s)
			}
			a, _, _ = failures(l, a, DeviceFacts{}, lat("1h"), 5, false)
			if s := l.AccountLock(lat("1000h"), a); !s.Locked || !s.Permanent {
				t.Fatalf("second lock = %+v, want permanent", s)
			}
			unlimited := l
			unlimited.MaxTemporaryLocks = 0
			if unlimited.AccountLock(lat("2h"), a).Locked {
				t.Fatal("turning escalation off does not end the escalated lock")
			}
		}},
		{"captcha action demands a captcha instead of locking", func(t *testing.T) {
			l := withAction(LockoutActionCaptcha)
			l.Device.MaxFailures = 0
			a, _, fs := failures(l, AccountFacts{}, DeviceFacts{}, lt0, 6, false)
			if !fs[4].CaptchaRequired || fs[5].CaptchaRequired || fs[4].AccountLocked {
				t.Fatalf("fifth = %+v, sixth = %+v", fs[4], fs[5])
			}
			if !l.NeedsCaptcha(lat("6m"), a) || l.AccountLock(lat("6m"), a).Locked {
				t.Fatal("want a captcha, no lock")
			}
			if l.NeedsCaptcha(lat("10m"), a) {
				t.Fatal("captcha still demanded after the window")
			}
		}},
		{"zero max_failures turns account lockout off", func(t *testing.T) {
			l := noDevice
			l.MaxFailures = 0
			_, _, fs := failures(l, AccountFacts{}, DeviceFacts{}, lt0, 50, false)
			for _, f := range fs {
				if f.AccountLocked {
					t.Fatal("locked with lockout off")
				}
			}
		}},
		{"an address is blocked after ip.max_failures and counts again after the block", func(t *testing.T) {
			l := base
			l.IP.MaxFailures = 3
			var a AddressFacts
			var blocked bool
			for i := range 3 {
				a, blocked = l.FailAddress(lt0.Add(time.Duration(i)*time.Second), a)
			}
			if !blocked || !l.AddressBlock(lat("1m"), a).Locked {
				t.Fatal("third failure did not block the address")
			}
			a, blocked = l.FailAddress(lat("16m"), a)
			if blocked || a.Failures != 1 || l.AddressBlock(lat("16m"), a).Locked {
				t.Fatalf("after the block: %+v", a)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestLockoutValidation(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Lockout)
		field string
	}{
		{"negative max_failures", func(l *Lockout) { l.MaxFailures = -1 }, "lockout.max_failures"},
		{"zero window", func(l *Lockout) { l.Window = 0 }, "lockout.window"},
		{"unknown action", func(l *Lockout) { l.Action = "ban" }, "lockout.action"},
		{"zero device lock", func(l *Lockout) { l.Device.LockFor = 0 }, "lockout.device.lock_for"},
		{"negative user lock", func(l *Lockout) { l.User.LockFor = -1 }, "lockout.user.lock_for"},
		{"zero ip window", func(l *Lockout) { l.IP.Window = 0 }, "lockout.ip.window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			tt.edit(&p.Lockout)
			_, err := p.Validate()
			fields, ok := errorsAs(err)
			if !ok || len(fields) != 1 || fields[0].Field != tt.field {
				t.Fatalf("Validate = %v, want one problem naming %s", err, tt.field)
			}
		})
	}
}
