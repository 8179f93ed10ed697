package authn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

func TestPasswordLogin(t *testing.T) {
	const password = "correct horse battery"
	tests := []struct {
		name       string
		username   string
		password   string
		wantOK     bool
		wantReason string
	}{
		{"correct password", "alice", password, true, ReasonOK},
		{"username is case-folded", " ALICE ", password, true, ReasonOK},
		{"wrong password", "alice", password + "!", false, ReasonBadPassword},
		{"empty password", "alice", "", false, ReasonBadPassword},
		{"unknown user", "nobody", password, false, ReasonUnknownUser},
		{"empty username", "", password, false, ReasonUnknownUser},
		{"disabled user", "bob", password, false, ReasonDisabled},
		// Account gates run before the password is checked (with the same
		// hashing work), so the log names the account's state whatever
		// was typed; the person sees the same page either way.
		{"disabled user, wrong password", "bob", "wrong", false, ReasonDisabled},
		// Sign-in normalizes the username as creation did (PRECIS
		// UsernameCaseMapped); what cannot be normalized is no account.
		{"fullwidth username", "\uff41\uff4c\uff49\uff43\uff45", password, true, ReasonOK},
		{"zero-width space is no account", "alice\u200b", password, false, ReasonUnknownUser},
		{"right-to-left override is no account", "\u202ealice", password, false, ReasonUnknownUser},
		{"invalid UTF-8 is no account", "alice\xff", password, false, ReasonUnknownUser},
	}
	clock := newClock()
	st := openAuthnStore(t, clock)
	alice := addUser(t, st, cheapArgon2, "alice", password, false)
	addUser(t, st, cheapArgon2, "bob", password, true)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			p := NewPipeline(st, cheapArgon2, slog.New(slog.NewJSONHandler(&logs, nil)), nil)
			out, err := p.PasswordLogin(context.Background(), Attempt{
				Username: tt.username, Password: tt.password, IP: "192.0.2.1", ClientID: "app",
			})
			if err != nil {
				t.Fatal(err)
			}
			if out.OK != tt.wantOK || out.Reason != tt.wantReason {
				t.Errorf("Outcome = {OK:%v Reason:%q}, want {OK:%v Reason:%q}", out.OK, out.Reason, tt.wantOK, tt.wantReason)
			}
			if tt.wantOK && (out.User == nil || out.User.ID != alice.ID) {
				t.Errorf("User = %+v, want %s", out.User, alice.ID)
			}
			if !tt.wantOK && out.User != nil {
				t.Errorf("failed outcome carries user %s", out.User.ID)
			}
			line := logs.String()
			if !strings.Contains(line, `"reason":"`+tt.wantReason+`"`) || !strings.Contains(line, `"ip":"192.0.2.1"`) {
				t.Errorf("outcome not logged: %s", line)
			}
			if tt.password != "" && strings.Contains(line, tt.password) {
				t.Errorf("password logged: %s", line)
			}
		})
	}
}

func TestPasswordLoginRehash(t *testing.T) {
	const password = "correct horse battery"
	stronger := hashing.Argon2{Memory: 128, Iterations: 2, Parallelism: 1}
	tests := []struct {
		name       string
		stored     hashing.Argon2
		current    hashing.Argon2
		password   string
		wantRehash bool
	}{
		{"same parameters", cheapArgon2, cheapArgon2, password, false},
		{"parameters raised", cheapArgon2, stronger, password, true},
		{"parameters lowered", stronger, cheapArgon2, password, true},
		{"wrong password never rehashes", cheapArgon2, stronger, "wrong", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			st := openAuthnStore(t, clock)
			u := addUser(t, st, tt.stored, "alice", password, false)
			p := NewPipeline(st, tt.current, slog.New(slog.DiscardHandler), nil)
			if _, err := p.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: tt.password}); err != nil {
				t.Fatal(err)
			}
			got, err := st.User(context.Background(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rehashed := got.PasswordHash != u.PasswordHash; rehashed != tt.wantRehash {
				t.Fatalf("rehashed = %v, want %v", rehashed, tt.wantRehash)
			}
			if tt.wantRehash {
				if tt.current.NeedsRehash(got.PasswordHash) {
					t.Errorf("new hash %q is not under the current parameters", got.PasswordHash)
				}
				if ok, err := hashing.Verify(got.PasswordHash, password); !ok || err != nil {
					t.Errorf("new hash does not verify: %v, %v", ok, err)
				}
			}
		})
	}
}

// failingRehashStore refuses to store new hashes.
type failingRehashStore struct{ *countingStore }

func (failingRehashStore) UpdatePasswordHash(context.Context, string, string) error {
	return errors.New("database is read-only")
}

func TestPasswordLoginRehashFailureIsNotFatal(t *testing.T) {
	clock := newClock()
	st := openAuthnStore(t, clock)
	addUser(t, st, cheapArgon2, "alice", "correct horse battery", false)
	var logs bytes.Buffer
	p := NewPipeline(failingRehashStore{st}, hashing.Argon2{Memory: 128, Iterations: 1, Parallelism: 1},
		slog.New(slog.NewTextHandler(&logs, nil)), nil)
	out, err := p.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: "correct horse battery"})
	if err != nil || !out.OK {
		t.Fatalf("PasswordLogin = %+v, %v; want success", out, err)
	}
	if !strings.Contains(logs.String(), "read-only") {
		t.Errorf("rehash failure not logged: %s", logs.String())
	}
}

// brokenUserStore fails every lookup, as a database that is down would.
type brokenUserStore struct{ UserStore }

func (brokenUserStore) UserByUsername(context.Context, string) (*storage.User, error) {
	return nil, errors.New("connection refused")
}

func TestPasswordLoginInfrastructureError(t *testing.T) {
	p := NewPipeline(brokenUserStore{}, cheapArgon2, slog.New(slog.DiscardHandler), nil)
	out, err := p.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: "x"})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the storage failure", err)
	}
	if out.OK {
		t.Error("infrastructure failure reported as success")
	}
}

func TestPasswordLoginAudit(t *testing.T) {
	const password = "correct horse battery"
	clock := newClock()
	st := openAuthnStore(t, clock)
	alice := addUser(t, st, cheapArgon2, "alice", password, false)
	bob := addUser(t, st, cheapArgon2, "bob", password, true)
	rec := audit.NewRecorder(st.Store, nil, clock.Now)
	p := NewPipeline(st, cheapArgon2, slog.New(slog.DiscardHandler), rec)

	tests := []struct {
		name        string
		attempt     Attempt
		wantType    string
		wantOutcome string
		wantReason  string
		wantUser    string
		wantActor   string
		wantName    string
		wantAction  string
	}{
		{
			name:     "success",
			attempt:  Attempt{Username: "Alice", Password: password, IP: "192.0.2.1", ClientID: "app"},
			wantType: audit.TypeLoginSuccess, wantOutcome: audit.OutcomeSuccess, wantReason: ReasonOK,
			wantUser: alice.ID, wantActor: alice.ID, wantName: "alice",
		},
		{
			name:     "bad password",
			attempt:  Attempt{Username: "alice", Password: "guess-1234", IP: "192.0.2.2"},
			wantType: audit.TypeLoginFailed, wantOutcome: audit.OutcomeFailure, wantReason: ReasonBadPassword,
			wantUser: alice.ID, wantName: "alice",
		},
		{
			name:     "unknown user",
			attempt:  Attempt{Username: "mallory", Password: "guess-1234", IP: "2001:db8::7"},
			wantType: audit.TypeLoginFailed, wantOutcome: audit.OutcomeFailure, wantReason: ReasonUnknownUser,
			wantName: "mallory",
		},
		{
			name:     "disabled",
			attempt:  Attempt{Username: "bob", Password: password, IP: "192.0.2.3"},
			wantType: audit.TypeLoginFailed, wantOutcome: audit.OutcomeFailure, wantReason: ReasonDisabled,
			wantUser: bob.ID, wantName: "bob",
		},
		{
			name:     "confirming a password by user id",
			attempt:  Attempt{UserID: alice.ID, Password: "guess-1234", IP: "192.0.2.1", Action: policies.ActionPasswordChange},
			wantType: audit.TypeLoginFailed, wantOutcome: audit.OutcomeFailure, wantReason: ReasonBadPassword,
			wantUser: alice.ID, wantName: "alice", wantAction: policies.ActionPasswordChange,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := p.PasswordLogin(t.Context(), tt.attempt); err != nil {
				t.Fatal(err)
			}
			evs, _, err := rec.Query(t.Context(), audit.Query{Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("Query = %v, %v", evs, err)
			}
			e := evs[0]
			if e.Type != tt.wantType || e.Outcome != tt.wantOutcome || e.Reason != tt.wantReason ||
				e.UserID != tt.wantUser || e.Actor != tt.wantActor || e.IP != tt.attempt.IP || e.ClientID != tt.attempt.ClientID {
				t.Errorf("event = %+v", e)
			}
			if e.Details["username"] != tt.wantName {
				t.Errorf("details username = %v, want %q", e.Details["username"], tt.wantName)
			}
			if got, _ := e.Details["action"].(string); got != tt.wantAction {
				t.Errorf("details action = %q, want %q", got, tt.wantAction)
			}
			if b, _ := json.Marshal(e); strings.Contains(string(b), tt.attempt.Password) {
				t.Errorf("password recorded: %s", b)
			}
		})
	}
}
