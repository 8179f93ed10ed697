package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// mfaCases check the second factors' storage: factors and their sealed
// TOTP secrets, the single use of TOTP steps, confirmations, recovery codes
// and ceremony states under parallel requests, the reset, remembered
// devices, the grace period's one start, the adoption figures and the
// session's second-factor mark.
func mfaCases() []suiteCase {
	totpSecret := []byte("0123456789abcdefghij")
	newTOTP := func(t *testing.T, s *storage.Store, userID, id string) *storage.MFAFactor {
		t.Helper()
		f := &storage.MFAFactor{ID: id, UserID: userID, Type: storage.FactorTOTP, Name: "phone " + id}
		must(t, "CreateMFAFactor(totp "+id+")", s.CreateMFAFactor(t.Context(), f, totpSecret))
		return f
	}
	newWebAuthn := func(t *testing.T, s *storage.Store, clk *Clock, userID, id string, confirmed bool) *storage.MFAFactor {
		t.Helper()
		f := &storage.MFAFactor{
			ID: id, UserID: userID, Type: storage.FactorWebAuthn, Name: "key " + id,
			CredentialID: []byte("cred-" + id + "\x00\xff"), Credential: []byte(`{"signCount":1}`),
		}
		if confirmed {
			now := clk.Now()
			f.ConfirmedAt = &now
		}
		must(t, "CreateMFAFactor(webauthn "+id+")", s.CreateMFAFactor(t.Context(), f, nil))
		return f
	}
	confirmed := func(t *testing.T, s *storage.Store, clk *Clock, userID, id string, step int64) {
		t.Helper()
		must(t, "ConfirmMFAFactor("+id+")", s.ConfirmMFAFactor(t.Context(), userID, id, step, clk.Now()))
	}
	factorIDs := func(t *testing.T, s *storage.Store, userID string) []string {
		t.Helper()
		fs, err := s.MFAFactors(t.Context(), userID)
		must(t, "MFAFactors", err)
		ids := []string{}
		for _, f := range fs {
			ids = append(ids, f.ID)
		}
		return ids
	}
	hashes := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-hash-%02d", prefix, i)
		}
		return out
	}
	return []suiteCase{
		{"MFA/FactorLifecycle", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			newTOTP(t, s, "u1", "f-totp")
			clk.Advance(time.Second)
			newWebAuthn(t, s, clk, "u1", "f-key", true)
			clk.Advance(time.Second)
			// A second TOTP factor: TOTP factors have no credential id, and
			// the unique index must not take two missing ones for a clash.
			newTOTP(t, s, "u1", "f-totp2")
			if got := factorIDs(t, s, "u1"); !slices.Equal(got, []string{"f-totp", "f-key", "f-totp2"}) {
				t.Errorf("factors = %q, want oldest first", got)
			}
			if got := factorIDs(t, s, "u2"); len(got) != 0 {
				t.Errorf("u2's factors = %q, want none", got)
			}

			f, err := s.MFAFactor(ctx, "u1", "f-totp")
			must(t, "MFAFactor", err)
			if f.Type != storage.FactorTOTP || f.Name != "phone f-totp" || f.ConfirmedAt != nil || f.LastUsedAt != nil ||
				f.LastStep != 0 || f.CredentialID != nil || f.Credential != nil || !f.CreatedAt.Equal(epoch()) {
				t.Errorf("pending TOTP factor = %+v", f)
			}
			k, err := s.MFAFactor(ctx, "u1", "f-key")
			must(t, "MFAFactor(key)", err)
			if !bytes.Equal(k.CredentialID, []byte("cred-f-key\x00\xff")) || string(k.Credential) != `{"signCount":1}` ||
				k.ConfirmedAt == nil || !k.ConfirmedAt.Equal(epoch().Add(time.Second)) || k.SealedSecret != "" {
				t.Errorf("WebAuthn factor = %+v", k)
			}
			_, err = s.MFAFactor(ctx, "u2", "f-totp")
			wantErr(t, "another user's factor", err, storage.ErrNotFound)

			clk.Advance(time.Minute)
			must(t, "ConfirmMFAFactor", s.ConfirmMFAFactor(ctx, "u1", "f-totp", 12345, clk.Now()))
			f, err = s.MFAFactor(ctx, "u1", "f-totp")
			must(t, "MFAFactor after confirm", err)
			if f.ConfirmedAt == nil || !f.ConfirmedAt.Equal(clk.Now()) || f.LastUsedAt == nil || !f.LastUsedAt.Equal(clk.Now()) || f.LastStep != 12345 {
				t.Errorf("confirmed factor = %+v, want confirmed and used at %v, last step 12345", f, clk.Now())
			}
			wantErr(t, "second confirmation", s.ConfirmMFAFactor(ctx, "u1", "f-totp", 12346, clk.Now()), storage.ErrAlreadyUsed)
			wantErr(t, "confirming another user's factor", s.ConfirmMFAFactor(ctx, "u2", "f-totp2", 1, clk.Now()), storage.ErrNotFound)
			wantErr(t, "confirming an unknown factor", s.ConfirmMFAFactor(ctx, "u1", "nope", 1, clk.Now()), storage.ErrNotFound)

			must(t, "RenameMFAFactor", s.RenameMFAFactor(ctx, "u1", "f-key", "YubiKey 5 ✓"))
			if k, _ := s.MFAFactor(ctx, "u1", "f-key"); k == nil || k.Name != "YubiKey 5 ✓" {
				t.Errorf("renamed factor = %+v", k)
			}
			wantErr(t, "renaming another user's factor", s.RenameMFAFactor(ctx, "u2", "f-key", "x"), storage.ErrNotFound)
			wantErr(t, "renaming an unknown factor", s.RenameMFAFactor(ctx, "u1", "nope", "x"), storage.ErrNotFound)
			if err := s.RenameMFAFactor(ctx, "u1", "f-key", "bad\x00name"); err == nil {
				t.Error("RenameMFAFactor stored a NUL")
			}

			wantErr(t, "deleting another user's factor", s.DeleteMFAFactor(ctx, "u2", "f-key"), storage.ErrNotFound)
			must(t, "DeleteMFAFactor", s.DeleteMFAFactor(ctx, "u1", "f-key"))
			wantErr(t, "deleting it again", s.DeleteMFAFactor(ctx, "u1", "f-key"), storage.ErrNotFound)
			if got := factorIDs(t, s, "u1"); !slices.Equal(got, []string{"f-totp", "f-totp2"}) {
				t.Errorf("factors after delete = %q", got)
			}
		}},
		{"MFA/CreateValidates", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			newWebAuthn(t, s, clk, "u1", "f-key", true)
			for _, tc := range []struct {
				name   string
				f      storage.MFAFactor
				secret []byte
				want   error // nil: any error
			}{
				{"totp without secret", storage.MFAFactor{UserID: "u1", Type: storage.FactorTOTP}, nil, nil},
				{"webauthn without credential id", storage.MFAFactor{UserID: "u1", Type: storage.FactorWebAuthn}, nil, nil},
				{"webauthn with a secret", storage.MFAFactor{UserID: "u1", Type: storage.FactorWebAuthn, CredentialID: []byte("c")}, totpSecret, nil},
				{"unknown type", storage.MFAFactor{UserID: "u1", Type: "sms"}, totpSecret, nil},
				{"no user", storage.MFAFactor{Type: storage.FactorTOTP}, totpSecret, nil},
				{"unknown user", storage.MFAFactor{UserID: "nobody", Type: storage.FactorTOTP}, totpSecret, storage.ErrNotFound},
				{"taken id", storage.MFAFactor{ID: "f-key", UserID: "u1", Type: storage.FactorTOTP}, totpSecret, storage.ErrConflict},
				// A credential id names one credential server-wide.
				{"taken credential id", storage.MFAFactor{UserID: "u2", Type: storage.FactorWebAuthn, CredentialID: []byte("cred-f-key\x00\xff")}, nil, storage.ErrConflict},
			} {
				f := tc.f
				err := s.CreateMFAFactor(ctx, &f, tc.secret)
				if tc.want == nil && err == nil {
					t.Errorf("%s: created", tc.name)
				} else if tc.want != nil {
					wantErr(t, tc.name, err, tc.want)
				}
			}
			if got := factorIDs(t, s, "u2"); len(got) != 0 {
				t.Errorf("refused creations left factors %q", got)
			}
			// An empty id is filled in.
			f := &storage.MFAFactor{UserID: "u2", Type: storage.FactorTOTP}
			must(t, "CreateMFAFactor without id", s.CreateMFAFactor(ctx, f, totpSecret))
			if f.ID == "" {
				t.Error("CreateMFAFactor left the id empty")
			}
			// Without a secret box the secret would be stored in clear.
			plain, err := storage.Open(ctx, SQLiteURL(t), storage.Options{Now: clk.Now})
			must(t, "open a store without a secret box", err)
			t.Cleanup(func() { _ = plain.Close() })
			_, err = plain.Migrate(ctx)
			must(t, "migrate", err)
			createUser(t, plain, "u1", "alice")
			if err := plain.CreateMFAFactor(ctx, &storage.MFAFactor{UserID: "u1", Type: storage.FactorTOTP}, totpSecret); err == nil {
				t.Error("CreateMFAFactor without a secret box succeeded")
			}
		}},
		{"MFA/TOTPSecretSealedAtRest", func(t *testing.T, s *storage.Store, _ *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			newTOTP(t, s, "u1", "f1")
			newTOTP(t, s, "u1", "f2")
			fs, err := s.MFAFactors(ctx, "u1")
			must(t, "MFAFactors", err)
			// MFAFactors returns the secret column as stored: the raw value.
			raw := fs[0].SealedSecret
			for _, clear := range []string{string(totpSecret), fmt.Sprintf("%x", totpSecret), "GAYTEMZUGU3DOOBZMFRGGZDFMZTWQ2LK"} {
				if raw == "" || strings.Contains(strings.ToUpper(raw), strings.ToUpper(clear)) {
					t.Errorf("secret column %q holds the secret in clear (%q)", raw, clear)
				}
			}
			// It is the store's SecretBox sealing, bound to the factor id.
			box, err := storage.NewSecretBox([]string{SystemSecret})
			must(t, "NewSecretBox", err)
			if got, err := box.Open(raw, "mfa_totp:f1"); err != nil || !bytes.Equal(got, totpSecret) {
				t.Errorf("box.Open(f1's column) = %q, %v; want the secret", got, err)
			}
			if _, err := box.Open(raw, "mfa_totp:f2"); err == nil {
				t.Error("f1's sealed secret opens as f2's")
			}
			got, err := s.TOTPSecret(ctx, &fs[0])
			if err != nil || !bytes.Equal(got, totpSecret) {
				t.Errorf("TOTPSecret = %q, %v; want %q", got, err, totpSecret)
			}
			// A factor known by id only is read first.
			got, err = s.TOTPSecret(ctx, &storage.MFAFactor{ID: "f2", UserID: "u1"})
			if err != nil || !bytes.Equal(got, totpSecret) {
				t.Errorf("TOTPSecret(by id) = %q, %v; want %q", got, err, totpSecret)
			}
			// A ciphertext pasted into another factor does not open.
			moved := fs[1]
			moved.SealedSecret = raw
			if _, err := s.TOTPSecret(ctx, &moved); err == nil {
				t.Error("TOTPSecret opened f1's secret as f2's")
			}
			_, err = s.TOTPSecret(ctx, &storage.MFAFactor{ID: "nope", UserID: "u1"})
			wantErr(t, "TOTPSecret of an unknown factor", err, storage.ErrNotFound)
		}},
		{"MFA/UseTOTPStepOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			newTOTP(t, s, "u1", "f1")
			newTOTP(t, s, "u1", "pending")
			newWebAuthn(t, s, clk, "u1", "key", true)
			use := func(user, id string, step int64) bool {
				t.Helper()
				ok, err := s.UseTOTPStep(ctx, user, id, step, clk.Now())
				must(t, "UseTOTPStep", err)
				return ok
			}
			if use("u1", "f1", 100) {
				t.Error("a pending factor's step was accepted")
			}
			confirmed(t, s, clk, "u1", "f1", 100)
			if use("u1", "f1", 100) {
				t.Error("the step that confirmed the factor was accepted again")
			}

			clk.Advance(time.Minute)
			var wins int
			for i, err := range race(func(int) error {
				ok, err := s.UseTOTPStep(ctx, "u1", "f1", 200, clk.Now())
				if err == nil && !ok {
					return storage.ErrAlreadyUsed
				}
				return err
			}) {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, storage.ErrAlreadyUsed):
					t.Errorf("racer %d: %v", i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d of %d parallel uses of one step succeeded, want exactly 1", wins, racers)
			}
			for _, step := range []int64{200, 199, 101} {
				if use("u1", "f1", step) {
					t.Errorf("step %d accepted after step 200", step)
				}
			}
			f, err := s.MFAFactor(ctx, "u1", "f1")
			must(t, "MFAFactor", err)
			if f.LastStep != 200 || f.LastUsedAt == nil || !f.LastUsedAt.Equal(clk.Now()) {
				t.Errorf("factor after the race: last step %d, last used %v; want 200, %v", f.LastStep, f.LastUsedAt, clk.Now())
			}
			if !use("u1", "f1", 201) {
				t.Error("the next step was refused")
			}
			for _, tc := range []struct{ user, id string }{{"u1", "pending"}, {"u1", "key"}, {"u2", "f1"}, {"u1", "nope"}} {
				if use(tc.user, tc.id, 1000) {
					t.Errorf("UseTOTPStep(%s, %s) accepted", tc.user, tc.id)
				}
			}

			// Distinct steps in parallel: the factor only moves forward, so
			// the newest is always accepted and ends up recorded.
			results := make([]bool, racers)
			for i, err := range race(func(i int) error {
				ok, err := s.UseTOTPStep(ctx, "u1", "f1", int64(300+i), clk.Now())
				results[i] = ok
				return err
			}) {
				must(t, fmt.Sprintf("racer %d", i), err)
			}
			if !results[racers-1] {
				t.Error("the newest of parallel steps was refused")
			}
			if f, _ := s.MFAFactor(ctx, "u1", "f1"); f == nil || f.LastStep != int64(300+racers-1) {
				t.Errorf("after parallel distinct steps the factor is at %+v, want step %d", f, 300+racers-1)
			}
		}},
		{"MFA/ConfirmOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			newTOTP(t, s, "u1", "f1")
			winner := checkOneWinner(t, race(func(i int) error {
				return s.ConfirmMFAFactor(ctx, "u1", "f1", int64(1000+i), clk.Now())
			}))
			f, err := s.MFAFactor(ctx, "u1", "f1")
			must(t, "MFAFactor", err)
			if f.ConfirmedAt == nil || f.LastStep != int64(1000+winner) {
				t.Errorf("factor = %+v, want confirmed with the winner's step %d", f, 1000+winner)
			}
		}},
		{"MFA/WebAuthnCredentials", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			newWebAuthn(t, s, clk, "u1", "key", true)
			newWebAuthn(t, s, clk, "u2", "pending", false)
			newTOTP(t, s, "u1", "totp")
			got, err := s.MFAFactorByCredentialID(ctx, []byte("cred-key\x00\xff"))
			must(t, "MFAFactorByCredentialID", err)
			if got.ID != "key" || got.UserID != "u1" {
				t.Errorf("MFAFactorByCredentialID = %+v, want u1's key", got)
			}
			for _, id := range [][]byte{[]byte("cred-pending\x00\xff"), []byte("cred-key"), nil, {}} {
				_, err := s.MFAFactorByCredentialID(ctx, id)
				wantErr(t, fmt.Sprintf("MFAFactorByCredentialID(%q)", id), err, storage.ErrNotFound)
			}

			clk.Advance(time.Hour)
			must(t, "UpdateWebAuthnCredential", s.UpdateWebAuthnCredential(ctx, "u1", "key", []byte(`{"signCount":7}`), clk.Now()))
			got, err = s.MFAFactor(ctx, "u1", "key")
			must(t, "MFAFactor", err)
			if string(got.Credential) != `{"signCount":7}` || got.LastUsedAt == nil || !got.LastUsedAt.Equal(clk.Now()) {
				t.Errorf("updated factor = %+v", got)
			}
			wantErr(t, "updating another user's key", s.UpdateWebAuthnCredential(ctx, "u2", "key", []byte(`{}`), clk.Now()), storage.ErrNotFound)
			wantErr(t, "updating a TOTP factor", s.UpdateWebAuthnCredential(ctx, "u1", "totp", []byte(`{}`), clk.Now()), storage.ErrNotFound)
		}},
		{"MFA/RecoveryCodesSingleUse", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			must(t, "ReplaceRecoveryCodes", s.ReplaceRecoveryCodes(ctx, "u1", hashes("a", 10), clk.Now()))
			must(t, "ReplaceRecoveryCodes u2", s.ReplaceRecoveryCodes(ctx, "u2", hashes("b", 3), clk.Now()))
			left := func(user string) int {
				t.Helper()
				n, err := s.RecoveryCodesLeft(ctx, user)
				must(t, "RecoveryCodesLeft", err)
				return n
			}
			if n := left("u1"); n != 10 {
				t.Fatalf("codes left = %d, want 10", n)
			}

			remaining := make([]int, racers)
			winner := checkOneWinner(t, race(func(i int) error {
				ok, n, err := s.UseRecoveryCode(ctx, "u1", "a-hash-03", clk.Now())
				remaining[i] = n
				if err == nil && !ok {
					return storage.ErrAlreadyUsed
				}
				return err
			}))
			if remaining[winner] != 9 {
				t.Errorf("the winner was told %d codes remain, want 9", remaining[winner])
			}
			if n := left("u1"); n != 9 {
				t.Errorf("codes left after the race = %d, want 9", n)
			}
			for _, tc := range []struct{ user, hash string }{{"u1", "a-hash-03"}, {"u1", "b-hash-00"}, {"u1", "nope"}, {"u1", ""}, {"u1", "bad\x00"}} {
				ok, n, err := s.UseRecoveryCode(ctx, tc.user, tc.hash, clk.Now())
				if err != nil || ok || n != 9 {
					t.Errorf("UseRecoveryCode(%s, %q) = %v, %d, %v; want false, 9, nil", tc.user, tc.hash, ok, n, err)
				}
			}
			ok, n, err := s.UseRecoveryCode(ctx, "u1", "a-hash-09", clk.Now())
			if err != nil || !ok || n != 8 {
				t.Errorf("UseRecoveryCode(another code) = %v, %d, %v; want true, 8, nil", ok, n, err)
			}

			// A refused replacement changes nothing; a good one replaces all.
			err = s.ReplaceRecoveryCodes(ctx, "u1", []string{"c-1", "c-2", "c-1"}, clk.Now())
			wantErr(t, "replacing with a repeated hash", err, storage.ErrConflict)
			if n := left("u1"); n != 8 {
				t.Errorf("a refused replacement left %d codes, want the old 8", n)
			}
			wantErr(t, "codes for an unknown user", s.ReplaceRecoveryCodes(ctx, "nobody", hashes("x", 2), clk.Now()), storage.ErrNotFound)
			must(t, "ReplaceRecoveryCodes again", s.ReplaceRecoveryCodes(ctx, "u1", hashes("c", 10), clk.Now()))
			if n := left("u1"); n != 10 {
				t.Errorf("codes left after a new set = %d, want 10", n)
			}
			if ok, _, _ := s.UseRecoveryCode(ctx, "u1", "a-hash-00", clk.Now()); ok {
				t.Error("a code of the replaced set still works")
			}
			if n := left("u2"); n != 3 {
				t.Errorf("u2's codes = %d, want 3 (untouched)", n)
			}
			must(t, "ReplaceRecoveryCodes(none)", s.ReplaceRecoveryCodes(ctx, "u1", nil, clk.Now()))
			if n := left("u1"); n != 0 {
				t.Errorf("codes left after an empty set = %d, want 0", n)
			}
		}},
		{"MFA/ResetAndDeleteUser", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			setUp := func(user string) {
				t.Helper()
				createUser(t, s, user, "name-"+user)
				newTOTP(t, s, user, user+"-totp")
				confirmed(t, s, clk, user, user+"-totp", 1)
				newWebAuthn(t, s, clk, user, user+"-key", true)
				must(t, "ReplaceRecoveryCodes", s.ReplaceRecoveryCodes(ctx, user, hashes(user, 4), clk.Now()))
				must(t, "RememberMFADevice", s.RememberMFADevice(ctx, user, "dev-1", clk.Now()))
				must(t, "RememberMFADevice", s.RememberMFADevice(ctx, user, "dev-2", clk.Now()))
				_, err := s.MFAGraceStart(ctx, user, clk.Now())
				must(t, "MFAGraceStart", err)
			}
			has := func(user string) (factors, codes int, device bool) {
				t.Helper()
				codes, err := s.RecoveryCodesLeft(ctx, user)
				must(t, "RecoveryCodesLeft", err)
				at, err := s.MFADeviceRememberedAt(ctx, user, "dev-2")
				must(t, "MFADeviceRememberedAt", err)
				return len(factorIDs(t, s, user)), codes, !at.IsZero()
			}
			setUp("u1")
			setUp("u2")
			setUp("u3")

			n, err := s.DeleteMFAFactors(ctx, "u1")
			must(t, "DeleteMFAFactors", err)
			if n != 2 {
				t.Errorf("DeleteMFAFactors = %d, want 2", n)
			}
			if f, c, d := has("u1"); f != 0 || c != 0 || d {
				t.Errorf("after the reset u1 has %d factors, %d codes, remembered device %v; want none", f, c, d)
			}
			if f, c, d := has("u2"); f != 2 || c != 4 || !d {
				t.Errorf("u1's reset touched u2: %d factors, %d codes, remembered device %v", f, c, d)
			}
			// The grace period's start survives a reset.
			start, err := s.MFAGraceStart(ctx, "u1", clk.Now().Add(time.Hour))
			if err != nil || !start.Equal(epoch()) {
				t.Errorf("grace start after reset = %v, %v; want %v", start, err, epoch())
			}
			if n, err := s.DeleteMFAFactors(ctx, "u1"); err != nil || n != 0 {
				t.Errorf("second reset = %d, %v; want 0, nil", n, err)
			}

			// Deleting the account takes its MFA rows with it.
			must(t, "DeleteUser", s.DeleteUser(ctx, "u2"))
			if f, c, d := has("u2"); f != 0 || c != 0 || d {
				t.Errorf("after DeleteUser u2 has %d factors, %d codes, remembered device %v; want none", f, c, d)
			}
			_, err = s.MFAFactorByCredentialID(ctx, []byte("cred-u2-key\x00\xff"))
			wantErr(t, "deleted user's credential", err, storage.ErrNotFound)
			// The credential id is free again.
			createUser(t, s, "u2", "name-u2")
			newWebAuthn(t, s, clk, "u2", "u2-key", true)
			if f, c, d := has("u3"); f != 2 || c != 4 || !d {
				t.Errorf("deleting u2 touched u3: %d factors, %d codes, remembered device %v", f, c, d)
			}
		}},
		{"MFA/RememberedDevices", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			at := func(user, dev string) time.Time {
				t.Helper()
				got, err := s.MFADeviceRememberedAt(ctx, user, dev)
				must(t, "MFADeviceRememberedAt", err)
				return got
			}
			if got := at("u1", "dev"); !got.IsZero() {
				t.Errorf("unknown device remembered at %v", got)
			}
			must(t, "RememberMFADevice", s.RememberMFADevice(ctx, "u1", "dev", clk.Now()))
			clk.Advance(time.Hour)
			must(t, "RememberMFADevice old", s.RememberMFADevice(ctx, "u1", "old", epoch().Add(-48*time.Hour)))
			if got := at("u1", "dev"); !got.Equal(epoch()) {
				t.Errorf("remembered at %v, want %v", got, epoch())
			}
			must(t, "RememberMFADevice again", s.RememberMFADevice(ctx, "u1", "dev", clk.Now()))
			if got := at("u1", "dev"); !got.Equal(clk.Now()) {
				t.Errorf("after a second pass remembered at %v, want %v", got, clk.Now())
			}
			if got := at("u2", "dev"); !got.IsZero() {
				t.Errorf("u1's device remembered for u2 at %v", got)
			}
			if err := s.RememberMFADevice(ctx, "u1", "", clk.Now()); err == nil {
				t.Error("RememberMFADevice accepted an empty device id")
			}
			wantErr(t, "remembering for an unknown user", s.RememberMFADevice(ctx, "nobody", "dev", clk.Now()), storage.ErrNotFound)
			n, err := s.DeleteMFADevicesRememberedBefore(ctx, epoch().Add(-24*time.Hour))
			if err != nil || n != 1 || !at("u1", "old").IsZero() || at("u1", "dev").IsZero() {
				t.Errorf("DeleteMFADevicesRememberedBefore = %d, %v; want only the old device gone", n, err)
			}
		}},
		{"MFA/GraceStartAgrees", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			starts := make([]time.Time, racers)
			for i, err := range race(func(i int) error {
				var err error
				starts[i], err = s.MFAGraceStart(ctx, "u1", clk.Now().Add(time.Duration(i)*time.Second))
				return err
			}) {
				must(t, fmt.Sprintf("racer %d", i), err)
			}
			first := starts[0]
			if first.Before(epoch()) || first.After(epoch().Add(racers*time.Second)) || first.Location() != time.UTC {
				t.Errorf("grace start %v is none of the racers' times", first)
			}
			for i, st := range starts {
				if !st.Equal(first) {
					t.Errorf("racer %d got grace start %v, racer 0 %v: parallel first calls disagree", i, st, first)
				}
			}
			clk.Advance(24 * time.Hour)
			if st, err := s.MFAGraceStart(ctx, "u1", clk.Now()); err != nil || !st.Equal(first) {
				t.Errorf("a later call = %v, %v; want the recorded %v", st, err, first)
			}
			_, err := s.MFAGraceStart(ctx, "nobody", clk.Now())
			wantErr(t, "grace for an unknown user", err, storage.ErrNotFound)
		}},
		{"MFA/ChallengesSingleUse", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			exp := clk.Now().Add(5 * time.Minute)
			data := []byte("{\"challenge\":\"x\"}\x00\xff")
			must(t, "PutMFAChallenge", s.PutMFAChallenge(ctx, storage.MFAChallenge{ID: "c1", UserID: "u1", Kind: "webauthn_login", Data: data, ExpiresAt: exp}))
			must(t, "PutMFAChallenge(no user, no data)", s.PutMFAChallenge(ctx, storage.MFAChallenge{ID: "c2", Kind: "webauthn_discoverable", ExpiresAt: exp}))
			must(t, "PutMFAChallenge(short)", s.PutMFAChallenge(ctx, storage.MFAChallenge{ID: "c3", Kind: "totp_enrol", Data: []byte("s"), ExpiresAt: clk.Now().Add(time.Minute)}))
			wantErr(t, "a taken id", s.PutMFAChallenge(ctx, storage.MFAChallenge{ID: "c1", Kind: "k", ExpiresAt: exp}), storage.ErrConflict)
			if err := s.PutMFAChallenge(ctx, storage.MFAChallenge{ID: "c9", ExpiresAt: exp}); err == nil {
				t.Error("PutMFAChallenge accepted an empty kind")
			}

			_, err := s.TakeMFAChallenge(ctx, "c1", "webauthn_register", clk.Now())
			wantErr(t, "taking as another kind", err, storage.ErrNotFound)
			got := make([]*storage.MFAChallenge, racers)
			winner := checkOneWinner(t, race(func(i int) error {
				c, err := s.TakeMFAChallenge(ctx, "c1", "webauthn_login", clk.Now())
				got[i] = c
				if errors.Is(err, storage.ErrNotFound) {
					return storage.ErrAlreadyUsed
				}
				return err
			}))
			c := got[winner]
			if c.ID != "c1" || c.UserID != "u1" || c.Kind != "webauthn_login" || !bytes.Equal(c.Data, data) || !c.ExpiresAt.Equal(exp) {
				t.Errorf("taken challenge = %+v, want what was put", c)
			}
			_, err = s.TakeMFAChallenge(ctx, "c1", "webauthn_login", clk.Now())
			wantErr(t, "taking it again", err, storage.ErrNotFound)

			c, err = s.TakeMFAChallenge(ctx, "c2", "webauthn_discoverable", clk.Now())
			must(t, "TakeMFAChallenge(c2)", err)
			if c.UserID != "" || len(c.Data) != 0 {
				t.Errorf("c2 = %+v, want no user and no data", c)
			}

			clk.Advance(time.Minute)
			_, err = s.TakeMFAChallenge(ctx, "c3", "totp_enrol", clk.Now())
			wantErr(t, "taking at the instant of expiry", err, storage.ErrNotFound)
			_, err = s.TakeMFAChallenge(ctx, "nope", "totp_enrol", clk.Now())
			wantErr(t, "taking an unknown id", err, storage.ErrNotFound)
			n, err := s.DeleteExpiredMFAChallenges(ctx, clk.Now().Add(time.Second))
			if err != nil || n != 1 {
				t.Errorf("DeleteExpiredMFAChallenges = %d, %v; want the expired one", n, err)
			}
		}},
		{"MFA/Stats", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			if st, err := s.MFAStats(ctx, clk.Now()); err != nil || st != (storage.MFAStats{}) {
				t.Errorf("MFAStats on no users = %+v, %v; want zeros", st, err)
			}
			past, future := clk.Now().Add(-time.Hour), clk.Now().Add(time.Hour)
			for _, u := range []*storage.User{
				{ID: "totp", Username: "totp"},
				{ID: "both", Username: "both"},
				{ID: "key-codes", Username: "key-codes"},
				{ID: "pending", Username: "pending"},
				{ID: "used-codes", Username: "used-codes"},
				{ID: "none", Username: "none"},
				{ID: "future", Username: "future", ExpiresAt: &future},
				{ID: "disabled", Username: "disabled", Disabled: true},
				{ID: "expired", Username: "expired", ExpiresAt: &past},
			} {
				must(t, "CreateUser "+u.ID, s.CreateUser(ctx, u))
			}
			for _, id := range []string{"totp", "both", "future", "disabled", "expired"} {
				newTOTP(t, s, id, id+"-totp")
				confirmed(t, s, clk, id, id+"-totp", 1)
			}
			newTOTP(t, s, "totp", "totp-totp2") // a second, pending: still one user
			for _, id := range []string{"both", "key-codes", "disabled", "expired"} {
				newWebAuthn(t, s, clk, id, id+"-key", true)
			}
			newTOTP(t, s, "pending", "pending-totp")
			newWebAuthn(t, s, clk, "pending", "pending-key", false)
			for _, id := range []string{"key-codes", "used-codes", "disabled", "expired", "future"} {
				must(t, "ReplaceRecoveryCodes", s.ReplaceRecoveryCodes(ctx, id, hashes(id, 2), clk.Now()))
			}
			for _, h := range hashes("used-codes", 2) {
				if ok, _, err := s.UseRecoveryCode(ctx, "used-codes", h, clk.Now()); !ok || err != nil {
					t.Fatalf("UseRecoveryCode: %v, %v", ok, err)
				}
			}
			st, err := s.MFAStats(ctx, clk.Now())
			must(t, "MFAStats", err)
			want := storage.MFAStats{ActiveUsers: 7, WithAnyFactor: 4, WithTOTP: 3, WithWebAuthn: 2, WithRecoveryCodes: 2}
			if st != want {
				t.Errorf("MFAStats = %+v, want %+v", st, want)
			}
			// Once "future" has expired it no longer counts.
			st, err = s.MFAStats(ctx, future)
			must(t, "MFAStats later", err)
			want = storage.MFAStats{ActiveUsers: 6, WithAnyFactor: 3, WithTOTP: 2, WithWebAuthn: 2, WithRecoveryCodes: 1}
			if st != want {
				t.Errorf("MFAStats at the future user's expiry = %+v, want %+v", st, want)
			}
		}},
		{"MFA/MarkSecondFactor", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createBrowserSession(t, s, clk, "bs1", "u1")
			createBrowserSession(t, s, clk, "bs2", "u1")
			bs, err := s.BrowserSession(ctx, "bs1")
			must(t, "BrowserSession", err)
			if bs.SecondFactorAt != nil {
				t.Errorf("new session has a second factor at %v", bs.SecondFactorAt)
			}
			clk.Advance(time.Minute)
			must(t, "MarkSecondFactor", s.MarkSecondFactor(ctx, "bs1", clk.Now()))
			bs, err = s.BrowserSession(ctx, "bs1")
			must(t, "BrowserSession", err)
			if bs.SecondFactorAt == nil || !bs.SecondFactorAt.Equal(clk.Now()) {
				t.Errorf("second factor at %v, want %v", bs.SecondFactorAt, clk.Now())
			}
			if other, _ := s.BrowserSession(ctx, "bs2"); other == nil || other.SecondFactorAt != nil {
				t.Errorf("marking bs1 marked bs2: %+v", other)
			}
			wantErr(t, "marking an unknown session", s.MarkSecondFactor(ctx, "nope", clk.Now()), storage.ErrNotFound)
			clk.Advance(time.Hour)
			wantErr(t, "marking an expired session", s.MarkSecondFactor(ctx, "bs2", clk.Now()), storage.ErrNotFound)
		}},
	}
}
