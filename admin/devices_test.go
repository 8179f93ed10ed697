package admin

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
)

// seedDeviceID is the device seedDevice registers for a user.
const seedDeviceID = "seed-device"

// seedDevice registers device for userID and starts a session from it,
// with a token issued under it; it returns the token.
func seedDevice(t *testing.T, store *storage.Store, clientID, userID, device, sid string) string {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := store.UpsertUserDevice(ctx, &storage.UserDevice{
		UserID: userID, DeviceID: device, LastSeenAt: now, IP: "192.0.2.9", UserAgent: "device-test",
	}); err != nil {
		t.Fatalf("register device %s: %v", device, err)
	}
	bs := &storage.BrowserSession{
		ID: sid, UserID: userID, AuthTime: now, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(time.Hour), IP: "192.0.2.9", UserAgent: "device-test", DeviceID: device,
	}
	if err := store.CreateBrowserSession(ctx, bs); err != nil {
		t.Fatalf("create session %s: %v", sid, err)
	}
	return createToken(t, store, clientID, userID, sid)
}

// deviceCalls are the device routes' calls beyond protectedCalls.
func deviceCalls() []apiCall {
	return []apiCall{
		{name: "devices of missing user", method: "GET", path: missingUser + "/devices", token: adminToken, status: 404, docAccepts: true},
		{name: "sign out device of missing user", method: "DELETE", path: missingUser + "/devices/" + seedDeviceID, token: adminToken, status: 404, docAccepts: true},
		{name: "sign out missing device", method: "DELETE", path: "/admin/users/" + sessionUserID + "/devices/nothing", token: adminToken, status: 404, docAccepts: true},
	}
}

func (s brokenStore) UserDevices(context.Context, string) ([]storage.UserDevice, error) {
	return nil, s.fail("list devices")
}

func (s brokenStore) EndDeviceSessions(context.Context, string, string) (*storage.DeviceSignOut, error) {
	return nil, s.fail("end device sessions")
}

func TestUserDevices(t *testing.T) {
	e := newEnv(t)
	createClient(t, e.store, "web")
	createUser(t, e.store, alice)
	createUser(t, e.store, bob)
	laptop := seedDevice(t, e.store, "web", alice, "laptop", "s-laptop")
	phone := seedDevice(t, e.store, "web", alice, "phone", "s-phone")
	bobs := seedDevice(t, e.store, "web", bob, "laptop", "s-bob")

	rec := e.do(t, "GET", "/admin/users/"+alice+"/devices", adminToken, "")
	wantStatus(t, rec, http.StatusOK)
	list := decode[deviceList](t, rec)
	var ids []string
	for _, d := range list.Items {
		ids = append(ids, d.DeviceID)
		if d.IP != "192.0.2.9" || d.UserAgent != "device-test" || d.FirstSeenAt.IsZero() || d.LastSeenAt.IsZero() {
			t.Errorf("device %+v lacks a field", d)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"laptop", "phone"}) {
		t.Errorf("devices = %q, want laptop and phone", ids)
	}

	rec = e.do(t, "DELETE", "/admin/users/"+alice+"/devices/laptop", adminToken, "")
	wantStatus(t, rec, http.StatusOK)
	if got := decode[deviceSignedOut](t, rec); got != (deviceSignedOut{SessionsEnded: 1, TokensRevoked: 1}) {
		t.Errorf("answer = %+v, want one session and one token", got)
	}
	if got := activeTokens(t, e.store, laptop, phone, bobs); !slices.Equal(got, []string{phone, bobs}) {
		t.Errorf("active tokens = %q, want the phone's and bob's", got)
	}
	if ids := sessionIDs(t, e.store, alice); !slices.Equal(ids, []string{"s-phone"}) {
		t.Errorf("alice's sessions = %q, want s-phone", ids)
	}
	ended := auditEvents(t, e.store, audit.TypeSessionEnded)
	if len(ended) != 1 || ended[0].Actor != "root" || ended[0].UserID != alice || ended[0].Reason != reasonAdmin {
		t.Errorf("session.ended events = %+v", ended)
	}

	rec = e.do(t, "DELETE", "/admin/users/"+alice+"/devices/laptop", adminToken, "")
	wantStatus(t, rec, http.StatusNotFound)
	rec = e.do(t, "GET", "/admin/users/"+alice+"/devices", adminToken, "")
	if list := decode[deviceList](t, rec); len(list.Items) != 1 || list.Items[0].DeviceID != "phone" {
		t.Errorf("devices after sign-out = %+v, want only phone", list.Items)
	}
}
