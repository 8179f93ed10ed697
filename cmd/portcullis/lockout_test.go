package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// lockUser creates a user named name and stores the facts the sign-in
// pipeline leaves after locking it and its phone ten minutes ago, with a
// tablet that failed twice; it returns the user's id.
func lockUser(t *testing.T, p *inProcess, name string) string {
	t.Helper()
	out := p.mustRun("correct horse\n", "users", "create", "--username", name, "--password-stdin")
	var u struct{ ID string }
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-10 * time.Minute).UTC()
	store := p.store()
	a := storage.AccountLockout{UserID: u.ID, LockedAt: &at, Cause: policies.LockCauseFailures, DeviceLocks: 1, DeviceLocksStart: &at}
	err := store.InTx(t.Context(), func(ctx context.Context) error {
		if _, _, err := store.LockLockout(ctx, u.ID, ""); err != nil {
			return err
		}
		for _, d := range []storage.DeviceLockout{
			{UserID: u.ID, DeviceID: "phone-1", LockedAt: &at},
			{UserID: u.ID, DeviceID: "tablet", Failures: 2, WindowStart: &at},
		} {
			if err := store.SaveLockout(ctx, a, &d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func TestUsersLockoutAndUnlock(t *testing.T) {
	p := newInProcess(t)
	id := lockUser(t, p, "alice")
	type step struct {
		name    string
		args    []string
		want    []string // each printed, on standard output or, when failing, standard error
		wantNot []string
		fail    bool
	}
	steps := []step{
		{name: "state by username", args: []string{"users", "lockout", "alice"},
			want: []string{"user alice (" + id + ")", "account: locked until ", "(cause failures, since ", "phone-1: locked until ",
				"tablet: not locked, 2 failure(s) since ", "device locks in the cascade window: 1", "account locks since the last success or unlock: 1"}},
		{name: "state by id, as JSON", args: []string{"users", "lockout", id, "--json"},
			want: []string{`"locked": true`, `"cause": "failures"`, `"device_id": "phone-1"`}},
		{name: "unknown user", args: []string{"users", "unlock", "bob"}, fail: true,
			want: []string{`no user has the id or username "bob"`}},
		{name: "bad device", args: []string{"users", "unlock", "alice", "--device", "phone 1"}, fail: true,
			want: []string{`--device "phone 1": must be 1 to 128 characters`}},
		{name: "empty device", args: []string{"users", "unlock", "alice", "--device="}, fail: true,
			want: []string{"leave --device out to unlock the whole account"}},
		{name: "device without facts", args: []string{"users", "unlock", "alice", "--device", "laptop"}, fail: true,
			want: []string{`no lockout facts for device "laptop"`, "nothing was changed"}},
		{name: "one device", args: []string{"users", "unlock", "alice", "--device", "phone-1"},
			want:    []string{"unlocked device phone-1 of user alice (" + id + "); cleared:", "device phone-1: was locked until "},
			wantNot: []string{"tablet", "account"}},
		{name: "state after the device", args: []string{"users", "lockout", "alice"},
			want: []string{"account: locked until ", "tablet: not locked"}, wantNot: []string{"phone-1"}},
		{name: "the account", args: []string{"users", "unlock", id},
			want: []string{"unlocked user alice (" + id + "); cleared:", "account: was locked until ", "(cause failures)",
				"account counters: 1 device lock(s) toward the cascade, 1 account lock(s) toward escalation", "device tablet: 2 failure(s)"}},
		{name: "state after the account", args: []string{"users", "lockout", "alice"},
			want: []string{"account: not locked", "failures: no failures in the current window", "devices: none with lockout facts"}},
		{name: "the account again", args: []string{"users", "unlock", "alice"},
			want: []string{"had no lockout facts; nothing to clear"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := p.run("", s.args...)
			out := r.stdout
			if s.fail {
				if r.code == 0 {
					t.Fatalf("exit 0, want a failure; stdout %s", r.stdout)
				}
				out = r.stderr
			} else if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, w := range s.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			for _, w := range s.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output says %q:\n%s", w, out)
				}
			}
		})
	}

	// One event per unlock that ran, newest first; none for the refused.
	rows, err := p.store().ListAudit(t.Context(), storage.AuditFilter{Type: audit.TypeAccountUnlocked, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	wantDevices := []string{"", "", "phone-1"}
	if len(rows) != len(wantDevices) {
		t.Fatalf("%d account.unlocked events, want %d: %+v", len(rows), len(wantDevices), rows)
	}
	for i, e := range rows {
		if !strings.HasPrefix(e.Actor, "cli:") || len(e.Actor) == len("cli:") || e.UserID != id ||
			e.Device != wantDevices[i] || e.Reason != "admin" || e.Outcome != audit.OutcomeSuccess {
			t.Errorf("event %d = %+v", i, e)
		}
	}
}

// TestFindUser resolves ids and usernames, and refuses a name that is one
// user's id and another's username.
func TestFindUser(t *testing.T) {
	p := newInProcess(t)
	id := lockUser(t, p, "carol")
	// A username that is carol's id: legal, if unwise.
	p.mustRun("correct horse\n", "users", "create", "--username", id, "--password-stdin")
	tests := []struct {
		ref  string
		want string // printed on success, or in the error
		ok   bool
	}{
		{ref: "carol", want: "user carol (" + id + ")", ok: true},
		{ref: "CAROL", want: "user carol (" + id + ")", ok: true},
		{ref: id, want: "give that user's id"},
		{ref: "nobody", want: `no user has the id or username "nobody"`},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			r := p.run("", "users", "lockout", tt.ref)
			if (r.code == 0) != tt.ok || !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want ok %v saying %q", r.code, r.stdout, r.stderr, tt.ok, tt.want)
			}
		})
	}
}
