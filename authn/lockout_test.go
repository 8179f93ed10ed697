package authn

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const lockPass = "correct horse battery"

// lockoutEnv is the pipeline with the lockout on, over one backend, with
// alice (who has a browser session) and a disabled bob.
type lockoutEnv struct {
	t        *testing.T
	st       *storage.Store
	clock    *storagetest.Clock
	recorder *audit.Recorder
	pipeline *Pipeline
	mu       sync.Mutex
	pol      policies.Policy
	notices  []LockNotice
	alice    *storage.User
}

func newLockoutEnv(t *testing.T, dbURL string, edit func(*policies.Lockout)) *lockoutEnv {
	t.Helper()
	e := &lockoutEnv{t: t, clock: newClock(), pol: policies.Defaults()}
	if edit != nil {
		edit(&e.pol.Lockout)
	}
	e.st = storagetest.OpenWithClock(t, dbURL, e.clock.Now)
	e.recorder = audit.NewRecorder(e.st, nil, e.clock.Now)
	accounts := NewAccounts(AccountsConfig{Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Recorder: e.recorder, Now: e.clock.Now})
	e.pipeline = NewPipeline(e.st, cheapArgon2, slog.New(slog.DiscardHandler), e.recorder,
		WithPolicies(func(string) policies.Policy { e.mu.Lock(); defer e.mu.Unlock(); return e.pol }),
		WithClock(e.clock.Now),
		WithLockout(e.st, accounts, func(_ context.Context, n LockNotice) { e.mu.Lock(); e.notices = append(e.notices, n); e.mu.Unlock() }))
	var err error
	if e.alice, err = accounts.Create(context.Background(), UserSpec{Username: "alice", Password: lockPass}, Actor{}); err != nil {
		t.Fatal(err)
	}
	addUser(t, &countingStore{Store: e.st}, cheapArgon2, "bob", lockPass, true)
	now := e.clock.Now()
	if err := e.st.CreateBrowserSession(context.Background(), &storage.BrowserSession{ID: uuid.NewString(), UserID: e.alice.ID,
		AuthTime: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *lockoutEnv) try(username, password, device string) Outcome {
	e.t.Helper()
	out, err := e.pipeline.PasswordLogin(context.Background(), Attempt{Username: username, Password: password, DeviceID: device, IP: "192.0.2.7", ClientID: "app"})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *lockoutEnv) events(typ string) []audit.Event {
	e.t.Helper()
	evs, _, err := e.recorder.Query(context.Background(), audit.Query{Type: typ, Limit: 500})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *lockoutEnv) failures() int {
	e.t.Helper()
	a, _, err := e.st.Lockout(context.Background(), e.alice.ID, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Failures
}

func TestLockoutThroughThePipeline(t *testing.T) {
	noDevice := func(l *policies.Lockout) { l.Device.MaxFailures = 0 }
	tests := []struct {
		name string
		edit func(*policies.Lockout)
		run  func(t *testing.T, e *lockoutEnv)
	}{
		{"the fifth wrong password locks; a right one is then refused alike and not counted", noDevice, func(t *testing.T, e *lockoutEnv) {
			for i := range 4 {
				if out := e.try("alice", "wrong", ""); out.Decision.Reason != ReasonBadPassword {
					t.Fatalf("failure %d: %+v", i+1, out.Decision)
				}
			}
			out := e.try("alice", "wrong", "")
			until := e.clock.Now().Add(15 * time.Minute)
			if out.Reason != ReasonBadPassword || out.Decision.Reason != ReasonLocked || !out.Decision.Until.Equal(until) {
				t.Fatalf("fifth failure: reason %s, decision %+v; want counted and locked until %v", out.Reason, out.Decision, until)
			}
			for _, pw := range []string{lockPass, "wrong"} {
				out = e.try("alice", pw, "")
				if out.OK || out.Decision.Reason != ReasonLocked || !out.Decision.Until.Equal(until) {
					t.Fatalf("while locked, password %q: %+v", pw, out)
				}
			}
			if got := e.failures(); got != 0 {
				t.Fatalf("stored failures after the lock = %d, want the count restarted", got)
			}
			if got := len(e.events(audit.TypeAccountLocked)); got != 1 {
				t.Fatalf("account.locked events = %d", got)
			}
			if len(e.notices) != 1 || e.notices[0].User.ID != e.alice.ID || e.notices[0].IP != "192.0.2.7" {
				t.Fatalf("notices = %+v", e.notices)
			}
			if ss, _ := e.st.UserBrowserSessions(context.Background(), e.alice.ID); len(ss) != 0 {
				t.Fatalf("the lock left %d sessions", len(ss))
			}
			e.clock.Advance(15 * time.Minute)
			if out := e.try("alice", lockPass, ""); !out.OK {
				t.Fatalf("after the lock: %+v", out)
			}
		}},
		{"a success resets the count", noDevice, func(t *testing.T, e *lockoutEnv) {
			for range 4 {
				e.try("alice", "wrong", "")
			}
			if out := e.try("alice", lockPass, ""); !out.OK {
				t.Fatal(out)
			}
			if got := e.failures(); got != 0 {
				t.Fatalf("failures after a success = %d", got)
			}
			if out := e.try("alice", "wrong", ""); out.Decision.Reason != ReasonBadPassword {
				t.Fatalf("first failure after a success: %+v", out.Decision)
			}
		}},
		{"other refusals are not counted", noDevice, func(t *testing.T, e *lockoutEnv) {
			for range 10 {
				e.try("bob", "wrong", "") // disabled
			}
			if a, _, _ := e.st.Lockout(context.Background(), e.bobID(t), ""); a.Failures != 0 {
				t.Fatalf("a disabled account's refusals counted %d", a.Failures)
			}
		}},
		{"unknown accounts count only against the address", func(l *policies.Lockout) { l.IP.MaxFailures = 3 }, func(t *testing.T, e *lockoutEnv) {
			for range 3 {
				if out := e.try("nobody", "wrong", ""); out.Decision.Reason != ReasonUnknownUser {
					t.Fatalf("%+v", out.Decision)
				}
			}
			out := e.try("alice", lockPass, "")
			if out.OK || out.Decision.Reason != ReasonIPBlocked || out.Decision.Until.IsZero() {
				t.Fatalf("from a blocked address: %+v", out.Decision)
			}
			if got := len(e.events(audit.TypeAddressBlocked)); got != 1 {
				t.Fatalf("ip.blocked events = %d", got)
			}
			e.clock.Advance(15 * time.Minute)
			if out := e.try("alice", lockPass, ""); !out.OK {
				t.Fatalf("after the block: %+v", out.Decision)
			}
		}},
		{"device locks cascade to the account", nil, func(t *testing.T, e *lockoutEnv) {
			for range 2 {
				e.try("alice", "wrong", "phone")
			}
			if out := e.try("alice", "wrong", "phone"); out.Decision.Reason != ReasonDeviceLocked {
				t.Fatalf("third failure from a device: %+v", out.Decision)
			}
			if out := e.try("alice", lockPass, "phone"); out.OK || out.Decision.Reason != ReasonDeviceLocked {
				t.Fatalf("right password from the locked device: %+v", out.Decision)
			}
			if out := e.try("alice", lockPass, "laptop"); !out.OK {
				t.Fatalf("right password from another device: %+v", out.Decision)
			}
			// A slow attack, three tries per device, each device after the
			// account's failure window has passed, so only the cascade
			// catches it (the success above started every count again).
			for _, dev := range []string{"tablet", "watch", "ring"} {
				e.clock.Advance(11 * time.Minute)
				for range 3 {
					e.try("alice", "wrong", dev)
				}
			}
			out := e.try("alice", lockPass, "laptop")
			if out.OK || out.Decision.Reason != ReasonLocked {
				t.Fatalf("after three device locks: %+v", out.Decision)
			}
			locked := e.events(audit.TypeAccountLocked)
			if len(locked) != 1 || locked[0].Details["cause"] != policies.LockCauseCascade || locked[0].Device != "ring" {
				t.Fatalf("account.locked = %+v", locked)
			}
			if got := len(e.events(audit.TypeDeviceLocked)); got != 4 {
				t.Fatalf("device.locked events = %d, want 4", got)
			}
		}},
		{"captcha action asks for a captcha before the password", func(l *policies.Lockout) {
			l.Device.MaxFailures = 0
			l.Action = policies.LockoutActionCaptcha
		}, func(t *testing.T, e *lockoutEnv) {
			for range 5 {
				e.try("alice", "wrong", "")
			}
			out := e.try("alice", lockPass, "")
			if out.OK || out.Decision.Verdict != Challenge || out.Decision.Challenge != ChallengeCaptcha {
				t.Fatalf("after the threshold: %+v", out.Decision)
			}
			if got := e.failures(); got != 5 {
				t.Fatalf("a challenged attempt was counted: %d", got)
			}
			out, err := e.pipeline.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: lockPass, CaptchaSolved: true})
			if err != nil || !out.OK {
				t.Fatalf("with the captcha solved: %+v, %v", out, err)
			}
		}},
		{"a longer duration set while locked lengthens the lock", noDevice, func(t *testing.T, e *lockoutEnv) {
			for range 5 {
				e.try("alice", "wrong", "")
			}
			e.mu.Lock()
			e.pol.Lockout.Duration = policies.Duration(time.Hour)
			e.mu.Unlock()
			e.clock.Advance(30 * time.Minute)
			if out := e.try("alice", lockPass, ""); out.OK || out.Decision.Reason != ReasonLocked {
				t.Fatalf("30m into a lock made 15m then set to 1h: %+v", out.Decision)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Backends makes a fresh database of each kind per case.
			for _, b := range storagetest.Backends(t) {
				t.Run(b.Name, func(t *testing.T) { tt.run(t, newLockoutEnv(t, b.URL, tt.edit)) })
			}
		})
	}
}

func (e *lockoutEnv) bobID(t *testing.T) string {
	u, err := e.st.UserByUsername(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// Fifty wrong passwords at once lock the account after exactly
// max_failures counted failures, on each backend.
func TestParallelFailuresLockAtExactlyTheThreshold(t *testing.T) {
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newLockoutEnv(t, b.URL, func(l *policies.Lockout) { l.Device.MaxFailures = 0 })
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() { e.try("alice", "wrong", "") })
			}
			wg.Wait()
			counted := 0
			for _, ev := range e.events(audit.TypeLoginFailed) {
				if ev.Reason == ReasonBadPassword {
					counted++
				}
			}
			if counted != 5 || len(e.events(audit.TypeAccountLocked)) != 1 {
				t.Fatalf("counted %d failures and %d locks, want exactly 5 and 1", counted, len(e.events(audit.TypeAccountLocked)))
			}
		})
	}
}

// The password change page confirms the current password through the
// pipeline: what refused it is said as such, not as a wrong password.
func TestConfirmFailureMessage(t *testing.T) {
	until := time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC)
	tests := []struct {
		d    Decision
		want string
	}{
		{Denied(ReasonBadPassword, time.Time{}), msgCurrentWrong},
		{Denied(ReasonDisabled, time.Time{}), msgCurrentWrong},
		{Denied(ReasonLocked, until), FailureMessage(Denied(ReasonLocked, until))},
		{Denied(ReasonIPRule, time.Time{}), FailureMessage(Denied(ReasonIPRule, time.Time{}))},
		{Challenged(ChallengeCaptcha, ReasonCaptchaRequired), msgConfirmChallenge},
	}
	for _, tt := range tests {
		if got := confirmFailureMessage(tt.d); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.d, got, tt.want)
		}
		if tt.d.Reason == ReasonLocked && !strings.Contains(tt.want, "15:04 UTC") {
			t.Errorf("locked message without its end: %q", tt.want)
		}
	}
}
