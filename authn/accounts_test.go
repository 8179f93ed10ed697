package authn

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// accountsEnv is the accounts service over one backend, with alice signed
// in on two browsers (s-keep, s-other) holding a token in each and one
// issued under no session, and bob signed in with a token of his own.
type accountsEnv struct {
	st       *storage.Store
	clock    *storagetest.Clock
	recorder *audit.Recorder
	accounts *Accounts
	// invalidate is the session policy's invalidate_on_password_change.
	invalidate bool
	// seen are the candidates the extra rule was asked about.
	seen []policies.PasswordCandidate

	alice, bob                          *storage.User
	keepTok, otherTok, looseTok, bobTok string
}

// Problems of the test rule, by the password that triggers them.
const (
	refusedPassword = "password contains portcullis"
	brokenPassword  = "the history is unreadable"
)

var errHistory = errors.New("password history unavailable")

func newAccountsEnv(t *testing.T, dbURL string, invalidate bool) *accountsEnv {
	t.Helper()
	e := &accountsEnv{clock: newClock(), invalidate: invalidate}
	e.st = storagetest.OpenWithClock(t, dbURL, e.clock.Now)
	e.recorder = audit.NewRecorder(e.st, nil, e.clock.Now)
	rule := func(_ context.Context, c policies.PasswordCandidate) ([]policies.PasswordProblem, error) {
		e.seen = append(e.seen, c)
		switch {
		case strings.Contains(c.Password, "portcullis"):
			return []policies.PasswordProblem{{Code: "names_server", Message: "must not name the server"}}, nil
		case c.Password == brokenPassword:
			return nil, errHistory
		}
		return nil, nil
	}
	e.accounts = NewAccounts(AccountsConfig{
		Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Recorder: e.recorder, Now: e.clock.Now,
		Rules: []policies.PasswordRule{policies.PasswordRuleFunc(rule)},
		Policies: func(string) policies.Policy {
			p := policies.Defaults()
			p.Session.InvalidateOnPasswordChange = e.invalidate
			return p
		},
	})
	e.alice = e.create(t, "alice")
	e.bob = e.create(t, "bob")
	e.seen = nil
	for _, sid := range []string{"s-keep", "s-other"} {
		e.session(t, e.alice.ID, sid)
	}
	e.session(t, e.bob.ID, "s-bob")
	e.keepTok = issueToken(t, e.st, e.alice.ID, "s-keep")
	e.otherTok = issueToken(t, e.st, e.alice.ID, "s-other")
	e.looseTok = issueToken(t, e.st, e.alice.ID, "")
	e.bobTok = issueToken(t, e.st, e.bob.ID, "s-bob")
	return e
}

func (e *accountsEnv) create(t *testing.T, username string) *storage.User {
	t.Helper()
	u, err := e.accounts.Create(t.Context(), UserSpec{Username: username, Password: loginPassword}, Actor{ID: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *accountsEnv) session(t *testing.T, userID, id string) {
	t.Helper()
	now := e.clock.Now().UTC()
	bs := &storage.BrowserSession{ID: id, UserID: userID, AuthTime: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := e.st.CreateBrowserSession(t.Context(), bs); err != nil {
		t.Fatal(err)
	}
}

// state is which of the fixture's tokens and sessions are still live.
func (e *accountsEnv) state(t *testing.T) (tokens, sessions []string) {
	t.Helper()
	for name, sig := range map[string]string{"keep": e.keepTok, "other": e.otherTok, "loose": e.looseTok, "bob": e.bobTok} {
		if tokenActive(t, e.st, sig) {
			tokens = append(tokens, name)
		}
	}
	slices.Sort(tokens)
	for _, u := range []*storage.User{e.alice, e.bob} {
		live, err := e.st.UserBrowserSessions(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, bs := range live {
			sessions = append(sessions, bs.ID)
		}
	}
	slices.Sort(sessions)
	return tokens, sessions
}

func (e *accountsEnv) passwordIs(t *testing.T, userID, pw string) bool {
	t.Helper()
	u, err := e.st.User(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := hashing.Verify(u.PasswordHash, pw)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// requestCtx is a request's context as the server's middleware fills it.
func requestCtx(t *testing.T) context.Context {
	return reqinfo.With(t.Context(), reqinfo.Info{IP: netip.MustParseAddr("192.0.2.44"), DeviceID: "dev-44"})
}

func eventsOf(t *testing.T, rec *audit.Recorder, typ string) []audit.Event {
	t.Helper()
	evs, _, err := rec.Query(t.Context(), audit.Query{Type: typ, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(evs)
	return evs
}

func fieldsOf(err error) []string {
	fe, ok := fielderr.As(err)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range fe.Fields {
		out = append(out, f.Field+": "+f.Message)
	}
	return out
}

func TestAccountsCreate(t *testing.T) {
	tests := []struct {
		name       string
		spec       UserSpec
		wantFields []string
		wantErr    error
		// wantRuleCalls is how often the extra rule ran.
		wantRuleCalls int
	}{
		{name: "created", spec: UserSpec{Username: " Carol ", Password: newPassword, Email: "carol@example.com", EmailVerified: true},
			wantRuleCalls: 1},
		{name: "every problem at once, in field order",
			spec:          UserSpec{Username: "", Password: "short", Email: "not an address"},
			wantFields:    []string{"username: is required", "password: must be at least 8 characters", "email: is not a valid email address"},
			wantRuleCalls: 1},
		{name: "too long a password reaches no other rule", spec: UserSpec{Username: "carol", Password: strings.Repeat("x", MaxPasswordLength+1)},
			wantFields: []string{"password: must be at most 1024 bytes"}},
		{name: "refused by a rule", spec: UserSpec{Username: "carol", Password: refusedPassword},
			wantFields: []string{"password: must not name the server"}, wantRuleCalls: 1},
		{name: "a rule that fails", spec: UserSpec{Username: "carol", Password: brokenPassword},
			wantErr: errHistory, wantRuleCalls: 1},
		{name: "username taken", spec: UserSpec{Username: "ALICE", Password: newPassword},
			wantErr: storage.ErrConflict, wantRuleCalls: 1},
		{name: "verified without email", spec: UserSpec{Username: "carol", Password: newPassword, EmailVerified: true},
			wantFields: []string{"email_verified: needs an email"}, wantRuleCalls: 1},
	}
	for _, tt := range tests {
		// Backends per case: each runs on a fresh database.
		for _, b := range storagetest.Backends(t) {
			t.Run(tt.name+"/"+b.Name, func(t *testing.T) {
				e := newAccountsEnv(t, b.URL, true)
				before := len(eventsOf(t, e.recorder, audit.TypeUserCreated))
				u, err := e.accounts.Create(requestCtx(t), tt.spec, Actor{ID: "cli:ops", Details: map[string]any{"via": "test"}})
				if len(e.seen) != tt.wantRuleCalls {
					t.Errorf("extra rule ran %d times, want %d", len(e.seen), tt.wantRuleCalls)
				}
				created := eventsOf(t, e.recorder, audit.TypeUserCreated)[before:]
				if tt.wantFields != nil || tt.wantErr != nil {
					if got := fieldsOf(err); tt.wantFields != nil && !slices.Equal(got, tt.wantFields) {
						t.Errorf("fields = %q, want %q (err %v)", got, tt.wantFields, err)
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("err = %v, want %v", err, tt.wantErr)
					}
					if u != nil || len(created) != 0 {
						t.Errorf("refused creation returned %+v and recorded %+v", u, created)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if u.Username != "carol" || u.ID == "" || !e.passwordIs(t, u.ID, tt.spec.Password) || cheapArgon2.NeedsRehash(u.PasswordHash) {
					t.Errorf("created %+v: want carol, an id and the password hashed under the configured parameters", u)
				}
				if c := e.seen[0]; c.Username != "carol" || c.Email != "carol@example.com" || c.UserID != "" || !c.Now.Equal(e.clock.Now()) ||
					c.Policy.Session.InvalidateOnPasswordChange != e.invalidate {
					t.Errorf("the rule saw %+v", c)
				}
				if len(created) != 1 || created[0].Actor != "cli:ops" || created[0].UserID != u.ID || created[0].Outcome != audit.OutcomeSuccess ||
					created[0].Details["username"] != "carol" || created[0].Details["via"] != "test" ||
					created[0].IP != "192.0.2.44" || created[0].Device != "dev-44" {
					t.Errorf("user.created events = %+v", created)
				}
			})
		}
	}
}

func TestAccountsPasswordWrites(t *testing.T) {
	tests := []struct {
		name       string
		reset      bool // ResetPassword rather than ChangePassword from s-keep
		invalidate bool
		user       string // "" means alice
		password   string
		wantTokens []string
		wantSess   []string
		wantReason string
		wantFields []string
		wantErr    error
	}{
		{name: "change ends all but this session", invalidate: true, password: newPassword,
			wantTokens: []string{"bob", "keep"}, wantSess: []string{"s-bob", "s-keep"}, wantReason: PasswordReasonChange},
		{name: "change under a policy that keeps sessions", password: newPassword,
			wantTokens: []string{"bob", "keep", "loose", "other"}, wantSess: []string{"s-bob", "s-keep", "s-other"}, wantReason: PasswordReasonChange},
		{name: "reset ends every session", reset: true, invalidate: true, password: newPassword,
			wantTokens: []string{"bob"}, wantSess: []string{"s-bob"}, wantReason: PasswordReasonReset},
		{name: "reset under a policy that keeps sessions", reset: true, password: newPassword,
			wantTokens: []string{"bob", "keep", "loose", "other"}, wantSess: []string{"s-bob", "s-keep", "s-other"}, wantReason: PasswordReasonReset},
		{name: "too short", reset: true, invalidate: true, password: "short",
			wantFields: []string{"password: must be at least 8 characters"}},
		{name: "refused by a rule", invalidate: true, password: refusedPassword,
			wantFields: []string{"password: must not name the server"}},
		{name: "a rule that fails", reset: true, invalidate: true, password: brokenPassword, wantErr: errHistory},
		{name: "unknown user", reset: true, invalidate: true, user: "nobody", password: newPassword, wantErr: storage.ErrNotFound},
	}
	for _, tt := range tests {
		// Backends per case: each runs on a fresh database.
		for _, b := range storagetest.Backends(t) {
			t.Run(tt.name+"/"+b.Name, func(t *testing.T) {
				e := newAccountsEnv(t, b.URL, tt.invalidate)
				user := e.alice.ID
				if tt.user != "" {
					user = tt.user
				}
				actor := Actor{ID: user}
				if tt.reset {
					actor = Actor{ID: "root", Details: map[string]any{"admin_client_id": "ops"}}
				}
				var (
					ended *Ended
					err   error
				)
				if tt.reset {
					ended, err = e.accounts.ResetPassword(requestCtx(t), user, tt.password, actor)
				} else {
					ended, err = e.accounts.ChangePassword(requestCtx(t), user, tt.password, actor, "s-keep")
				}
				changed := eventsOf(t, e.recorder, audit.TypePasswordChanged)
				if tt.wantFields != nil || tt.wantErr != nil {
					if got := fieldsOf(err); tt.wantFields != nil && !slices.Equal(got, tt.wantFields) {
						t.Errorf("fields = %q, want %q (err %v)", got, tt.wantFields, err)
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("err = %v, want %v", err, tt.wantErr)
					}
					if tt.wantErr == storage.ErrNotFound && len(e.seen) != 0 {
						t.Error("an unknown user's password was judged")
					}
					tokens, sessions := e.state(t)
					if !e.passwordIs(t, e.alice.ID, loginPassword) || len(changed) != 0 || len(tokens) != 4 || len(sessions) != 3 {
						t.Errorf("a refused write changed something: events %+v, tokens %q, sessions %q", changed, tokens, sessions)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !e.passwordIs(t, user, tt.password) || e.passwordIs(t, user, loginPassword) {
					t.Error("the new password is not the one stored")
				}
				tokens, sessions := e.state(t)
				if !slices.Equal(tokens, tt.wantTokens) || !slices.Equal(sessions, tt.wantSess) {
					t.Errorf("live tokens %q, sessions %q; want %q, %q", tokens, sessions, tt.wantTokens, tt.wantSess)
				}
				// Of alice's two sessions and three tokens, those not live;
				// bob's are never among them.
				wantEnded := 3 - len(tt.wantSess)
				if (ended != nil) != tt.invalidate || (ended != nil && (len(ended.Sessions) != wantEnded || ended.Tokens != int64(4-len(tt.wantTokens)))) {
					t.Errorf("ended = %+v, want %d sessions and the revoked tokens (invalidate %v)", ended, wantEnded, tt.invalidate)
				}
				if len(changed) != 1 || changed[0].Reason != tt.wantReason || changed[0].Actor != actor.ID || changed[0].UserID != user ||
					changed[0].Details["sessions_revoked"] != tt.invalidate || changed[0].IP != "192.0.2.44" || changed[0].Device != "dev-44" {
					t.Fatalf("password.changed events = %+v", changed)
				}
				if tt.reset && changed[0].Details["admin_client_id"] != "ops" {
					t.Errorf("the actor's details are missing: %+v", changed[0].Details)
				}
				endEvents := eventsOf(t, e.recorder, audit.TypeSessionEnded)
				revokeEvents := eventsOf(t, e.recorder, audit.TypeTokenRevoked)
				if !tt.invalidate {
					if len(endEvents)+len(revokeEvents) != 0 {
						t.Errorf("sessions kept, yet ended: %+v %+v", endEvents, revokeEvents)
					}
					return
				}
				if len(endEvents) != wantEnded || len(revokeEvents) != 1 {
					t.Fatalf("%d session.ended, %d token.revoked events; want %d and 1", len(endEvents), len(revokeEvents), wantEnded)
				}
				for _, ev := range append(endEvents, revokeEvents...) {
					if ev.Reason != EndReasonPasswordChanged || ev.Actor != actor.ID || ev.UserID != user || ev.IP != "192.0.2.44" {
						t.Errorf("event %+v", ev)
					}
				}
			})
		}
	}
}

func TestAccountsEndEverything(t *testing.T) {
	tests := []struct {
		name    string
		user    string // "" means alice
		reason  string
		wantErr error
	}{
		{name: "an administrator's request", reason: EndReasonAdmin},
		{name: "a lockout", reason: "lockout"},
		{name: "unknown user", user: "nobody", reason: EndReasonAdmin, wantErr: storage.ErrNotFound},
	}
	for _, tt := range tests {
		// Backends per case: each runs on a fresh database.
		for _, b := range storagetest.Backends(t) {
			t.Run(tt.name+"/"+b.Name, func(t *testing.T) {
				e := newAccountsEnv(t, b.URL, true)
				user := e.alice.ID
				if tt.user != "" {
					user = tt.user
				}
				ended, err := e.accounts.EndEverything(requestCtx(t), user, tt.reason, Actor{ID: "root"})
				endEvents := eventsOf(t, e.recorder, audit.TypeSessionEnded)
				revokeEvents := eventsOf(t, e.recorder, audit.TypeTokenRevoked)
				tokens, sessions := e.state(t)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) || len(endEvents)+len(revokeEvents) != 0 || len(tokens) != 4 || len(sessions) != 3 {
						t.Errorf("err %v; events %+v %+v; tokens %q sessions %q: want %v and nothing changed", err, endEvents, revokeEvents, tokens, sessions, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(ended.Sessions)
				if !slices.Equal(ended.Sessions, []string{"s-keep", "s-other"}) || ended.Tokens != 3 {
					t.Errorf("ended %+v, want both sessions and alice's 3 tokens", ended)
				}
				if !slices.Equal(tokens, []string{"bob"}) || !slices.Equal(sessions, []string{"s-bob"}) {
					t.Errorf("live tokens %q, sessions %q; want only bob's", tokens, sessions)
				}
				if len(endEvents) != 2 || len(revokeEvents) != 1 || revokeEvents[0].Details["tokens_revoked"] == nil {
					t.Fatalf("events %+v %+v", endEvents, revokeEvents)
				}
				for _, ev := range append(endEvents, revokeEvents...) {
					if ev.Reason != tt.reason || ev.Actor != "root" || ev.UserID != user || ev.Device != "dev-44" {
						t.Errorf("event %+v", ev)
					}
				}
				if !e.passwordIs(t, user, loginPassword) {
					t.Error("ending everything changed the password")
				}
			})
		}
	}
}

// A change whose events cannot be recorded is not made.
func TestAccountsChangeNotMadeWhenAuditFails(t *testing.T) {
	e := newAccountsEnv(t, storagetest.SQLiteURL(t), true)
	failing := NewAccounts(AccountsConfig{
		Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Now: e.clock.Now,
		Recorder: audit.NewRecorder(failingAudit{e.st}, nil, e.clock.Now),
	})
	ctx := t.Context()
	if _, err := failing.Create(ctx, UserSpec{Username: "carol", Password: newPassword}, Actor{ID: "root"}); err == nil {
		t.Error("Create succeeded without its event")
	}
	if _, err := e.st.UserByUsername(ctx, "carol"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("carol exists: %v", err)
	}
	if _, err := failing.ResetPassword(ctx, e.alice.ID, newPassword, Actor{ID: "root"}); err == nil {
		t.Error("ResetPassword succeeded without its events")
	}
	if _, err := failing.EndEverything(ctx, e.alice.ID, EndReasonAdmin, Actor{ID: "root"}); err == nil {
		t.Error("EndEverything succeeded without its events")
	}
	tokens, sessions := e.state(t)
	if !e.passwordIs(t, e.alice.ID, loginPassword) || len(tokens) != 4 || len(sessions) != 3 {
		t.Errorf("unaudited changes were kept: tokens %q, sessions %q", tokens, sessions)
	}
}

// failingAudit stores everything but audit events.
type failingAudit struct{ *storage.Store }

func (failingAudit) AppendAudit(context.Context, *storage.AuditEvent) error {
	return errors.New("audit table is full")
}
