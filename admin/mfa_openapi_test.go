package admin

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/storage"
)

// seedFactorID is the confirmed authenticator app seedFactor gives a user.
const seedFactorID = "0190a4b6-2222-7000-8000-000000000001"

func seedFactor(t *testing.T, store *storage.Store, userID string) {
	t.Helper()
	ctx := t.Context()
	f := &storage.MFAFactor{ID: seedFactorID, UserID: userID, Type: storage.FactorTOTP, Name: "Phone"}
	if err := store.CreateMFAFactor(ctx, f, []byte("12345678901234567890")); err != nil {
		t.Fatal(err)
	}
	if err := store.ConfirmMFAFactor(ctx, userID, seedFactorID, 1, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// mfaCalls are the second-factor routes' calls beyond protectedCalls.
func mfaCalls() []apiCall {
	return []apiCall{
		{name: "factors of missing user", method: "GET", path: missingUser + "/mfa", token: adminToken, status: 404, docAccepts: true},
		{name: "reset factors of missing user", method: "DELETE", path: missingUser + "/mfa", token: adminToken, status: 404, docAccepts: true},
		{name: "remove factor of missing user", method: "DELETE", path: missingUser + "/mfa/" + seedFactorID, token: adminToken, status: 404, docAccepts: true},
		{name: "remove missing factor", method: "DELETE", path: "/admin/users/" + sessionUserID + "/mfa/nothing", token: adminToken, status: 404, docAccepts: true},
	}
}

// brokenMFA fails every call, like brokenStore.
type brokenMFA struct{}

func (brokenMFA) Enrolled(context.Context, string) ([]authn.Factor, error) {
	return nil, brokenStore{}.fail("list factors")
}
func (brokenMFA) RecoveryCodesLeft(context.Context, string) (int, error) {
	return 0, brokenStore{}.fail("count recovery codes")
}
func (brokenMFA) Remove(context.Context, string, string, authn.Actor) error {
	return brokenStore{}.fail("remove factor")
}
func (brokenMFA) Reset(context.Context, string, authn.Actor) (int64, error) {
	return 0, brokenStore{}.fail("reset factors")
}

func (brokenStore) MFAStats(context.Context, time.Time) (storage.MFAStats, error) {
	return storage.MFAStats{}, brokenStore{}.fail("mfa stats")
}
