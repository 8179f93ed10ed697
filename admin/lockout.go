package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

// LockoutStore is the part of storage the lockout routes read and clear;
// *storage.Store has it. It is asked of Config.Store rather than given in
// a Config field of its own because the facts must be cleared in the
// transaction of the unlock's audit event, which is Store's.
type LockoutStore interface {
	Lockout(ctx context.Context, userID, deviceID string) (storage.AccountLockout, storage.DeviceLockout, error)
	LockLockout(ctx context.Context, userID, deviceID string) (storage.AccountLockout, storage.DeviceLockout, error)
	DeviceLockouts(ctx context.Context, userID string) ([]storage.DeviceLockout, error)
	Unlock(ctx context.Context, userID, deviceID string) (bool, error)
}

var _ LockoutStore = (*storage.Store)(nil)

// lockouts is the store's LockoutStore, nil when it has none or when there
// is no policy engine to decide what its facts mean: then neither lockout
// route is served.
func (h *handler) lockouts() LockoutStore {
	ls, ok := h.store.(LockoutStore)
	if !ok || h.policies == nil {
		return nil
	}
	return ls
}

// LockoutView is an account's lockout as the API and the CLI show it:
// stored facts decided under the global lockout policy at the time of
// the request. The global policy, not an application's: an account and
// its lock are shared by every application.
type LockoutView struct {
	UserID string `json:"user_id"`
	// Locked refuses every sign-in of the account, on every device.
	Locked    bool   `json:"locked"`
	Permanent bool   `json:"permanent"`
	Cause     string `json:"cause"`
	// Since and Until bound the lock in force; Until is null for a
	// permanent lock, both are null when the account is not locked.
	Since *time.Time `json:"since"`
	Until *time.Time `json:"until"`
	// Failures counts wrong credentials in the current failure window,
	// which opened at WindowStart.
	Failures        int        `json:"failures"`
	WindowStart     *time.Time `json:"window_start"`
	CaptchaRequired bool       `json:"captcha_required"`
	// DeviceLocks counts device locks in the cascade window.
	DeviceLocks int `json:"device_locks"`
	// Locks counts account locks since the last successful sign-in or
	// unlock, the one in force included: the escalation's count.
	Locks   int                 `json:"locks"`
	Devices []DeviceLockoutView `json:"devices"`
}

// DeviceLockoutView is one device's part of a LockoutView.
type DeviceLockoutView struct {
	DeviceID    string     `json:"device_id"`
	Locked      bool       `json:"locked"`
	Since       *time.Time `json:"since"`
	Until       *time.Time `json:"until"`
	Failures    int        `json:"failures"`
	WindowStart *time.Time `json:"window_start"`
}

// NewLockoutView decides, under pol at now, what the stored facts of an
// account and its devices mean.
func NewLockoutView(pol policies.Lockout, now time.Time, userID string, a storage.AccountLockout, devices []storage.DeviceLockout) LockoutView {
	facts := authn.DescribeLockout(pol, now, a, devices)
	af := facts.Account
	v := LockoutView{UserID: userID, Devices: []DeviceLockoutView{}, CaptchaRequired: pol.NeedsCaptcha(now, af)}
	v.Locked, v.Permanent, v.Since, v.Until = lockBounds(facts.State, af.LockedAt)
	if v.Locked {
		v.Cause = facts.State.Cause
	}
	v.Failures, v.WindowStart = current(now, af.Failures, af.WindowStart, pol.Window)
	v.DeviceLocks, _ = current(now, af.DeviceLocks, af.DeviceLocksStart, pol.User.ResetAfter)
	if !af.LockedAt.IsZero() {
		v.Locks = af.LocksBefore + 1
	}
	for _, d := range facts.Devices {
		dv := DeviceLockoutView{DeviceID: d.DeviceID}
		dv.Locked, _, dv.Since, dv.Until = lockBounds(d.State, d.Facts.LockedAt)
		dv.Failures, dv.WindowStart = current(now, d.Facts.Failures, d.Facts.WindowStart, pol.Device.ResetAfter)
		v.Devices = append(v.Devices, dv)
	}
	return v
}

// lockBounds is a lock state as shown: an ended lock shows as none, since
// its start no longer says anything the counts do not.
func lockBounds(s policies.LockState, since time.Time) (locked, permanent bool, from, until *time.Time) {
	if !s.Locked {
		return false, false, nil, nil
	}
	return true, s.Permanent, timeRef(since), timeRef(s.Until)
}

// current is a fixed-window counter as the next failure will find it: a
// window that has passed counts nothing, since that failure opens a new
// one counting 1 (policies.Lockout.Fail). Showing the stale count would
// make an account look closer to a lock than it is.
func current(now time.Time, n int, start time.Time, window policies.Duration) (int, *time.Time) {
	if start.IsZero() || now.Sub(start) >= time.Duration(window) {
		return 0, nil
	}
	return n, timeRef(start)
}

func timeRef(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// ReadLockoutView reads the facts of userID and its devices and decides
// them under pol at now.
func ReadLockoutView(ctx context.Context, ls LockoutStore, pol policies.Lockout, now time.Time, userID string) (LockoutView, error) {
	a, _, err := ls.Lockout(ctx, userID, "")
	if err != nil {
		return LockoutView{}, fmt.Errorf("read lockout of user %s: %w", userID, err)
	}
	devices, err := ls.DeviceLockouts(ctx, userID)
	if err != nil {
		return LockoutView{}, fmt.Errorf("list device lockouts of user %s: %w", userID, err)
	}
	return NewLockoutView(pol, now, userID, a, devices), nil
}

func (h *handler) getLockout(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	id := r.PathValue("id")
	if _, err := h.store.User(r.Context(), id); err != nil {
		return fmt.Errorf("get lockout: %w", err)
	}
	v, err := ReadLockoutView(r.Context(), h.lockouts(), h.policies.Global().Lockout, h.now(), id)
	if err != nil {
		return fmt.Errorf("get lockout: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, v)
	return nil
}

// unlockRequest is the body of POST /admin/users/{id}/unlock.
type unlockRequest struct {
	DeviceID idFilter `json:"device_id"`
}

// readUnlock reads the optional body. device_id null or "" is refused
// rather than read as "no device": a script whose variable came out empty
// would otherwise unlock every device of the account, not the one meant.
func readUnlock(w http.ResponseWriter, r *http.Request) (deviceID string, err error) {
	// The server's middleware reads a device_id query parameter as the
	// caller's own device; here it would be a device unlock sent where
	// it is not read, and unlock the whole account instead.
	if q := r.URL.Query(); len(q) > 0 {
		var fe fielderr.Error
		for _, name := range slices.Sorted(maps.Keys(q)) {
			fe.Add(name, "unknown query parameter; send device_id in the JSON body")
		}
		return "", badRequest(&fe, "invalid query: "+fe.Error(), fe.Fields...)
	}
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); errors.Is(err, io.EOF) {
		return "", nil // no body: the whole account
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{body, r.Body}
	var req *unlockRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return "", err
	}
	if req == nil {
		return "", badRequest(errors.New("null body"), "the request body must be a JSON object")
	}
	if !req.DeviceID.sent {
		return "", nil
	}
	if err := CheckDeviceID(req.DeviceID.id); err != nil {
		return "", fielderr.New("device_id", "%v; leave device_id out to unlock the whole account", err)
	}
	return req.DeviceID.id, nil
}

// CheckDeviceID says what is wrong with a device id to unlock: the rules
// of the ids the server accepts from clients (reqinfo), so that no id a
// lock can be stored under is refused, and none it cannot is looked for.
func CheckDeviceID(id string) error {
	if reqinfo.ValidDeviceID(id) {
		return nil
	}
	return fmt.Errorf("must be 1 to %d characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'", reqinfo.MaxDeviceIDLen)
}

// unlock clears the locks and counters of an account (every device too),
// or of one of its devices, and answers the state after.
func (h *handler) unlock(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	deviceID, err := readUnlock(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	var done Unlocked
	err = h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		if _, err := h.store.User(ctx, id); err != nil {
			return nil, err
		}
		var err error
		done, err = Unlock(ctx, h.lockouts(), h.policies.Global().Lockout, h.now(), id, deviceID)
		if errors.Is(err, ErrNoDeviceLockout) {
			return nil, &apiError{status: http.StatusNotFound, code: "not_found", cause: err,
				description: fmt.Sprintf("user %s has no lockout facts for device %q: it is not locked, and there is nothing to unlock", id, deviceID)}
		}
		if err != nil {
			return nil, err
		}
		return []audit.Event{done.Event()}, nil
	})
	if err != nil {
		return fmt.Errorf("unlock user %s: %w", id, err)
	}
	h.writeJSON(w, r, http.StatusOK, done.After)
	return nil
}

// ErrNoDeviceLockout is Unlock's answer for a device the account has no
// facts for: a device id mistyped, most likely, so it is an error rather
// than a success that freed nothing while the device meant stays locked.
var ErrNoDeviceLockout = errors.New("no lockout facts for the device")

// Unlocked is what an unlock found and left.
type Unlocked struct {
	UserID, DeviceID string
	Before, After    LockoutView
	// Cleared is whether there were facts to clear.
	Cleared bool
}

// Unlock is an administrator's unlock, for the API and the CLI alike:
// every lock and counter of the account and its devices goes, or with
// deviceID those of that device only (the account's own, its count of
// device locks included, stay). Run it in a transaction of the store
// (InTx), the one its audit event (Unlocked.Event) is recorded in; the
// caller has checked that the user exists. States are decided under pol,
// the global lockout policy, at now.
func Unlock(ctx context.Context, ls LockoutStore, pol policies.Lockout, now time.Time, userID, deviceID string) (Unlocked, error) {
	u := Unlocked{UserID: userID, DeviceID: deviceID}
	// The account's row lock, which a failure being counted holds from
	// read to write: without it, a failure read before the unlock could
	// write its facts back after it.
	if _, _, err := ls.LockLockout(ctx, userID, deviceID); err != nil {
		return u, fmt.Errorf("lock lockout of user %s: %w", userID, err)
	}
	var err error
	if u.Before, err = ReadLockoutView(ctx, ls, pol, now, userID); err != nil {
		return u, err
	}
	if u.Cleared, err = ls.Unlock(ctx, userID, deviceID); err != nil {
		return u, fmt.Errorf("unlock user %s: %w", userID, err)
	}
	if deviceID != "" && !u.Cleared {
		return u, fmt.Errorf("unlock device %q of user %s: %w", deviceID, userID, ErrNoDeviceLockout)
	}
	if u.After, err = ReadLockoutView(ctx, ls, pol, now, userID); err != nil {
		return u, err
	}
	return u, nil
}

// Event is the account.unlocked event of the unlock, without its actor.
// Its details say which locks it ended, so that the trail tells a rescue
// from a tidy-up of stale counters: cleared (whether there were facts),
// devices_unlocked (the devices it freed) and, for a whole-account
// unlock, account_locked.
func (u Unlocked) Event() audit.Event {
	freed := []string{}
	for _, d := range u.Before.Devices {
		if d.Locked && (u.DeviceID == "" || d.DeviceID == u.DeviceID) {
			freed = append(freed, d.DeviceID)
		}
	}
	details := map[string]any{"cleared": u.Cleared, "devices_unlocked": freed}
	if u.DeviceID == "" {
		details["account_locked"] = u.Before.Locked
	}
	return audit.Event{Type: audit.TypeAccountUnlocked, UserID: u.UserID, Device: u.DeviceID,
		Reason: UnlockReason, Details: details}
}

// UnlockReason is the audit reason of an administrator's unlock, the one
// of everything else an administrator ends.
const UnlockReason = authn.EndReasonAdmin
