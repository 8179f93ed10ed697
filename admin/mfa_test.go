package admin

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/storage"
)

// newMFAEnv is newEnv with the second-factor service; see withMFA.
func newMFAEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newEnv(t)
	withMFA(t, e)
	return e
}

// withMFA gives e's handler the second-factor service over its store, as
// the server wires it (passkeys off: no admin route runs a ceremony).
// Routes are chosen when a handler is built, so the handler is built
// again, with everything else it had (links included).
func withMFA(t *testing.T, e *testEnv) {
	t.Helper()
	h := e.handler.(*handler)
	factors := authn.NewSecondFactors(e.store, nil, "Portcullis", h.trail, h.log, time.Now)
	e.handler = New(Config{Store: h.store, Tokens: h.tokens, Hasher: h.hasher, Logger: h.log, Audit: h.trail,
		Policies: h.policies, Sessions: h.sessions, Accounts: h.accounts, Keys: h.keys, Links: h.links, MFA: factors})
}

// mfaEpoch is when the seeded factors were created, whole seconds so that
// the times compare exactly after a trip through JSON.
var mfaEpoch = time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)

// totpSeed is the secret of every seeded authenticator app (RFC 6238's);
// no response may hold it in any encoding.
var totpSeed = []byte("12345678901234567890")

// seededFactor is a factor as seeded, with what must never be shown.
type seededFactor struct {
	storage.MFAFactor
	secrets []string
}

// addTOTP stores an authenticator app of userID created at created,
// confirmed unless pending, as enrolment leaves it.
func addTOTP(t *testing.T, store *storage.Store, userID, id, name string, created time.Time, pending bool) seededFactor {
	t.Helper()
	f := storage.MFAFactor{ID: id, UserID: userID, Type: storage.FactorTOTP, Name: name, CreatedAt: created}
	if !pending {
		used := created.Add(time.Minute)
		f.ConfirmedAt, f.LastUsedAt = &created, &used
	}
	if err := store.CreateMFAFactor(t.Context(), &f, totpSeed); err != nil {
		t.Fatalf("add totp %s: %v", id, err)
	}
	return seededFactor{f, []string{
		string(totpSeed), base32.StdEncoding.EncodeToString(totpSeed), base64.StdEncoding.EncodeToString(totpSeed),
		f.SealedSecret,
	}}
}

// addKey stores a confirmed WebAuthn credential of userID, never used.
func addKey(t *testing.T, store *storage.Store, userID, id, name string, created time.Time) seededFactor {
	t.Helper()
	credID := []byte("credential-of-" + id)
	cred := []byte(`{"id":"` + base64.RawURLEncoding.EncodeToString(credID) + `","publicKey":"pQECAyYgASFYIA"}`)
	f := storage.MFAFactor{ID: id, UserID: userID, Type: storage.FactorWebAuthn, Name: name, CreatedAt: created,
		ConfirmedAt: &created, CredentialID: credID, Credential: cred}
	if err := store.CreateMFAFactor(t.Context(), &f, nil); err != nil {
		t.Fatalf("add key %s: %v", id, err)
	}
	return seededFactor{f, []string{
		base64.StdEncoding.EncodeToString(credID), base64.RawURLEncoding.EncodeToString(credID), string(credID),
		base64.StdEncoding.EncodeToString(cred), "pQECAyYgASFYIA",
	}}
}

// giveRecoveryCodes gives userID n recovery codes, of which the first used
// are spent.
func giveRecoveryCodes(t *testing.T, store *storage.Store, userID string, n, used int) {
	t.Helper()
	var hashes []string
	for i := range n {
		hashes = append(hashes, userID+"-code-"+string(rune('a'+i)))
	}
	if err := store.ReplaceRecoveryCodes(t.Context(), userID, hashes, mfaEpoch); err != nil {
		t.Fatalf("recovery codes of %s: %v", userID, err)
	}
	for _, h := range hashes[:used] {
		if ok, _, err := store.UseRecoveryCode(t.Context(), userID, h, mfaEpoch.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("use recovery code of %s: %v %v", userID, ok, err)
		}
	}
}

// Users of the MFA tests.
const (
	mfaUserID     = "0190a4b6-4444-7000-8000-000000000001" // an app, a key and recovery codes
	keyUserID     = "0190a4b6-4444-7000-8000-000000000002" // a key only
	pendingUserID = "0190a4b6-4444-7000-8000-000000000003" // an enrolment never confirmed
	noMFAUserID   = "0190a4b6-4444-7000-8000-000000000004" // nothing
	disabledID    = "0190a4b6-4444-7000-8000-000000000005" // disabled, with an app and codes
	expiredID     = "0190a4b6-4444-7000-8000-000000000006" // expired, with a key
	expiringID    = "0190a4b6-4444-7000-8000-000000000007" // expires later, an app, codes all spent
)

// mfaSeeds are the factors seedMFA stores, by id.
type mfaSeeds map[string]seededFactor

// secrets lists every secret and credential seeded.
func (s mfaSeeds) secrets() []string {
	var out []string
	for _, f := range s {
		out = append(out, f.secrets...)
	}
	return out
}

// seedMFA stores the users above and their factors.
func seedMFA(t *testing.T, store *storage.Store) mfaSeeds {
	t.Helper()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour)
	for _, u := range []storage.User{
		{ID: mfaUserID, Username: "mfa-user"},
		{ID: keyUserID, Username: "key-user"},
		{ID: pendingUserID, Username: "pending-user"},
		{ID: noMFAUserID, Username: "no-mfa-user"},
		{ID: disabledID, Username: "disabled-user", Disabled: true},
		{ID: expiredID, Username: "expired-user", ExpiresAt: &past},
		{ID: expiringID, Username: "expiring-user", ExpiresAt: &future},
	} {
		u.PasswordHash = "$argon2id$x"
		createAccount(t, store, u)
	}
	seeds := mfaSeeds{}
	for _, f := range []seededFactor{
		addTOTP(t, store, mfaUserID, "app-1", "Phone", mfaEpoch, false),
		addKey(t, store, mfaUserID, "key-1", "YubiKey", mfaEpoch.Add(time.Hour)),
		addKey(t, store, keyUserID, "key-2", "Laptop", mfaEpoch),
		addTOTP(t, store, pendingUserID, "app-pending", "Authenticator app", mfaEpoch, true),
		addTOTP(t, store, disabledID, "app-disabled", "Phone", mfaEpoch, false),
		addKey(t, store, expiredID, "key-expired", "Key", mfaEpoch),
		addTOTP(t, store, expiringID, "app-expiring", "Phone", mfaEpoch, false),
	} {
		seeds[f.ID] = f
	}
	giveRecoveryCodes(t, store, mfaUserID, 10, 3)
	giveRecoveryCodes(t, store, disabledID, 10, 0)
	giveRecoveryCodes(t, store, expiringID, 2, 2)
	return seeds
}

func userMFAPath(userID string) string { return "/admin/users/" + userID + "/mfa" }

func TestGetUserMFA(t *testing.T) {
	e := newMFAEnv(t)
	seeds := seedMFA(t, e.store)
	tests := []struct {
		name        string
		userID      string
		token       string
		status      int
		wantFactors []string // ids, in order
		wantCodes   int
	}{
		{name: "an app, a key and codes", userID: mfaUserID, token: adminToken, status: 200,
			wantFactors: []string{"app-1", "key-1"}, wantCodes: 7},
		{name: "a key and no codes", userID: keyUserID, token: adminToken, status: 200, wantFactors: []string{"key-2"}},
		{name: "a pending enrolment is no factor", userID: pendingUserID, token: adminToken, status: 200, wantFactors: []string{}},
		{name: "nothing enrolled", userID: noMFAUserID, token: adminToken, status: 200, wantFactors: []string{}},
		{name: "a disabled account's factors", userID: disabledID, token: adminToken, status: 200,
			wantFactors: []string{"app-disabled"}, wantCodes: 10},
		{name: "unknown user", userID: "0190a4b6-4444-7000-8000-0000000000ff", token: adminToken, status: 404},
		{name: "no admin scope", userID: mfaUserID, token: plainToken, status: 403},
		{name: "no token", userID: mfaUserID, status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, http.MethodGet, userMFAPath(tt.userID), tt.token, "")
			wantStatus(t, rec, tt.status)
			body := rec.Body.String()
			for _, s := range seeds.secrets() {
				if strings.Contains(body, s) {
					t.Errorf("response holds the secret or credential %q: %s", s, body)
				}
			}
			if tt.status != http.StatusOK {
				if decode[errorBody](t, rec).Error == "" {
					t.Errorf("error without a code: %s", body)
				}
				return
			}
			var raw struct {
				Factors []json.RawMessage `json:"factors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil || raw.Factors == nil {
				t.Fatalf("factors missing or null in %s (%v)", body, err)
			}
			for _, f := range raw.Factors {
				wantNoKeys(t, f, "secret", "sealed_secret", "credential", "credential_id", "last_step", "user_id", "confirmed_at")
			}
			v := decode[UserMFAView](t, rec)
			if v.UserID != tt.userID || v.RecoveryCodesLeft != tt.wantCodes {
				t.Errorf("user_id %q, recovery_codes_left %d; want %q, %d", v.UserID, v.RecoveryCodesLeft, tt.userID, tt.wantCodes)
			}
			var ids []string
			for _, f := range v.Factors {
				ids = append(ids, f.ID)
				s := seeds[f.ID]
				lastUsed := s.LastUsedAt
				if f.Type != s.Type || f.Name != s.Name || !f.CreatedAt.Equal(s.CreatedAt) ||
					(f.LastUsedAt == nil) != (lastUsed == nil) || (lastUsed != nil && !f.LastUsedAt.Equal(*lastUsed)) {
					t.Errorf("factor %+v, want type %s, name %q, created %v, last used %v", f, s.Type, s.Name, s.CreatedAt, lastUsed)
				}
				if f.CreatedAt.Location() != time.UTC {
					t.Errorf("factor %s created_at not in UTC: %v", f.ID, f.CreatedAt)
				}
			}
			if !slices.Equal(ids, tt.wantFactors) {
				t.Errorf("factors %v, want %v", ids, tt.wantFactors)
			}
		})
	}
}

func TestDeleteUserFactor(t *testing.T) {
	e := newMFAEnv(t)
	seedMFA(t, e.store)
	factor := func(userID, id string) string { return userMFAPath(userID) + "/" + id }
	steps := []struct {
		name     string
		path     string
		status   int
		wantDesc string // in error_description
		field    string // named in fields
		// after the step
		wantFactors []string
		wantCodes   int
	}{
		{name: "another user's factor", path: factor(mfaUserID, "key-2"), status: 404,
			wantDesc: `user ` + mfaUserID + ` has no factor "key-2"`, wantFactors: []string{"app-1", "key-1"}, wantCodes: 7},
		{name: "unknown user", path: factor("0190a4b6-4444-7000-8000-0000000000ff", "key-1"), status: 404,
			wantFactors: []string{"app-1", "key-1"}, wantCodes: 7},
		{name: "unstorable factor id", path: factor(mfaUserID, "key%00"), status: 400, field: "factor_id",
			wantFactors: []string{"app-1", "key-1"}, wantCodes: 7},
		{name: "the key", path: factor(mfaUserID, "key-1"), status: 204, wantFactors: []string{"app-1"}, wantCodes: 7},
		{name: "the key again", path: factor(mfaUserID, "key-1"), status: 404,
			wantDesc: `user ` + mfaUserID + ` has no factor "key-1"`, wantFactors: []string{"app-1"}, wantCodes: 7},
		// The codes are a fallback for a factor: with the last one, they go.
		{name: "the last factor", path: factor(mfaUserID, "app-1"), status: 204, wantFactors: []string{}, wantCodes: 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			rec := e.do(t, http.MethodDelete, s.path, adminToken, "")
			wantStatus(t, rec, s.status)
			if s.status != http.StatusNoContent {
				b := decode[errorBody](t, rec)
				if !strings.Contains(b.Description, s.wantDesc) {
					t.Errorf("error_description %q, want it to say %q", b.Description, s.wantDesc)
				}
				if s.field != "" && !slices.Contains(fieldNames(t, rec), s.field) {
					t.Errorf("fields %v do not name %s", fieldNames(t, rec), s.field)
				}
			}
			v := decode[UserMFAView](t, e.do(t, http.MethodGet, userMFAPath(mfaUserID), adminToken, ""))
			var ids []string
			for _, f := range v.Factors {
				ids = append(ids, f.ID)
			}
			if !slices.Equal(ids, s.wantFactors) || v.RecoveryCodesLeft != s.wantCodes {
				t.Errorf("after: factors %v, %d codes; want %v, %d", ids, v.RecoveryCodesLeft, s.wantFactors, s.wantCodes)
			}
		})
	}
	if n, err := e.store.RecoveryCodesLeft(t.Context(), mfaUserID); err != nil || n != 0 {
		t.Errorf("%d recovery codes stored (%v), want none", n, err)
	}

	// One event per removal, newest first, by the administrator.
	events := auditEvents(t, e.store, audit.TypeMFARemoved)
	want := []struct{ factorID, typ, name string }{
		{"app-1", storage.FactorTOTP, "Phone"}, {"key-1", storage.FactorWebAuthn, "YubiKey"},
	}
	if len(events) != len(want) {
		t.Fatalf("%d mfa.removed events, want %d: %+v", len(events), len(want), events)
	}
	for i, ev := range events {
		d := details(t, ev)
		if ev.Actor != "root" || ev.UserID != mfaUserID || ev.Outcome != audit.OutcomeSuccess ||
			d["factor_id"] != want[i].factorID || d["type"] != want[i].typ || d["name"] != want[i].name ||
			d["admin_client_id"] != "ops-cli" {
			t.Errorf("event %d = %+v (details %v), want the removal of %s by root through ops-cli", i, ev, d, want[i].factorID)
		}
	}
}

func TestResetUserMFA(t *testing.T) {
	e := newMFAEnv(t)
	seedMFA(t, e.store)
	tests := []struct {
		name        string
		userID      string
		status      int
		wantRemoved int64
		wantEvent   bool
	}{
		{name: "an app and a key", userID: mfaUserID, status: 200, wantRemoved: 2, wantEvent: true},
		// A pending enrolment goes too: a reset leaves nothing half-made.
		{name: "a pending enrolment", userID: pendingUserID, status: 200, wantRemoved: 1, wantEvent: true},
		{name: "nothing enrolled", userID: noMFAUserID, status: 200, wantRemoved: 0, wantEvent: true},
		{name: "unknown user", userID: "0190a4b6-4444-7000-8000-0000000000ff", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(auditEvents(t, e.store, audit.TypeMFAReset))
			rec := e.do(t, http.MethodDelete, userMFAPath(tt.userID), adminToken, "")
			wantStatus(t, rec, tt.status)
			events := auditEvents(t, e.store, audit.TypeMFAReset)
			if !tt.wantEvent {
				if len(events) != before {
					t.Errorf("%d mfa.reset events, want %d: a refused reset records nothing", len(events), before)
				}
				return
			}
			got := decode[MFAReset](t, rec)
			if got != (MFAReset{UserID: tt.userID, FactorsRemoved: tt.wantRemoved}) {
				t.Errorf("answer %+v, want %d factors removed of %s", got, tt.wantRemoved, tt.userID)
			}
			if fs, err := e.store.MFAFactors(t.Context(), tt.userID); err != nil || len(fs) != 0 {
				t.Errorf("factors left: %+v (%v)", fs, err)
			}
			if n, err := e.store.RecoveryCodesLeft(t.Context(), tt.userID); err != nil || n != 0 {
				t.Errorf("%d recovery codes left (%v)", n, err)
			}
			v := decode[UserMFAView](t, e.do(t, http.MethodGet, userMFAPath(tt.userID), adminToken, ""))
			if len(v.Factors) != 0 || v.RecoveryCodesLeft != 0 {
				t.Errorf("after the reset GET answers %+v", v)
			}
			if len(events) != before+1 {
				t.Fatalf("%d mfa.reset events, want %d", len(events), before+1)
			}
			ev, d := events[0], details(t, events[0])
			if ev.Actor != "root" || ev.UserID != tt.userID || ev.Outcome != audit.OutcomeSuccess ||
				d["factors"] != float64(tt.wantRemoved) || d["admin_client_id"] != "ops-cli" {
				t.Errorf("event %+v (details %v), want the reset of %s by root through ops-cli", ev, d, tt.userID)
			}
		})
	}
	// Other accounts keep theirs.
	if fs, err := e.store.MFAFactors(t.Context(), keyUserID); err != nil || len(fs) != 1 {
		t.Errorf("key-user's factors: %+v (%v), want their key", fs, err)
	}
}

func TestMFAStats(t *testing.T) {
	e := newMFAEnv(t)
	empty := decode[MFAStatsView](t, e.do(t, http.MethodGet, "/admin/mfa/stats", adminToken, ""))
	if empty.ActiveUsers != 0 || empty.Adoption["any"] != 0 {
		t.Errorf("stats of no users = %+v", empty)
	}
	seedMFA(t, e.store)
	rec := e.do(t, http.MethodGet, "/admin/mfa/stats", adminToken, "")
	wantStatus(t, rec, http.StatusOK)
	got := decode[MFAStatsView](t, rec)
	// Active: mfa, key, pending, no-mfa and expiring users; the disabled
	// and the expired are left out with their factors and codes. The
	// pending enrolment counts for nobody, nor do codes all spent.
	want := MFAStatsView{ActiveUsers: 5, WithAnyFactor: 3, WithTOTP: 2, WithWebAuthn: 2, WithRecoveryCodes: 1,
		Adoption: map[string]float64{"any": 0.6, "totp": 0.4, "webauthn": 0.4, "recovery_codes": 0.2}}
	if got.ActiveUsers != want.ActiveUsers || got.WithAnyFactor != want.WithAnyFactor || got.WithTOTP != want.WithTOTP ||
		got.WithWebAuthn != want.WithWebAuthn || got.WithRecoveryCodes != want.WithRecoveryCodes {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	wantShares(t, got.Adoption, want.Adoption)

	for _, tt := range []struct {
		name   string
		token  string
		status int
	}{
		{name: "no admin scope", token: plainToken, status: 403},
		{name: "no token", status: 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, e.do(t, http.MethodGet, "/admin/mfa/stats", tt.token, ""), tt.status)
		})
	}
}

func wantShares(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("adoption %v, want %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9 {
			t.Errorf("adoption[%s] = %v, want %v", k, g, w)
		}
	}
}

func TestNewMFAStatsView(t *testing.T) {
	tests := []struct {
		name  string
		stats storage.MFAStats
		want  map[string]float64
	}{
		// No active account: shares are 0, not NaN, which JSON cannot carry.
		{name: "no users", want: map[string]float64{"any": 0, "totp": 0, "webauthn": 0, "recovery_codes": 0}},
		{name: "everyone, both kinds",
			stats: storage.MFAStats{ActiveUsers: 4, WithAnyFactor: 4, WithTOTP: 4, WithWebAuthn: 4, WithRecoveryCodes: 4},
			want:  map[string]float64{"any": 1, "totp": 1, "webauthn": 1, "recovery_codes": 1}},
		{name: "a third",
			stats: storage.MFAStats{ActiveUsers: 3, WithAnyFactor: 1, WithTOTP: 1},
			want:  map[string]float64{"any": 1.0 / 3, "totp": 1.0 / 3, "webauthn": 0, "recovery_codes": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewMFAStatsView(tt.stats)
			if v.ActiveUsers != tt.stats.ActiveUsers || v.WithAnyFactor != tt.stats.WithAnyFactor || v.WithTOTP != tt.stats.WithTOTP ||
				v.WithWebAuthn != tt.stats.WithWebAuthn || v.WithRecoveryCodes != tt.stats.WithRecoveryCodes {
				t.Errorf("counts %+v, want those of %+v", v, tt.stats)
			}
			wantShares(t, v.Adoption, tt.want)
			if _, err := json.Marshal(v); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}

// TestMFARoutesNeedTheService: a server without the second-factor service
// serves none of its routes.
func TestMFARoutesNeedTheService(t *testing.T) {
	e := newEnv(t)
	h := e.handler.(*handler)
	e.handler = New(Config{Store: h.store, Tokens: h.tokens, Hasher: h.hasher, Logger: h.log, Audit: h.trail,
		Policies: h.policies, Sessions: h.sessions, Accounts: h.accounts, Keys: h.keys, Links: h.links})
	createUser(t, e.store, noMFAUserID)
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, userMFAPath(noMFAUserID)},
		{http.MethodDelete, userMFAPath(noMFAUserID)},
		{http.MethodDelete, userMFAPath(noMFAUserID) + "/key-1"},
		{http.MethodGet, "/admin/mfa/stats"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			wantStatus(t, e.do(t, tt.method, tt.path, adminToken, ""), http.StatusNotFound)
		})
	}
}
