package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/mfa"
	"github.com/portcullis/portcullis/storage"
)

// sealingStore opens the commands' database with the system secret the
// commands generated beside it: a TOTP secret is stored only sealed, so
// enrolling one needs the same secret box as the server.
func (p *inProcess) sealingStore() *storage.Store {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "portcullis.secret"))
	if err != nil {
		p.t.Fatalf("system secret: %v", err)
	}
	box, err := storage.NewSecretBox([]string{strings.TrimSpace(string(b))})
	if err != nil {
		p.t.Fatal(err)
	}
	s, err := storage.Open(p.t.Context(), "sqlite://"+filepath.Join(p.dir, "portcullis.db"), storage.Options{Box: box})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { s.Close() })
	return s
}

// enrolTOTP enrols an authenticator app named name for u as a person
// does on the enrolment page: a pending factor, confirmed by a current
// code. It returns the factor and the secret, which must never be printed.
func enrolTOTP(t *testing.T, factors *authn.SecondFactors, u *storage.User, name string) (authn.Factor, string) {
	t.Helper()
	e, err := factors.StartTOTP(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(e.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, ok, err := factors.ConfirmTOTP(t.Context(), u, e.FactorID, code, name, authn.Actor{ID: u.ID})
	if err != nil || !ok {
		t.Fatalf("confirm totp: ok %v, %v", ok, err)
	}
	if len(res.RecoveryCodes) != mfa.RecoveryCodeCount {
		t.Fatalf("first factor came with %d recovery codes, want %d", len(res.RecoveryCodes), mfa.RecoveryCodeCount)
	}
	return res.Factor, e.Secret
}

// addSecurityKey stores a confirmed WebAuthn factor of userID as a
// finished registration leaves it; the CLI never reads the credential.
func addSecurityKey(t *testing.T, store *storage.Store, userID, id, name string, credentialID []byte) {
	t.Helper()
	now := time.Now()
	f := &storage.MFAFactor{ID: id, UserID: userID, Type: storage.FactorWebAuthn, Name: name,
		CredentialID: credentialID, Credential: []byte(`{"publicKey":"c2VjcmV0LWtleS1ieXRlcw=="}`), ConfirmedAt: &now}
	if err := store.CreateMFAFactor(t.Context(), f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestUsersMFAListAndReset(t *testing.T) {
	p := newInProcess(t)
	created := func(name string) *storage.User {
		out := p.mustRun("correct horse\n", "users", "create", "--username", name, "--password-stdin")
		var u struct{ ID string }
		if err := json.Unmarshal([]byte(out), &u); err != nil || u.ID == "" {
			t.Fatalf("users create printed %s (%v)", out, err)
		}
		return &storage.User{ID: u.ID, Username: name}
	}
	alice, bob := created("alice"), created("bob")

	type step struct {
		name    string
		args    []string
		want    []string // each printed, on standard output or, when failing, standard error
		wantNot []string
		fail    bool
	}
	run := func(t *testing.T, s step) {
		t.Helper()
		r := p.run("", s.args...)
		out := r.stdout
		if s.fail {
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stdout %s", r.code, r.stdout)
			}
			if r.stdout != "" {
				t.Errorf("a failure printed on standard output: %s", r.stdout)
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
	}

	// Before any enrolment.
	run(t, step{args: []string{"users", "mfa", "list", "alice"},
		want: []string{"user alice (" + alice.ID + ")", "factors: none enrolled", "recovery codes left: 0"}})

	store := p.sealingStore()
	factors := authn.NewSecondFactors(store, nil, "Portcullis", audit.NewRecorder(store, nil, nil), nil, nil)
	phone, secret := enrolTOTP(t, factors, alice, "Phone")
	keyID := []byte("alice-security-key-credential")
	addSecurityKey(t, store, alice.ID, "key-1", "YubiKey", keyID)
	addSecurityKey(t, store, bob.ID, "key-bob", "Bob's key", []byte("bob-security-key-credential"))
	// Neither the secret nor a credential is ever printed, in any form.
	secrets := []string{secret, strings.ToLower(secret), base64.StdEncoding.EncodeToString(keyID),
		base64.RawURLEncoding.EncodeToString(keyID), string(keyID), "c2VjcmV0LWtleS1ieXRlcw", "publicKey", "credential"}

	steps := []step{
		{name: "list by username", args: []string{"users", "mfa", "list", "alice"},
			want: []string{"user alice (" + alice.ID + ")", "ID", "TYPE", "NAME", "CREATED", "LAST USED",
				phone.ID, "totp", `"Phone"`, "key-1", "webauthn", `"YubiKey"`, "never", "recovery codes left: 10"},
			wantNot: secrets},
		{name: "list by id, as JSON", args: []string{"users", "mfa", "list", alice.ID, "--json"},
			want: []string{`"user_id": "` + alice.ID + `"`, `"id": "` + phone.ID + `"`, `"type": "totp"`, `"name": "Phone"`,
				`"type": "webauthn"`, `"last_used_at": null`, `"recovery_codes_left": 10`},
			wantNot: secrets},
		{name: "list of unknown user", args: []string{"users", "mfa", "list", "carol"}, fail: true,
			want: []string{`no user has the id or username "carol"`}},
		{name: "reset of unknown user", args: []string{"users", "mfa", "reset", "carol"}, fail: true,
			want: []string{`no user has the id or username "carol"`}},
		{name: "remove from unknown user", args: []string{"users", "mfa", "reset", "carol", "--factor", "key-1"}, fail: true,
			want: []string{`no user has the id or username "carol"`}},
		{name: "empty factor", args: []string{"users", "mfa", "reset", "alice", "--factor="}, fail: true,
			want: []string{"--factor: give a factor id", "leave --factor out to reset every factor"}},
		{name: "unknown factor", args: []string{"users", "mfa", "reset", "alice", "--factor", "key-9"}, fail: true,
			want: []string{`user alice (` + alice.ID + `) has no second factor "key-9"; nothing was changed`}},
		{name: "another user's factor", args: []string{"users", "mfa", "reset", "alice", "--factor", "key-bob"}, fail: true,
			want: []string{`has no second factor "key-bob"; nothing was changed`}},
		{name: "mistyped subcommand", args: []string{"users", "mfa", "rest", "alice"}, fail: true,
			want: []string{`unknown command "rest"`, "reset"}},
		{name: "remove one", args: []string{"users", "mfa", "reset", "alice", "--factor", "key-1"},
			want: []string{"removed second factor key-1 of user alice (" + alice.ID + ")", "1 factor(s) left"}},
		{name: "list after removing one", args: []string{"users", "mfa", "list", "alice"},
			want: []string{phone.ID, `"Phone"`, "recovery codes left: 10"}, wantNot: []string{"key-1", "YubiKey"}},
		{name: "reset", args: []string{"users", "mfa", "reset", "alice"},
			want: []string{"reset the second factors of user alice (" + alice.ID + "): 1 factor(s) removed"}},
		{name: "list after reset", args: []string{"users", "mfa", "list", "alice"},
			want: []string{"factors: none enrolled", "recovery codes left: 0"}, wantNot: []string{phone.ID}},
		{name: "reset again", args: []string{"users", "mfa", "reset", alice.ID},
			want: []string{"user alice (" + alice.ID + ") had no second factor"}},
		{name: "the other user keeps theirs", args: []string{"users", "mfa", "list", "bob"},
			want: []string{"key-bob", `"Bob's key"`}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) { run(t, s) })
	}

	ctx := t.Context()
	if fs, err := store.MFAFactors(ctx, alice.ID); err != nil || len(fs) != 0 {
		t.Errorf("alice's factors after the reset: %+v (%v), want none", fs, err)
	}
	if n, err := store.RecoveryCodesLeft(ctx, alice.ID); err != nil || n != 0 {
		t.Errorf("alice has %d recovery codes left (%v), want 0", n, err)
	}
	if fs, err := store.MFAFactors(ctx, bob.ID); err != nil || len(fs) != 1 {
		t.Errorf("bob's factors: %+v (%v), want his key", fs, err)
	}

	// One event per change that ran, newest first, by the command's
	// runner; none for the refused.
	events := []struct {
		typ     string
		details []map[string]any
	}{
		{typ: audit.TypeMFAReset, details: []map[string]any{{"factors": 0.0}, {"factors": 1.0}}},
		{typ: audit.TypeMFARemoved, details: []map[string]any{{"factor_id": "key-1", "type": storage.FactorWebAuthn, "name": "YubiKey"}}},
	}
	for _, ev := range events {
		rows, err := store.ListAudit(ctx, storage.AuditFilter{Type: ev.typ, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(ev.details) {
			t.Fatalf("%d %s events, want %d: %+v", len(rows), ev.typ, len(ev.details), rows)
		}
		for i, e := range rows {
			if !strings.HasPrefix(e.Actor, "cli:") || len(e.Actor) == len("cli:") || e.UserID != alice.ID || e.Outcome != audit.OutcomeSuccess {
				t.Errorf("%s event %d = %+v", ev.typ, i, e)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(e.Details), &got); err != nil {
				t.Fatalf("%s details %q: %v", ev.typ, e.Details, err)
			}
			for k, want := range ev.details[i] {
				if got[k] != want {
					t.Errorf("%s event %d: %s = %v, want %v (details %s)", ev.typ, i, k, got[k], want, e.Details)
				}
			}
		}
	}
}
