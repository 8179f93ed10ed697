package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

func (s brokenStore) Lockout(context.Context, string, string) (storage.AccountLockout, storage.DeviceLockout, error) {
	return storage.AccountLockout{}, storage.DeviceLockout{}, s.fail("read lockout")
}
func (s brokenStore) LockLockout(context.Context, string, string) (storage.AccountLockout, storage.DeviceLockout, error) {
	return storage.AccountLockout{}, storage.DeviceLockout{}, s.fail("lock lockout")
}
func (s brokenStore) DeviceLockouts(context.Context, string) ([]storage.DeviceLockout, error) {
	return nil, s.fail("list device lockouts")
}
func (s brokenStore) Unlock(context.Context, string, string) (bool, error) {
	return false, s.fail("unlock")
}

// lockedDevice is the device seedLockout locks.
const lockedDevice = "phone-1"

// saveLockout writes lockout facts as the sign-in pipeline does: under the
// account's row lock, in one transaction.
func saveLockout(t *testing.T, store *storage.Store, a storage.AccountLockout, devices ...storage.DeviceLockout) {
	t.Helper()
	err := store.InTx(t.Context(), func(ctx context.Context) error {
		if _, _, err := store.LockLockout(ctx, a.UserID, ""); err != nil {
			return err
		}
		if err := store.SaveLockout(ctx, a, nil); err != nil {
			return err
		}
		for i := range devices {
			if err := store.SaveLockout(ctx, a, &devices[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("save lockout of %s: %v", a.UserID, err)
	}
}

// seedLockout locks userID, and lockedDevice of it, since ten minutes ago,
// and gives it a device with failures: what the OpenAPI calls read and
// unlock.
func seedLockout(t *testing.T, store *storage.Store, userID string) {
	t.Helper()
	at := time.Now().Add(-10 * time.Minute).UTC()
	saveLockout(t, store,
		storage.AccountLockout{UserID: userID, LockedAt: &at, Cause: policies.LockCauseFailures, DeviceLocks: 1, DeviceLocksStart: &at},
		storage.DeviceLockout{UserID: userID, DeviceID: lockedDevice, LockedAt: &at},
		storage.DeviceLockout{UserID: userID, DeviceID: "tablet", Failures: 2, WindowStart: &at})
}

// lockoutCalls exercise the lockout routes beyond their shared cases, on
// the seeds of seed(); they run before the shared successes.
func lockoutCalls() []apiCall {
	padded := func(open, close string) string { return open + strings.Repeat(" ", maxBodyBytes) + close }
	lockout, unlock := "/admin/users/"+sessionUserID+"/lockout", "/admin/users/"+sessionUserID+"/unlock"
	return []apiCall{
		{name: "lockout, locked", method: "GET", path: lockout, token: adminToken, status: 200, docAccepts: true},
		{name: "lockout of missing user", method: "GET", path: missingUser + "/lockout", token: adminToken, status: 404, docAccepts: true},
		{name: "unlock missing user", method: "POST", path: missingUser + "/unlock", token: adminToken, status: 404, docAccepts: true},
		{name: "unlock, device without facts", method: "POST", path: unlock, token: adminToken,
			body: `{"device_id":"never-failed"}`, status: 404, docAccepts: true},
		{name: "unlock, empty device_id", method: "POST", path: unlock, token: adminToken, body: `{"device_id":""}`, status: 422},
		{name: "unlock, null device_id", method: "POST", path: unlock, token: adminToken, body: `{"device_id":null}`, status: 422},
		{name: "unlock, device_id with a space", method: "POST", path: unlock, token: adminToken, body: `{"device_id":"phone 1"}`, status: 422},
		{name: "unlock, device_id too long", method: "POST", path: unlock, token: adminToken,
			body: `{"device_id":"` + strings.Repeat("d", 129) + `"}`, status: 422},
		{name: "unlock, device_id not a string", method: "POST", path: unlock, token: adminToken, body: `{"device_id":7}`, status: 400},
		{name: "unlock, unknown field", method: "POST", path: unlock, token: adminToken, body: `{"device":"phone-1"}`, status: 400},
		{name: "unlock, null body", method: "POST", path: unlock, token: adminToken, body: `null`, status: 400},
		{name: "unlock, not an object", method: "POST", path: unlock, token: adminToken, body: `["phone-1"]`, status: 400},
		// The document cannot forbid undeclared query parameters, so it
		// accepts what the API refuses; the description says so.
		{name: "unlock, device_id in the query", method: "POST", path: unlock + "?device_id=" + lockedDevice, token: adminToken,
			status: 400, docAccepts: true},
		{name: "unlock, too large", method: "POST", path: unlock, token: adminToken, body: padded(`{`, `}`), status: 413, docAccepts: true},
		{name: "unlock, text/plain", method: "POST", path: unlock, token: adminToken, contentType: "text/plain",
			body: `{"device_id":"phone-1"}`, status: 415},
		{name: "unlock a device", method: "POST", path: unlock, token: adminToken,
			body: `{"device_id":"` + lockedDevice + `"}`, status: 200, docAccepts: true},
		{name: "unlock the account, {}", method: "POST", path: unlock, token: adminToken, body: `{}`, status: 200, docAccepts: true},
		{name: "lockout, unlocked", method: "GET", path: lockout, token: adminToken, status: 200, docAccepts: true},
	}
}

// lockoutState is LockoutView as a client decodes it.
type lockoutState struct {
	UserID          string     `json:"user_id"`
	Locked          bool       `json:"locked"`
	Permanent       bool       `json:"permanent"`
	Cause           string     `json:"cause"`
	Since           *time.Time `json:"since"`
	Until           *time.Time `json:"until"`
	Failures        int        `json:"failures"`
	WindowStart     *time.Time `json:"window_start"`
	CaptchaRequired bool       `json:"captcha_required"`
	DeviceLocks     int        `json:"device_locks"`
	Locks           int        `json:"locks"`
	Devices         []struct {
		DeviceID    string     `json:"device_id"`
		Locked      bool       `json:"locked"`
		Since       *time.Time `json:"since"`
		Until       *time.Time `json:"until"`
		Failures    int        `json:"failures"`
		WindowStart *time.Time `json:"window_start"`
	} `json:"devices"`
}

// deviceIDs lists the devices of s, with "*" after each locked one.
func (s lockoutState) deviceIDs() []string {
	var out []string
	for _, d := range s.Devices {
		id := d.DeviceID
		if d.Locked {
			id += "*"
		}
		out = append(out, id)
	}
	return out
}

func sameTime(a *time.Time, b time.Time) bool {
	if a == nil || b.IsZero() {
		return a == nil && b.IsZero()
	}
	return a.Equal(b)
}

// TestLockoutState writes facts as the pipeline would and reads them back
// under several global policies: the state follows the policy in force,
// since only facts are stored.
func TestLockoutState(t *testing.T) {
	const uid = "0190a4b6-2222-7000-8000-000000000001"
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			store := storagetest.Open(t, b.URL)
			e := newEnvWith(t, store, store)
			now := time.Now().UTC().Truncate(time.Second)
			e.handler.(*handler).now = func() time.Time { return now }
			createUser(t, store, uid)
			at := now.Add(-10 * time.Minute)
			recent := now.Add(-time.Minute)
			stale := now.Add(-20 * time.Minute)
			saveLockout(t, store,
				storage.AccountLockout{UserID: uid, LockedAt: &at, Cause: policies.LockCauseFailures, LocksBefore: 1, DeviceLocks: 1, DeviceLocksStart: &at},
				storage.DeviceLockout{UserID: uid, DeviceID: "phone", LockedAt: &at},
				storage.DeviceLockout{UserID: uid, DeviceID: "tablet", Failures: 2, WindowStart: &recent},
				storage.DeviceLockout{UserID: uid, DeviceID: "watch", Failures: 2, WindowStart: &stale})

			tests := []struct {
				name      string
				patch     string // of the global policy, applied before the GET and kept
				locked    bool
				permanent bool
				until     time.Time
				phone     time.Time // until of the phone's lock
			}{
				{name: "defaults", patch: `{}`, locked: true, until: at.Add(15 * time.Minute), phone: at.Add(15 * time.Minute)},
				{name: "longer duration moves until", patch: `{"lockout":{"duration":"1h"}}`, locked: true, until: at.Add(time.Hour), phone: at.Add(15 * time.Minute)},
				{name: "longer device lock", patch: `{"lockout":{"device":{"lock_for":"30m"}}}`, locked: true, until: at.Add(time.Hour), phone: at.Add(30 * time.Minute)},
				{name: "escalated to permanent", patch: `{"lockout":{"max_temporary_locks":1}}`, locked: true, permanent: true, phone: at.Add(30 * time.Minute)},
				{name: "shorter duration ends the lock", patch: `{"lockout":{"max_temporary_locks":0,"duration":"5m","device":{"lock_for":"5m"}}}`},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					wantStatus(t, e.doAs(t, "PATCH", "/admin/policies", mergePatchType, tt.patch), http.StatusOK)
					got := decode[lockoutState](t, e.do(t, "GET", "/admin/users/"+uid+"/lockout", adminToken, ""))
					if got.UserID != uid || got.Locked != tt.locked || got.Permanent != tt.permanent || !sameTime(got.Until, tt.until) {
						t.Errorf("locked %v permanent %v until %v, want %v %v %v", got.Locked, got.Permanent, got.Until, tt.locked, tt.permanent, tt.until)
					}
					wantSince, wantCause := time.Time{}, ""
					if tt.locked {
						wantSince, wantCause = at, policies.LockCauseFailures
					}
					if !sameTime(got.Since, wantSince) || got.Cause != wantCause {
						t.Errorf("since %v cause %q, want %v %q", got.Since, got.Cause, wantSince, wantCause)
					}
					if got.Locks != 2 || got.DeviceLocks != 1 || got.Failures != 0 || got.WindowStart != nil || got.CaptchaRequired {
						t.Errorf("counters = %+v", got)
					}
					wantDevices := []string{"phone*", "tablet", "watch"}
					if tt.phone.IsZero() {
						wantDevices[0] = "phone"
					}
					if ids := got.deviceIDs(); !slices.Equal(ids, wantDevices) {
						t.Fatalf("devices = %v, want %v", ids, wantDevices)
					}
					phone, tablet, watch := got.Devices[0], got.Devices[1], got.Devices[2]
					if !sameTime(phone.Until, tt.phone) || phone.Locked != !tt.phone.IsZero() {
						t.Errorf("phone = %+v, want until %v", phone, tt.phone)
					}
					if tablet.Failures != 2 || !sameTime(tablet.WindowStart, recent) || tablet.Since != nil || tablet.Until != nil {
						t.Errorf("tablet = %+v, want 2 failures since %v", tablet, recent)
					}
					// The watch's window has passed: its next failure counts 1.
					if watch.Failures != 0 || watch.WindowStart != nil {
						t.Errorf("watch = %+v, want no failures in a window", watch)
					}
				})
			}
			if got := auditEvents(t, store, audit.TypeAccountUnlocked); len(got) != 0 {
				t.Errorf("reading recorded %+v", got)
			}
		})
	}
}

// unlockDetails is the details of an account.unlocked event.
type unlockDetails struct {
	Cleared         bool     `json:"cleared"`
	DevicesUnlocked []string `json:"devices_unlocked"`
	AccountLocked   *bool    `json:"account_locked"`
	AdminClientID   string   `json:"admin_client_id"`
}

func TestUnlock(t *testing.T) {
	const uid = "0190a4b6-2222-7000-8000-000000000002"
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			store := storagetest.Open(t, b.URL)
			e := newEnvWith(t, store, store)
			createUser(t, store, uid)
			seedLockout(t, store, uid)
			path := "/admin/users/" + uid
			state := func() lockoutState {
				t.Helper()
				return decode[lockoutState](t, e.do(t, "GET", path+"/lockout", adminToken, ""))
			}
			events := func() []storage.AuditEvent {
				t.Helper()
				return auditEvents(t, store, audit.TypeAccountUnlocked)
			}
			wantEvent := func(t *testing.T, device string, want unlockDetails) {
				t.Helper()
				rows := events()
				if len(rows) == 0 {
					t.Fatal("no account.unlocked event")
				}
				ev := rows[0]
				if ev.Actor != "root" || ev.UserID != uid || ev.Device != device || ev.Reason != "admin" || ev.Outcome != audit.OutcomeSuccess {
					t.Errorf("event = %+v", ev)
				}
				var got unlockDetails
				if err := json.Unmarshal([]byte(ev.Details), &got); err != nil {
					t.Fatal(err)
				}
				want.AdminClientID = "ops-cli"
				if got.Cleared != want.Cleared || !slices.Equal(got.DevicesUnlocked, want.DevicesUnlocked) ||
					(got.AccountLocked == nil) != (want.AccountLocked == nil) ||
					got.AccountLocked != nil && *got.AccountLocked != *want.AccountLocked || got.AdminClientID != want.AdminClientID {
					t.Errorf("details = %s, want %+v", ev.Details, want)
				}
			}
			yes, no := true, false

			// Refused requests first: each changes nothing and records
			// nothing.
			refused := []struct {
				name, token, path, body string
				status                  int
				field                   string // named in fields; "" for none
			}{
				{name: "no token", path: path + "/unlock", status: http.StatusUnauthorized},
				{name: "no admin scope", token: plainToken, path: path + "/unlock", status: http.StatusForbidden},
				{name: "unknown user", token: adminToken, path: missingUser + "/unlock", status: http.StatusNotFound},
				{name: "device without facts", token: adminToken, path: path + "/unlock", body: `{"device_id":"never-failed"}`, status: http.StatusNotFound},
				{name: "empty device_id", token: adminToken, path: path + "/unlock", body: `{"device_id":""}`, status: http.StatusUnprocessableEntity, field: "device_id"},
				{name: "null device_id", token: adminToken, path: path + "/unlock", body: `{"device_id":null}`, status: http.StatusUnprocessableEntity, field: "device_id"},
				{name: "device_id with a slash", token: adminToken, path: path + "/unlock", body: `{"device_id":"a/b"}`, status: http.StatusUnprocessableEntity, field: "device_id"},
				{name: "device_id too long", token: adminToken, path: path + "/unlock", body: `{"device_id":"` + strings.Repeat("d", 129) + `"}`, status: http.StatusUnprocessableEntity, field: "device_id"},
				{name: "device_id a number", token: adminToken, path: path + "/unlock", body: `{"device_id":1}`, status: http.StatusBadRequest, field: "device_id"},
				{name: "unknown field", token: adminToken, path: path + "/unlock", body: `{"device_id":"phone-1","all":true}`, status: http.StatusBadRequest, field: "all"},
				{name: "device_id in the query", token: adminToken, path: path + "/unlock?device_id=" + lockedDevice, status: http.StatusBadRequest, field: "device_id"},
				{name: "null body", token: adminToken, path: path + "/unlock", body: `null`, status: http.StatusBadRequest},
			}
			before := state()
			if !before.Locked || !slices.Equal(before.deviceIDs(), []string{lockedDevice + "*", "tablet"}) {
				t.Fatalf("seeded state = %+v", before)
			}
			for _, tt := range refused {
				t.Run(tt.name, func(t *testing.T) {
					rec := e.do(t, "POST", tt.path, tt.token, tt.body)
					wantStatus(t, rec, tt.status)
					if names := fieldNames(t, rec); tt.field != "" && !slices.Equal(names, []string{tt.field}) {
						t.Errorf("fields = %v, want %s; body %s", names, tt.field, rec.Body)
					}
					if after := state(); !sameJSONValue(t, after, before) {
						t.Errorf("state changed:\nbefore %+v\nafter  %+v", before, after)
					}
					if got := events(); len(got) != 0 {
						t.Errorf("recorded %+v", got)
					}
				})
			}
			for _, name := range []string{"no token", "no admin scope"} {
				t.Run("GET lockout, "+name, func(t *testing.T) {
					token := ""
					if name == "no admin scope" {
						token = plainToken
					}
					want := http.StatusUnauthorized
					if token != "" {
						want = http.StatusForbidden
					}
					wantStatus(t, e.do(t, "GET", path+"/lockout", token, ""), want)
				})
			}
			t.Run("GET lockout, unknown user", func(t *testing.T) {
				rec := e.do(t, "GET", missingUser+"/lockout", adminToken, "")
				wantStatus(t, rec, http.StatusNotFound)
				if got := decode[errorBody](t, rec).Error; got != "not_found" {
					t.Errorf("error = %q", got)
				}
			})

			t.Run("one device", func(t *testing.T) {
				rec := e.do(t, "POST", path+"/unlock", adminToken, `{"device_id":"`+lockedDevice+`"}`)
				wantStatus(t, rec, http.StatusOK)
				got := decode[lockoutState](t, rec)
				if !got.Locked || !slices.Equal(got.deviceIDs(), []string{"tablet"}) || got.DeviceLocks != 1 {
					t.Errorf("after = %+v, want the account locked, only the tablet left, its device lock count kept", got)
				}
				if now := state(); !sameJSONValue(t, now, got) {
					t.Errorf("answered %+v, GET says %+v", got, now)
				}
				wantEvent(t, lockedDevice, unlockDetails{Cleared: true, DevicesUnlocked: []string{lockedDevice}})
			})
			t.Run("the same device again", func(t *testing.T) {
				wantStatus(t, e.do(t, "POST", path+"/unlock", adminToken, `{"device_id":"`+lockedDevice+`"}`), http.StatusNotFound)
				if n := len(events()); n != 1 {
					t.Errorf("%d events, want the first unlock's only", n)
				}
			})
			t.Run("the account", func(t *testing.T) {
				rec := e.do(t, "POST", path+"/unlock", adminToken, "")
				wantStatus(t, rec, http.StatusOK)
				got := decode[lockoutState](t, rec)
				if got.Locked || got.Since != nil || got.Until != nil || got.Locks != 0 || got.DeviceLocks != 0 || len(got.Devices) != 0 || got.Devices == nil {
					t.Errorf("after = %+v, want nothing left", got)
				}
				wantEvent(t, "", unlockDetails{Cleared: true, DevicesUnlocked: []string{}, AccountLocked: &yes})
			})
			t.Run("the account again", func(t *testing.T) {
				wantStatus(t, e.do(t, "POST", path+"/unlock", adminToken, `{}`), http.StatusOK)
				if n := len(events()); n != 3 {
					t.Errorf("%d events, want 3", n)
				}
				wantEvent(t, "", unlockDetails{Cleared: false, DevicesUnlocked: []string{}, AccountLocked: &no})
			})
		})
	}
}

// sameJSONValue compares two values by their JSON encoding.
func sameJSONValue(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// TestNewLockoutView decides facts under policies without a database.
func TestNewLockoutView(t *testing.T) {
	now := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	def := policies.Defaults().Lockout
	captcha := def
	captcha.Action = policies.LockoutActionCaptcha
	forever := def
	forever.User.LockFor = 0
	tests := []struct {
		name    string
		pol     policies.Lockout
		a       storage.AccountLockout
		devices []storage.DeviceLockout
		want    LockoutView
	}{
		{name: "no facts", pol: def, want: LockoutView{}},
		{name: "failures in the window", pol: def,
			a:    storage.AccountLockout{Failures: 3, WindowStart: ago(time.Minute)},
			want: LockoutView{Failures: 3, WindowStart: ago(time.Minute)}},
		{name: "failures of a past window", pol: def,
			a:    storage.AccountLockout{Failures: 4, WindowStart: ago(10 * time.Minute)},
			want: LockoutView{}},
		{name: "locked for failures", pol: def,
			a: storage.AccountLockout{LockedAt: ago(time.Minute), Cause: policies.LockCauseFailures},
			want: LockoutView{Locked: true, Cause: policies.LockCauseFailures, Since: ago(time.Minute),
				Until: ago(time.Minute - 15*time.Minute), Locks: 1}},
		{name: "lock ended", pol: def,
			a:    storage.AccountLockout{LockedAt: ago(time.Hour), Cause: policies.LockCauseFailures, LocksBefore: 2},
			want: LockoutView{Locks: 3}},
		{name: "cascade lasts user.lock_for", pol: def,
			a: storage.AccountLockout{LockedAt: ago(time.Minute), Cause: policies.LockCauseCascade},
			want: LockoutView{Locked: true, Cause: policies.LockCauseCascade, Since: ago(time.Minute),
				Until: ago(time.Minute - time.Hour), Locks: 1}},
		{name: "cascade until unlocked", pol: forever,
			a:    storage.AccountLockout{LockedAt: ago(48 * time.Hour), Cause: policies.LockCauseCascade},
			want: LockoutView{Locked: true, Permanent: true, Cause: policies.LockCauseCascade, Since: ago(48 * time.Hour), Locks: 1}},
		{name: "captcha demanded", pol: captcha,
			a:    storage.AccountLockout{Failures: 5, WindowStart: ago(time.Minute)},
			want: LockoutView{Failures: 5, WindowStart: ago(time.Minute), CaptchaRequired: true}},
		{name: "device locks in the cascade window", pol: def,
			a:    storage.AccountLockout{DeviceLocks: 2, DeviceLocksStart: ago(time.Hour)},
			want: LockoutView{DeviceLocks: 2}},
		{name: "device locks of a past cascade window", pol: def,
			a:    storage.AccountLockout{DeviceLocks: 2, DeviceLocksStart: ago(25 * time.Hour)},
			want: LockoutView{}},
		{name: "devices", pol: def,
			devices: []storage.DeviceLockout{
				{DeviceID: "a", LockedAt: ago(time.Minute)},
				{DeviceID: "b", LockedAt: ago(time.Hour)},
				{DeviceID: "c", Failures: 2, WindowStart: ago(time.Minute)},
			},
			want: LockoutView{Devices: []DeviceLockoutView{
				{DeviceID: "a", Locked: true, Since: ago(time.Minute), Until: ago(time.Minute - 15*time.Minute)},
				{DeviceID: "b"},
				{DeviceID: "c", Failures: 2, WindowStart: ago(time.Minute)},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.UserID = "u"
			tt.want.UserID = "u"
			if tt.want.Devices == nil {
				tt.want.Devices = []DeviceLockoutView{}
			}
			got := NewLockoutView(tt.pol, now, "u", tt.a, tt.devices)
			if !sameJSONValue(t, got, tt.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tt.want)
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}
