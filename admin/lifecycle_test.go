package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

func (s brokenStore) SetPasswordMustChange(context.Context, string, bool) error {
	return s.fail("mark password change")
}

func (s brokenStore) SetUserExpiry(context.Context, string, *time.Time) error {
	return s.fail("set account expiry")
}

// refusedDomain is the address domain whose mails testMailbox's queue
// refuses, as a full queue would.
const refusedDomain = "@full.invalid"

// testMailbox is the mail queue of account links: it keeps every mail
// offered, queued or not.
type testMailbox struct {
	mu    sync.Mutex
	mails []authn.LinkMail
}

func (m *testMailbox) queue(l authn.LinkMail) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mails = append(m.mails, l)
	return !strings.HasSuffix(l.To, refusedDomain)
}

// to lists the mails offered for address.
func (m *testMailbox) to(address string) []authn.LinkMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []authn.LinkMail
	for _, l := range m.mails {
		if l.To == address {
			out = append(out, l)
		}
	}
	return out
}

// withLinks gives e's handler an account links service over its store,
// mailing into the returned mailbox, as the server wires it.
func withLinks(t *testing.T, e *testEnv) *testMailbox {
	t.Helper()
	mb := &testMailbox{}
	h := e.handler.(*handler)
	h.links = authn.NewLinks(authn.LinksConfig{Store: e.store, Mail: mb.queue, Issuer: "https://id.example.com",
		Policies: e.policies.For, Recorder: h.trail})
	return mb
}

// linkToken is the token of a mailed link to path, checked to be one.
func linkToken(t *testing.T, l authn.LinkMail, path string) string {
	t.Helper()
	u, err := url.Parse(l.Link)
	if err != nil || u.Path != path || u.Query().Get("token") == "" {
		t.Fatalf("link %q, want one to %s with a token", l.Link, path)
	}
	return u.Query().Get("token")
}

// linkStored reports whether the link of kind with token is live.
func linkStored(t *testing.T, store *storage.Store, kind, token string) bool {
	t.Helper()
	_, err := store.PeekAccountLink(t.Context(), kind, storage.HashLinkToken(token))
	return err == nil
}

// createAccount stores u as given (password hash, email, facts).
func createAccount(t *testing.T, store *storage.Store, u storage.User) {
	t.Helper()
	if err := store.CreateUser(t.Context(), &u); err != nil {
		t.Fatalf("create user %s: %v", u.ID, err)
	}
}

func details(t *testing.T, ev storage.AuditEvent) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(ev.Details), &m); err != nil {
		t.Fatalf("details %q: %v", ev.Details, err)
	}
	return m
}

// Users the OpenAPI calls below act on.
const (
	activationUserID = "0190a4b6-3333-7000-8000-000000000001" // awaiting activation, with an address
	noEmailUserID    = "0190a4b6-3333-7000-8000-000000000002" // awaiting activation, without one
	fullQueueUserID  = "0190a4b6-3333-7000-8000-000000000003" // awaiting activation, its mail refused
	expiringUserID   = "0190a4b6-3333-7000-8000-000000000004" // with a password and an address
)

// seedLifecycle adds the users of lifecycleCalls and mail to e.
func seedLifecycle(t *testing.T, e *testEnv) {
	t.Helper()
	withLinks(t, e)
	createAccount(t, e.store, storage.User{ID: activationUserID, Username: "to-activate", Email: "activate@example.com"})
	createAccount(t, e.store, storage.User{ID: noEmailUserID, Username: "no-address"})
	createAccount(t, e.store, storage.User{ID: fullQueueUserID, Username: "queue-full", Email: "x" + refusedDomain})
	createAccount(t, e.store, storage.User{ID: expiringUserID, Username: "expiring", PasswordHash: "$argon2id$x", Email: "exp@example.com"})
}

// lifecycleCalls exercise the lifecycle routes for the OpenAPI test.
func lifecycleCalls() []apiCall {
	padded := func(open, close string) string { return open + strings.Repeat(" ", maxBodyBytes) + close }
	users := "/admin/users/"
	preview := "/admin/policies/password/preview"
	expiry := users + expiringUserID + "/expiry"
	reset := users + sessionUserID + "/password-reset"
	activation := users + activationUserID + "/activation"
	return []apiCall{
		{name: "preview, merge patch", method: "POST", path: preview, token: adminToken, contentType: mergePatchType,
			body: `{"min_length":12,"force_reset_if_invalid":"change","expire_days":90}`, status: 200, docAccepts: true},
		{name: "preview, the current policy", method: "POST", path: preview, token: adminToken, body: `{}`, status: 200, docAccepts: true},
		{name: "preview, with a warning", method: "POST", path: preview, token: adminToken,
			body: `{"check_breached":false,"hibp":true}`, status: 200, docAccepts: true},
		{name: "preview, out of range", method: "POST", path: preview, token: adminToken, body: `{"min_length":4}`, status: 422},
		{name: "preview, inconsistent", method: "POST", path: preview, token: adminToken, body: `{"min_length":40,"max_length":20}`, status: 422, docAccepts: true},
		{name: "preview, unknown key", method: "POST", path: preview, token: adminToken, body: `{"min_lenght":12}`, status: 422},
		{name: "preview, whole policy", method: "POST", path: preview, token: adminToken, body: `{"password":{"min_length":12}}`, status: 422},
		{name: "preview, malformed", method: "POST", path: preview, token: adminToken, body: `{"min_length":`, status: 400},
		{name: "preview, null", method: "POST", path: preview, token: adminToken, body: `null`, status: 400},
		{name: "preview, too large", method: "POST", path: preview, token: adminToken, body: padded(`{`, `}`), status: 413, docAccepts: true},
		{name: "preview, text/plain", method: "POST", path: preview, token: adminToken, contentType: "text/plain", body: `{}`, status: 415},

		{name: "expiry, a date", method: "PUT", path: expiry, token: adminToken, body: `{"expires_at":"2099-01-02T03:04:05+02:00"}`, status: 200, docAccepts: true},
		{name: "expiry, in the past", method: "PUT", path: expiry, token: adminToken, body: `{"expires_at":"2001-01-01T00:00:00Z"}`, status: 200, docAccepts: true},
		{name: "expiry, cleared", method: "PUT", path: expiry, token: adminToken, body: `{"expires_at":null}`, status: 200, docAccepts: true},
		{name: "expiry of missing user", method: "PUT", path: missingUser + "/expiry", token: adminToken, body: `{"expires_at":null}`, status: 404, docAccepts: true},
		{name: "expiry, not a time", method: "PUT", path: expiry, token: adminToken, body: `{"expires_at":"tomorrow"}`, status: 422},
		{name: "expiry, before 1970", method: "PUT", path: expiry, token: adminToken, body: `{"expires_at":"0001-01-01T00:00:00Z"}`, status: 422, docAccepts: true},
		{name: "expiry, left out", method: "PUT", path: expiry, token: adminToken, body: `{}`, status: 422},
		{name: "expiry, a number", method: "PUT", path: expiry, token: adminToken, body: `{"expires_at":5}`, status: 400},
		{name: "expiry, unknown field", method: "PUT", path: expiry, token: adminToken, body: `{"expires":null}`, status: 400},
		{name: "expiry, null body", method: "PUT", path: expiry, token: adminToken, body: `null`, status: 400},
		{name: "expiry, too large", method: "PUT", path: expiry, token: adminToken, body: padded(`{"expires_at":null`, `}`), status: 413, docAccepts: true},
		{name: "expiry, text/plain", method: "PUT", path: expiry, token: adminToken, contentType: "text/plain", body: `{"expires_at":null}`, status: 415},

		{name: "password reset, no body", method: "POST", path: reset, token: adminToken, status: 200, docAccepts: true},
		{name: "password reset, no link", method: "POST", path: reset, token: adminToken, body: `{"send_link":false}`, status: 200, docAccepts: true},
		{name: "password reset, link mailed", method: "POST", path: users + expiringUserID + "/password-reset", token: adminToken,
			body: `{"send_link":true}`, status: 200, docAccepts: true},
		{name: "password reset of missing user", method: "POST", path: missingUser + "/password-reset", token: adminToken, status: 404, docAccepts: true},
		{name: "password reset, awaiting activation", method: "POST", path: users + activationUserID + "/password-reset", token: adminToken,
			status: 409, docAccepts: true},
		{name: "password reset, null send_link", method: "POST", path: reset, token: adminToken, body: `{"send_link":null}`, status: 422},
		{name: "password reset, send_link a string", method: "POST", path: reset, token: adminToken, body: `{"send_link":"yes"}`, status: 400},
		{name: "password reset, unknown field", method: "POST", path: reset, token: adminToken, body: `{"link":true}`, status: 400},
		{name: "password reset, null body", method: "POST", path: reset, token: adminToken, body: `null`, status: 400},
		{name: "password reset, too large", method: "POST", path: reset, token: adminToken, body: padded(`{`, `}`), status: 413, docAccepts: true},
		{name: "password reset, text/plain", method: "POST", path: reset, token: adminToken, contentType: "text/plain", body: `{}`, status: 415},

		{name: "activation, {}", method: "POST", path: activation, token: adminToken, body: `{}`, status: 200, docAccepts: true},
		{name: "activation of missing user", method: "POST", path: missingUser + "/activation", token: adminToken, status: 404, docAccepts: true},
		{name: "activation, already active", method: "POST", path: users + sessionUserID + "/activation", token: adminToken, status: 409, docAccepts: true},
		{name: "activation, no address", method: "POST", path: users + noEmailUserID + "/activation", token: adminToken, status: 409, docAccepts: true},
		{name: "activation, mail refused", method: "POST", path: users + fullQueueUserID + "/activation", token: adminToken, status: 503, docAccepts: true},
		{name: "activation, unknown field", method: "POST", path: activation, token: adminToken, body: `{"resend":true}`, status: 400},
		{name: "activation, too large", method: "POST", path: activation, token: adminToken, body: padded(`{`, `}`), status: 413, docAccepts: true},
		{name: "activation, text/plain", method: "POST", path: activation, token: adminToken, contentType: "text/plain", body: `{}`, status: 415},

		{name: "create user, activated by the owner", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"dora","email":"dora@example.com","send_activation":true}`, status: 201, docAccepts: true},
		{name: "create user, activation with a password", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"eve","password":"correct horse","email":"eve@example.com","send_activation":true}`, status: 422, docAccepts: true},
		{name: "create user, activation without an address", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"fay","send_activation":true}`, status: 422, docAccepts: true},
		{name: "create user, activation mail refused", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"gus","email":"gus` + refusedDomain + `","send_activation":true}`, status: 503, docAccepts: true},
		{name: "create user, WithoutPassword is not a field", method: "POST", path: "/admin/users", token: adminToken,
			body: `{"username":"hal","email":"hal@example.com","WithoutPassword":true}`, status: 400},
	}
}

// facts is the stored JSON of a password's facts.
func facts(t *testing.T, f policies.PasswordFacts) string {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPasswordTally judges stored facts under candidates, without a
// database.
func TestPasswordTally(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	daysAgo := func(d int) *time.Time { t := now.AddDate(0, 0, -d); return &t }
	long := facts(t, policies.FactsOf("correct horse battery staple", "alice", ""))
	short := facts(t, policies.FactsOf("hunter2!x", "bob", ""))                       // 9 characters, a digit
	leaked := facts(t, policies.PasswordFacts{Length: 12, Lower: 12, Breached: true}) // found leaked when set
	withName := facts(t, policies.FactsOf("carol-rocks-hard", "carol", ""))
	users := []storage.User{
		{ID: "a", PasswordHash: "h", PasswordFacts: long, PasswordChangedAt: daysAgo(10), CreatedAt: *daysAgo(400)},
		{ID: "b", PasswordHash: "h", PasswordFacts: short, PasswordChangedAt: daysAgo(200), CreatedAt: *daysAgo(400)},
		{ID: "c", PasswordHash: "h", PasswordFacts: leaked, PasswordChangedAt: daysAgo(1), CreatedAt: *daysAgo(1)},
		{ID: "d", PasswordHash: "h", PasswordFacts: withName, PasswordChangedAt: daysAgo(100), CreatedAt: *daysAgo(100)},
		// Set before facts and times were kept: its age runs from creation.
		{ID: "e", PasswordHash: "h", CreatedAt: *daysAgo(365)},
		{ID: "f", PasswordHash: "h", PasswordFacts: "{not json", PasswordChangedAt: daysAgo(5), CreatedAt: *daysAgo(5)},
		{ID: "g", CreatedAt: *daysAgo(3)}, // awaiting activation
	}
	def := policies.Defaults().Password
	with := func(f func(p *policies.Password)) policies.Password { p := def; f(&p); return p }
	tests := []struct {
		name string
		pol  policies.Password
		want PasswordPreview
	}{
		{name: "defaults: only the leaked one breaks a rule, nothing enforced",
			pol:  def,
			want: PasswordPreview{ByCode: map[string]int{"password_breached": 1}}},
		{name: "longer minimum, enforced",
			pol: with(func(p *policies.Password) { p.MinLength = 12; p.ForceResetIfInvalid = policies.ForceResetChange }),
			want: PasswordPreview{WouldChange: 2, ByCode: map[string]int{"too_short": 1, "password_breached": 1},
				ForceResetIfInvalid: policies.ForceResetChange}},
		{name: "counted once though breaking several rules",
			pol: with(func(p *policies.Password) {
				p.MinLength, p.MinUppercase, p.MinDigits = 12, 1, 1
				p.ForceResetIfInvalid = policies.ForceResetEmail
			}),
			want: PasswordPreview{WouldChange: 4, ByCode: map[string]int{"too_short": 1, "needs_uppercase": 4, "needs_digit": 3, "password_breached": 1},
				ForceResetIfInvalid: policies.ForceResetEmail}},
		{name: "username rule",
			pol: with(func(p *policies.Password) {
				p.DisallowUsername, p.CheckBreached = true, false
				p.ForceResetIfInvalid = policies.ForceResetChange
			}),
			want: PasswordPreview{WouldChange: 1, ByCode: map[string]int{"contains_username": 1}, ForceResetIfInvalid: policies.ForceResetChange}},
		{name: "expiry, with rules not enforced",
			pol:  with(func(p *policies.Password) { p.ExpireDays = 90; p.MinLength = 12 }),
			want: PasswordPreview{WouldChange: 3, Expired: 3, ByCode: map[string]int{"too_short": 1, "password_breached": 1}}},
		{name: "expiry and rules, an account both expired and invalid counted once",
			pol: with(func(p *policies.Password) {
				p.ExpireDays, p.MinLength = 150, 12
				p.ForceResetIfInvalid = policies.ForceResetChange
			}),
			want: PasswordPreview{WouldChange: 3, Expired: 2, ByCode: map[string]int{"too_short": 1, "password_breached": 1},
				ForceResetIfInvalid: policies.ForceResetChange}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tally := NewPasswordTally(tt.pol, now)
			for i := range users {
				tally.Add(&users[i])
			}
			want := tt.want
			want.Accounts, want.Unknown, want.WithoutPassword = 7, 2, 1
			if want.ForceResetIfInvalid == "" {
				want.ForceResetIfInvalid = policies.ForceResetOff
			}
			if got := tally.Result(); !sameJSONValue(t, got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
	t.Run("no accounts", func(t *testing.T) {
		got, _ := json.Marshal(NewPasswordTally(def, now).Result())
		if want := `{"accounts":0,"would_change":0,"by_code":{},"expired":0,"unknown":0,"without_password":0,"force_reset_if_invalid":"off"}`; string(got) != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})
}

func TestCandidatePassword(t *testing.T) {
	global := policies.Defaults()
	tests := []struct {
		name     string
		patch    string
		want     func(p policies.Password) bool
		fields   []string // of the error; nil for none
		warnings []string
	}{
		{name: "empty patch is the current section", patch: `{}`, want: func(p policies.Password) bool { return p == global.Password }},
		{name: "merged", patch: `{"min_length":12,"expire_days":30}`,
			want: func(p policies.Password) bool {
				return p.MinLength == 12 && p.ExpireDays == 30 && p.MaxLength == global.Password.MaxLength
			}},
		{name: "section warning", patch: `{"check_breached":false,"hibp":true}`, want: func(p policies.Password) bool { return p.HIBP },
			warnings: []string{"password.hibp"}},
		{name: "out of range", patch: `{"min_length":4,"force_reset_if_invalid":"sometimes"}`,
			fields: []string{"password.min_length", "password.force_reset_if_invalid"}},
		{name: "unknown key", patch: `{"min_lenght":12}`, fields: []string{"password.min_lenght"}},
		{name: "wrong type", patch: `{"expire_days":"90"}`, fields: []string{"password.expire_days"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, warnings, err := CandidatePassword(global, []byte(tt.patch))
			if tt.fields != nil {
				rec := classify(policyError(err))
				var names []string
				for _, f := range rec.fields {
					names = append(names, f.Field)
				}
				slices.Sort(names)
				want := slices.Sorted(slices.Values(tt.fields))
				if rec.status != 422 || rec.code != "invalid_policy" || !slices.Equal(names, want) {
					t.Fatalf("err = %v (%d %s %v), want 422 invalid_policy naming %v", err, rec.status, rec.code, names, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(p) {
				t.Errorf("candidate = %+v", p)
			}
			var names []string
			for _, w := range warnings {
				names = append(names, w.Field)
			}
			if !slices.Equal(names, tt.warnings) {
				t.Errorf("warnings = %v, want %v", names, tt.warnings)
			}
		})
	}
}

// TestPreviewPassword pages through more users than one batch and reads
// nothing but stored facts.
func TestPreviewPassword(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	short := facts(t, policies.FactsOf("hunter2!x", "u", ""))
	n := previewBatch + 7
	for i := range n {
		u := storage.User{ID: fmt.Sprintf("0190a4b6-4444-7000-8000-%012d", i), Username: fmt.Sprintf("u%04d", i), PasswordHash: "$argon2id$x"}
		switch {
		case i%3 == 0:
			u.PasswordFacts = short
		case i%3 == 1:
			u.PasswordFacts = facts(t, policies.FactsOf("a long enough passphrase", u.Username, ""))
		}
		createAccount(t, e.store, u)
	}
	before := e.policies.Global().Canonical()
	eventsBefore, err := e.store.ListAudit(ctx, storage.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	rec := e.doAs(t, "POST", "/admin/policies/password/preview", mergePatchType, `{"min_length":12,"force_reset_if_invalid":"change"}`)
	wantStatus(t, rec, 200)
	got := decode[passwordPreviewed](t, rec)
	shorts := (n + 2) / 3
	unknown := n - shorts - (n+1)/3
	if got.Accounts != n || got.WouldChange != shorts || got.ByCode["too_short"] != shorts || got.Unknown != unknown ||
		got.Expired != 0 || got.ForceResetIfInvalid != "change" || got.Warnings == nil {
		t.Errorf("preview = %+v, want %d accounts, %d too short, %d unknown", got, n, shorts, unknown)
	}

	rec = e.do(t, "POST", "/admin/policies/password/preview", adminToken, `{"min_length":4,"expire_days":-1}`)
	wantStatus(t, rec, 422)
	if names := fieldNames(t, rec); !slices.Equal(names, []string{"password.min_length", "password.expire_days"}) {
		t.Errorf("fields = %v", names)
	}
	if after := e.policies.Global().Canonical(); string(after) != string(before) {
		t.Error("a preview changed the policy")
	}
	events, err := e.store.ListAudit(ctx, storage.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(eventsBefore) {
		t.Errorf("a preview recorded %+v", events[:len(events)-len(eventsBefore)])
	}
}

func TestNewUserView(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	created := now.AddDate(0, 0, -10)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	reg := policies.Defaults().Registration
	thirty := reg
	thirty.AccountExpireDays = 30
	five := reg
	five.AccountExpireDays = 5
	tests := []struct {
		name      string
		reg       policies.Registration
		expires   *time.Time
		effective *time.Time
		expired   bool
	}{
		{name: "never", reg: reg},
		{name: "policy date", reg: thirty, effective: at(20 * 24 * time.Hour)},
		{name: "policy date passed", reg: five, effective: at(-5 * 24 * time.Hour), expired: true},
		{name: "administrator's date first", reg: five, expires: at(time.Hour), effective: at(time.Hour)},
		{name: "administrator's date now", reg: reg, expires: at(0), effective: at(0), expired: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &storage.User{ID: "u", PasswordHash: "h", CreatedAt: created, ExpiresAt: tt.expires}
			v := NewUserView(u, tt.reg, now)
			if !sameJSONValue(t, v.ExpiresAt, tt.expires) || !sameJSONValue(t, v.EffectiveExpiresAt, tt.effective) || v.Expired != tt.expired {
				t.Errorf("view = %+v, want expires %v effective %v expired %v", v, tt.expires, tt.effective, tt.expired)
			}
		})
	}
	v := NewUserView(&storage.User{ID: "w", CreatedAt: created, PasswordMustChange: true}, reg, now)
	if !v.AwaitingActivation || !v.PasswordMustChange || v.PasswordChangedAt != nil {
		t.Errorf("view of an account awaiting activation = %+v", v)
	}
}

// userState is what the lifecycle routes change of a user, to prove a
// refused request changed nothing.
func userState(t *testing.T, store *storage.Store, id string) string {
	t.Helper()
	u, err := store.User(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("expires %v must_change %v", u.ExpiresAt, u.PasswordMustChange)
}

func TestSetExpiry(t *testing.T) {
	const uid = "0190a4b6-5555-7000-8000-000000000001"
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			store := storagetest.Open(t, b.URL)
			e := newEnvWith(t, store, store)
			createUser(t, store, uid)
			createClient(t, store, "app")
			path := "/admin/users/" + uid + "/expiry"
			events := func() []storage.AuditEvent { t.Helper(); return auditEvents(t, store, audit.TypeAccountExpiryChanged) }

			refused := []struct {
				name, path, body string
				status           int
				field            string
			}{
				{name: "unknown user", path: missingUser + "/expiry", body: `{"expires_at":null}`, status: 404},
				{name: "left out", path: path, body: `{}`, status: 422, field: "expires_at"},
				{name: "not RFC 3339", path: path, body: `{"expires_at":"2030-01-02 03:04:05"}`, status: 422, field: "expires_at"},
				{name: "no zone", path: path, body: `{"expires_at":"2030-01-02T03:04:05"}`, status: 422, field: "expires_at"},
				{name: "year one", path: path, body: `{"expires_at":"0001-01-01T00:00:00Z"}`, status: 422, field: "expires_at"},
				{name: "a number", path: path, body: `{"expires_at":1700000000}`, status: 400, field: "expires_at"},
				{name: "unknown field", path: path, body: `{"expires_at":null,"now":true}`, status: 400, field: "now"},
				{name: "empty body", path: path, status: 415},
			}
			before := userState(t, store, uid)
			for _, tt := range refused {
				t.Run(tt.name, func(t *testing.T) {
					rec := e.do(t, "PUT", tt.path, adminToken, tt.body)
					wantStatus(t, rec, tt.status)
					if names := fieldNames(t, rec); tt.field != "" && !slices.Equal(names, []string{tt.field}) {
						t.Errorf("fields = %v, want %s; body %s", names, tt.field, rec.Body)
					}
					if got := userState(t, store, uid); got != before {
						t.Errorf("state %s, was %s", got, before)
					}
					if got := events(); len(got) != 0 {
						t.Errorf("recorded %+v", got)
					}
				})
			}

			createSession(t, store, "s-1", uid)
			sig := createToken(t, store, "app", uid, "s-1")

			t.Run("a future date", func(t *testing.T) {
				rec := e.do(t, "PUT", path, adminToken, `{"expires_at":"2099-05-06T07:08:09.123456789+02:00"}`)
				wantStatus(t, rec, 200)
				v := decode[UserView](t, rec)
				want := time.Date(2099, 5, 6, 5, 8, 9, 123456000, time.UTC)
				if v.ExpiresAt == nil || !v.ExpiresAt.Equal(want) || v.EffectiveExpiresAt == nil || !v.EffectiveExpiresAt.Equal(want) || v.Expired {
					t.Errorf("view = %+v, want expiring at %v", v, want)
				}
				if !tokenActive(t, store, sig) || len(sessionIDs(t, store, uid)) != 1 {
					t.Error("a future date ended the user's sessions")
				}
				ev := events()
				if len(ev) != 1 || ev[0].Actor != "root" || ev[0].UserID != uid || ev[0].Reason != "admin" {
					t.Fatalf("events = %+v", ev)
				}
				d := details(t, ev[0])
				if d["before"] != nil || d["after"] != "2099-05-06T05:08:09.123456Z" || d["effective_before"] != nil ||
					d["expired"] != false || d["admin_client_id"] != "ops-cli" {
					t.Errorf("details = %s", ev[0].Details)
				}
			})
			t.Run("a past date ends everything", func(t *testing.T) {
				rec := e.do(t, "PUT", path, adminToken, `{"expires_at":"2020-01-01T00:00:00Z"}`)
				wantStatus(t, rec, 200)
				if v := decode[UserView](t, rec); !v.Expired {
					t.Errorf("view = %+v, want expired", v)
				}
				// The token is revoked, not only refused for the account's
				// expiry: tokens_revoked below counts it.
				if _, err := store.GetAccessTokenSession(t.Context(), sig, &tokenSession{}); err == nil || len(sessionIDs(t, store, uid)) != 0 {
					t.Error("the expired user's session or token survived")
				}
				d := details(t, events()[0])
				if d["before"] != "2099-05-06T05:08:09.123456Z" || d["after"] != "2020-01-01T00:00:00Z" || d["expired"] != true ||
					d["sessions_ended"] != 1.0 || d["tokens_revoked"] != 1.0 {
					t.Errorf("details = %v", d)
				}
				for _, typ := range []string{audit.TypeSessionEnded, audit.TypeTokenRevoked} {
					ev := auditEvents(t, store, typ)
					if len(ev) != 1 || ev[0].Reason != authn.ReasonAccountExpired || ev[0].Actor != "root" {
						t.Errorf("%s events = %+v, want one with reason %s", typ, ev, authn.ReasonAccountExpired)
					}
				}
			})
			t.Run("cleared, the policy decides", func(t *testing.T) {
				wantStatus(t, e.doAs(t, "PATCH", "/admin/policies", mergePatchType, `{"registration":{"account_expire_days":30}}`), 200)
				rec := e.do(t, "PUT", path, adminToken, `{"expires_at":null}`)
				wantStatus(t, rec, 200)
				v := decode[UserView](t, rec)
				want := v.CreatedAt.Add(30 * 24 * time.Hour)
				if v.ExpiresAt != nil || v.EffectiveExpiresAt == nil || !v.EffectiveExpiresAt.Equal(want) || v.Expired {
					t.Errorf("view = %+v, want the policy's %v", v, want)
				}
				if got := decode[UserView](t, e.do(t, "GET", "/admin/users/"+uid, adminToken, "")); !sameJSONValue(t, got, v) {
					t.Errorf("GET says %+v", got)
				}
				if d := details(t, events()[0]); d["after"] != nil || d["effective_after"] == nil || d["expired"] != false {
					t.Errorf("details = %v", d)
				}
			})
		})
	}
}

func TestRequirePasswordReset(t *testing.T) {
	const (
		uid     = "0190a4b6-6666-7000-8000-000000000001"
		bare    = "0190a4b6-6666-7000-8000-000000000002" // no address
		pending = "0190a4b6-6666-7000-8000-000000000003" // awaiting activation
	)
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			store := storagetest.Open(t, b.URL)
			e := newEnvWith(t, store, store)
			createAccount(t, store, storage.User{ID: uid, Username: "mark", PasswordHash: "$argon2id$x", Email: "mark@example.com"})
			createAccount(t, store, storage.User{ID: bare, Username: "bare", PasswordHash: "$argon2id$x"})
			createAccount(t, store, storage.User{ID: pending, Username: "pending", Email: "pending@example.com"})
			path := func(id string) string { return "/admin/users/" + id + "/password-reset" }
			events := func() []storage.AuditEvent {
				t.Helper()
				return auditEvents(t, store, audit.TypePasswordChangeRequired)
			}
			type answer struct {
				MustChange bool    `json:"must_change"`
				LinkSent   bool    `json:"link_sent"`
				NotSent    *string `json:"link_not_sent_reason"`
			}

			t.Run("without mail", func(t *testing.T) {
				rec := e.do(t, "POST", path(bare), adminToken, "")
				wantStatus(t, rec, 200)
				if got := decode[answer](t, rec); !got.MustChange || got.LinkSent || got.NotSent == nil || *got.NotSent != LinkMailUnavailable {
					t.Errorf("answer = %s", rec.Body)
				}
			})
			mb := withLinks(t, e)

			refused := []struct {
				name, path, body string
				status           int
				code, field      string
			}{
				{name: "unknown user", path: missingUser + "/password-reset", status: 404, code: "not_found"},
				{name: "awaiting activation", path: path(pending), status: 409, code: codeAwaitingActivation},
				{name: "null send_link", path: path(uid), body: `{"send_link":null}`, status: 422, field: "send_link"},
				{name: "send_link a string", path: path(uid), body: `{"send_link":"false"}`, status: 400, field: "send_link"},
				{name: "unknown field", path: path(uid), body: `{"sendlink":false}`, status: 400, field: "sendlink"},
				{name: "null body", path: path(uid), body: `null`, status: 400},
			}
			for _, tt := range refused {
				t.Run(tt.name, func(t *testing.T) {
					before := userState(t, store, uid)
					rec := e.do(t, "POST", tt.path, adminToken, tt.body)
					wantStatus(t, rec, tt.status)
					if tt.code != "" {
						if got := decode[errorBody](t, rec).Error; got != tt.code {
							t.Errorf("error = %q, want %q", got, tt.code)
						}
					}
					if names := fieldNames(t, rec); tt.field != "" && !slices.Equal(names, []string{tt.field}) {
						t.Errorf("fields = %v, want %s", names, tt.field)
					}
					if got := userState(t, store, uid); got != before {
						t.Errorf("state %s, was %s", got, before)
					}
					if got := userState(t, store, pending); strings.Contains(got, "must_change true") {
						t.Error("the account awaiting activation was marked")
					}
					if n := len(events()); n != 1 {
						t.Errorf("%d events, want the first request's only", n)
					}
				})
			}

			t.Run("with a link, by default", func(t *testing.T) {
				rec := e.do(t, "POST", path(uid), adminToken, "")
				wantStatus(t, rec, 200)
				if got := decode[answer](t, rec); !got.MustChange || !got.LinkSent || got.NotSent != nil {
					t.Errorf("answer = %s", rec.Body)
				}
				u, err := store.User(t.Context(), uid)
				if err != nil || !u.PasswordMustChange {
					t.Fatalf("user = %+v, %v; want the password marked", u, err)
				}
				mails := mb.to("mark@example.com")
				if len(mails) != 1 || mails[0].Kind != authn.LinkReset {
					t.Fatalf("mails = %+v", mails)
				}
				if token := linkToken(t, mails[0], authn.ResetPasswordPath); !linkStored(t, store, authn.LinkReset, token) {
					t.Error("the mailed link is not stored")
				}
				ev := events()[0]
				if ev.Actor != "root" || ev.UserID != uid || ev.Reason != "admin" {
					t.Errorf("event = %+v", ev)
				}
				if d := details(t, ev); d["link_sent"] != true || d["send_link"] != true || d["already_marked"] != false || d["admin_client_id"] != "ops-cli" {
					t.Errorf("details = %v", d)
				}
				sent := auditEvents(t, store, audit.TypeLinkSent)
				if len(sent) != 1 || sent[0].Reason != authn.LinkReset || sent[0].Actor != "root" {
					t.Errorf("account_link.sent events = %+v", sent)
				}
			})
			t.Run("without a link", func(t *testing.T) {
				rec := e.do(t, "POST", path(uid), adminToken, `{"send_link":false}`)
				wantStatus(t, rec, 200)
				if got := decode[answer](t, rec); got.LinkSent || got.NotSent == nil || *got.NotSent != LinkNotRequested {
					t.Errorf("answer = %s", rec.Body)
				}
				if n := len(mb.to("mark@example.com")); n != 1 {
					t.Errorf("%d mails, want still 1", n)
				}
				if d := details(t, events()[0]); d["already_marked"] != true || d["link_sent"] != false {
					t.Errorf("details = %v", d)
				}
			})
			t.Run("no address", func(t *testing.T) {
				rec := e.do(t, "POST", path(bare), adminToken, `{"send_link":true}`)
				wantStatus(t, rec, 200)
				if got := decode[answer](t, rec); got.LinkSent || got.NotSent == nil || *got.NotSent != LinkNoEmail {
					t.Errorf("answer = %s", rec.Body)
				}
			})
			t.Run("the view shows the mark", func(t *testing.T) {
				if v := decode[UserView](t, e.do(t, "GET", "/admin/users/"+uid, adminToken, "")); !v.PasswordMustChange {
					t.Errorf("view = %+v", v)
				}
			})
		})
	}
}

func TestSendActivation(t *testing.T) {
	e := newEnv(t)
	const (
		pending = "0190a4b6-7777-7000-8000-000000000001"
		refused = "0190a4b6-7777-7000-8000-000000000002"
		bare    = "0190a4b6-7777-7000-8000-000000000003"
		active  = "0190a4b6-7777-7000-8000-000000000004"
	)
	createAccount(t, e.store, storage.User{ID: pending, Username: "pending", Email: "pending@example.com"})
	createAccount(t, e.store, storage.User{ID: refused, Username: "refused", Email: "r" + refusedDomain})
	createAccount(t, e.store, storage.User{ID: bare, Username: "bare"})
	createAccount(t, e.store, storage.User{ID: active, Username: "active", PasswordHash: "$argon2id$x", Email: "a@example.com"})
	path := func(id string) string { return "/admin/users/" + id + "/activation" }
	sentEvents := func() int { t.Helper(); return len(auditEvents(t, e.store, audit.TypeLinkSent)) }

	t.Run("mail not configured", func(t *testing.T) {
		rec := e.do(t, "POST", path(pending), adminToken, "")
		wantStatus(t, rec, 503)
		if got := decode[errorBody](t, rec).Error; got != codeMailUnavailable {
			t.Errorf("error = %q", got)
		}
	})
	mb := withLinks(t, e)
	tests := []struct {
		name, id, body string
		status         int
		code           string
	}{
		{name: "unknown user", id: "0190a4b6-0000-7000-8000-000000000000", status: 404, code: "not_found"},
		{name: "already active", id: active, status: 409, code: codeAlreadyActive},
		{name: "no address", id: bare, status: 409, code: codeNoEmail},
		{name: "queue refused", id: refused, status: 503, code: codeMailUnavailable},
		{name: "unknown field", id: pending, body: `{"force":true}`, status: 400, code: "invalid_request"},
		{name: "null body", id: pending, body: `null`, status: 400, code: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, "POST", path(tt.id), adminToken, tt.body)
			wantStatus(t, rec, tt.status)
			if got := decode[errorBody](t, rec).Error; got != tt.code {
				t.Errorf("error = %q, want %q", got, tt.code)
			}
			if n := sentEvents(); n != 0 {
				t.Errorf("%d account_link.sent events, want none", n)
			}
		})
	}
	t.Run("the refused mail's link was not kept", func(t *testing.T) {
		mails := mb.to("r" + refusedDomain)
		if len(mails) != 1 {
			t.Fatalf("mails = %+v", mails)
		}
		if linkStored(t, e.store, authn.LinkActivation, linkToken(t, mails[0], authn.ActivatePath)) {
			t.Error("a link whose mail was refused is stored")
		}
	})
	t.Run("sent, then sent again", func(t *testing.T) {
		var tokens []string
		for _, body := range []string{"", "{}"} {
			rec := e.do(t, "POST", path(pending), adminToken, body)
			wantStatus(t, rec, 200)
			if got := decode[activationSent](t, rec); !got.LinkSent {
				t.Errorf("answer = %s", rec.Body)
			}
			mails := mb.to("pending@example.com")
			tokens = append(tokens, linkToken(t, mails[len(mails)-1], authn.ActivatePath))
		}
		if linkStored(t, e.store, authn.LinkActivation, tokens[0]) || !linkStored(t, e.store, authn.LinkActivation, tokens[1]) {
			t.Error("want the second link live and the first one superseded")
		}
		ev := auditEvents(t, e.store, audit.TypeLinkSent)
		if len(ev) != 2 || ev[0].Reason != authn.LinkActivation || ev[0].Actor != "root" || ev[0].UserID != pending {
			t.Errorf("events = %+v", ev)
		}
		if d := details(t, ev[0]); d["admin_client_id"] != "ops-cli" {
			t.Errorf("details = %v", d)
		}
	})
}

func TestCreateUserWithActivation(t *testing.T) {
	e := newEnv(t)
	userCount := func() int {
		t.Helper()
		rows, err := e.store.ListUsers(t.Context(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	t.Run("mail not configured", func(t *testing.T) {
		rec := e.do(t, "POST", "/admin/users", adminToken, `{"username":"ann","email":"ann@example.com","send_activation":true}`)
		wantStatus(t, rec, 503)
		if userCount() != 0 {
			t.Error("a user was created")
		}
	})
	mb := withLinks(t, e)
	refused := []struct {
		name, body string
		status     int
		fields     []string
	}{
		{name: "with a password", body: `{"username":"ann","password":"correct horse","email":"ann@example.com","send_activation":true}`,
			status: 422, fields: []string{"password"}},
		{name: "without an address", body: `{"username":"ann","send_activation":true}`, status: 422, fields: []string{"email"}},
		{name: "bad address", body: `{"username":"ann","email":"not an address","send_activation":true}`, status: 422, fields: []string{"email"}},
		{name: "mail refused", body: `{"username":"ann","email":"ann` + refusedDomain + `","send_activation":true}`, status: 503},
		{name: "no password, no activation", body: `{"username":"ann","email":"ann@example.com"}`, status: 422, fields: []string{"password"}},
		{name: "WithoutPassword smuggled", body: `{"username":"ann","email":"ann@example.com","WithoutPassword":true}`, status: 400, fields: []string{"WithoutPassword"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, "POST", "/admin/users", adminToken, tt.body)
			wantStatus(t, rec, tt.status)
			names := fieldNames(t, rec)
			slices.Sort(names)
			names = slices.Compact(names)
			if tt.fields != nil && !slices.Equal(names, tt.fields) {
				t.Errorf("fields = %v, want %v", names, tt.fields)
			}
			if userCount() != 0 {
				t.Error("a user was created")
			}
			if n := len(auditEvents(t, e.store, audit.TypeUserCreated)); n != 0 {
				t.Errorf("%d user.created events", n)
			}
		})
	}
	t.Run("created and mailed", func(t *testing.T) {
		rec := e.do(t, "POST", "/admin/users", adminToken, `{"username":"Ann","email":"ann@example.com","send_activation":true}`)
		wantStatus(t, rec, 201)
		got := decode[userCreated](t, rec)
		if !got.ActivationLinkSent || !got.AwaitingActivation || got.Username != "ann" {
			t.Errorf("answer = %s", rec.Body)
		}
		mails := mb.to("ann@example.com")
		if len(mails) != 1 || mails[0].UserID != got.ID {
			t.Fatalf("mails = %+v", mails)
		}
		if !linkStored(t, e.store, authn.LinkActivation, linkToken(t, mails[0], authn.ActivatePath)) {
			t.Error("the activation link is not stored")
		}
		if n := len(auditEvents(t, e.store, audit.TypeUserCreated)); n != 1 {
			t.Errorf("%d user.created events", n)
		}
		if ev := auditEvents(t, e.store, audit.TypeLinkSent); len(ev) != 1 || ev[0].UserID != got.ID || ev[0].Reason != authn.LinkActivation {
			t.Errorf("account_link.sent events = %+v", ev)
		}
	})
	t.Run("with a password, no activation", func(t *testing.T) {
		rec := e.do(t, "POST", "/admin/users", adminToken, `{"username":"bob","password":"correct horse"}`)
		wantStatus(t, rec, 201)
		if got := decode[userCreated](t, rec); got.ActivationLinkSent || got.AwaitingActivation || got.PasswordChangedAt == nil {
			t.Errorf("answer = %s", rec.Body)
		}
	})
}
