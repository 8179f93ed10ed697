package authn

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

const newPassword = "a much better passphrase"

// accountEnv is a login environment with the password handler and alice
// signed in on two browsers: "this" one, which changes the password, and
// another.
type accountEnv struct {
	*loginEnv
	accounts  *Accounts
	password  http.Handler
	this      *storage.BrowserSession
	thisCk    *http.Cookie
	other     *storage.BrowserSession
	otherCk   *http.Cookie
	thisTok   string // issued under this session
	otherTok  string // issued under the other session
	looseTok  string // issued under no browser session
	firstHash string
}

func newAccountEnv(t *testing.T, edit func(*policies.Session)) *accountEnv {
	t.Helper()
	e := &accountEnv{loginEnv: newLoginEnvWith(t, false, edit)}
	e.accounts = NewAccounts(AccountsConfig{
		Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Recorder: e.recorder, Now: e.clock.Now,
		Policies: func(clientID string) policies.Policy {
			p := policies.Defaults()
			p.Session = e.policy.Get(clientID)
			return p
		},
	})
	e.password = NewPasswordHandler(e.pipeline, e.sessions, e.accounts, e.csrf, e.pages, slog.New(slog.DiscardHandler))
	e.other, e.otherCk = e.start(t, e.alice)
	e.clock.Advance(time.Minute)
	e.this, e.thisCk = e.start(t, e.alice)
	e.thisTok = issueToken(t, e.st.Store, e.alice.ID, e.this.ID)
	e.otherTok = issueToken(t, e.st.Store, e.alice.ID, e.other.ID)
	e.looseTok = issueToken(t, e.st.Store, e.alice.ID, "")
	e.firstHash = e.alice.PasswordHash
	return e
}

// passwordPage loads the form with the given cookies and returns the
// response, the CSRF cookie and the form's token.
func (e *accountEnv) passwordPage(t *testing.T, cookies ...*http.Cookie) (*httptest.ResponseRecorder, *http.Cookie, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, PasswordPath, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.password.ServeHTTP(rec, req)
	m := csrfInput.FindStringSubmatch(rec.Body.String())
	if rec.Code != http.StatusOK || m == nil {
		return rec, nil, ""
	}
	return rec, responseCookie(rec, e.csrfCookie), m[1]
}

// postPassword submits the password form.
func (e *accountEnv) postPassword(form url.Values, hdr http.Header, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, PasswordPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header[k] = v
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.password.ServeHTTP(rec, req)
	return rec
}

// change submits current, next and confirm from this browser, with a
// valid CSRF token.
func (e *accountEnv) change(t *testing.T, current, next, confirm string) *httptest.ResponseRecorder {
	t.Helper()
	_, csrf, tok := e.passwordPage(t, e.thisCk)
	if csrf == nil {
		t.Fatal("password form not shown")
	}
	return e.postPassword(passwordForm(current, next, confirm, tok), http.Header{"Origin": {loginOrigin}}, csrf, e.thisCk)
}

func passwordForm(current, next, confirm, token string) url.Values {
	v := url.Values{"current_password": {current}, "new_password": {next}, "confirm_password": {confirm}}
	if token != "" {
		v.Set(CSRFField, token)
	}
	return v
}

// passwordIs reports whether alice's stored password is pw.
func (e *accountEnv) passwordIs(t *testing.T, pw string) bool {
	t.Helper()
	out, err := e.pipeline.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	return out.OK
}

func (e *accountEnv) storedHash(t *testing.T) string {
	t.Helper()
	u, err := e.st.User(context.Background(), e.alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

func TestPasswordChange(t *testing.T) {
	keepSessions := func(p *policies.Session) { p.InvalidateOnPasswordChange = false }
	tests := []struct {
		name             string
		policy           func(*policies.Session)
		current, next    string
		confirm          string
		wantChanged      bool
		wantOthersEnded  bool
		wantMsg          string
		wantCurrentCheck bool // whether the current password was tried
	}{
		{
			name:    "success ends every other session",
			current: loginPassword, next: newPassword, confirm: newPassword,
			wantChanged: true, wantOthersEnded: true, wantMsg: msgPasswordChanged + msgOthersSignedOut,
			wantCurrentCheck: true,
		},
		{
			name:    "success keeps other sessions when the policy says so",
			policy:  keepSessions,
			current: loginPassword, next: newPassword, confirm: newPassword,
			wantChanged: true, wantMsg: msgPasswordChanged,
			wantCurrentCheck: true,
		},
		{
			name:    "wrong current password",
			current: "not my password", next: newPassword, confirm: newPassword,
			wantMsg: msgCurrentWrong, wantCurrentCheck: true,
		},
		{
			name:    "no current password",
			current: "", next: newPassword, confirm: newPassword,
			wantMsg: msgCurrentMissing,
		},
		{
			name:    "confirmation differs",
			current: loginPassword, next: newPassword, confirm: newPassword + "!",
			wantMsg: msgConfirmMismatch,
		},
		{
			name:    "too short",
			current: loginPassword, next: "short", confirm: "short",
			wantMsg: "The new password must be at least 8 characters.",
		},
		{
			name:    "too long",
			current: loginPassword, next: strings.Repeat("x", MaxPasswordLength+1), confirm: strings.Repeat("x", MaxPasswordLength+1),
			wantMsg: "The new password must be at most 1024 bytes.",
		},
		{
			name:    "same as the current one",
			current: loginPassword, next: loginPassword, confirm: loginPassword,
			wantMsg: msgSameAsCurrent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAccountEnv(t, tt.policy)
			rec := e.change(t, tt.current, tt.next, tt.confirm)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body:\n%s", rec.Code, rec.Body)
			}
			body := rec.Body.String()
			if !strings.Contains(body, tt.wantMsg) {
				t.Errorf("page lacks %q:\n%s", tt.wantMsg, body)
			}
			if shown := strings.Contains(body, `name="current_password"`); shown == tt.wantChanged {
				t.Errorf("form shown = %v after changed = %v", shown, tt.wantChanged)
			}

			if got := e.passwordIs(t, tt.next); tt.next != loginPassword && got != tt.wantChanged {
				t.Errorf("new password works = %v, want %v", got, tt.wantChanged)
			}
			if got := e.passwordIs(t, loginPassword); got == tt.wantChanged {
				t.Errorf("old password works = %v, want %v", got, !tt.wantChanged)
			}
			if tt.wantChanged && cheapArgon2.NeedsRehash(e.storedHash(t)) {
				t.Error("new password not hashed under the server's parameters")
			}

			// This browser stays signed in, with its tokens, whatever
			// happened.
			if e.current(t, e.thisCk) == nil || !tokenActive(t, e.st.Store, e.thisTok) {
				t.Error("the browser that changed the password was signed out")
			}
			if alive := e.current(t, e.otherCk) != nil; alive == tt.wantOthersEnded {
				t.Errorf("other session alive = %v, want %v", alive, !tt.wantOthersEnded)
			}
			for name, tok := range map[string]string{"other session's": e.otherTok, "sessionless": e.looseTok} {
				if active := tokenActive(t, e.st.Store, tok); active == tt.wantOthersEnded {
					t.Errorf("%s token active = %v, want %v", name, active, !tt.wantOthersEnded)
				}
			}

			changed := events(t, e.recorder, audit.TypePasswordChanged, e.alice.ID)
			if (len(changed) == 1) != tt.wantChanged || len(changed) > 1 {
				t.Errorf("password.changed events = %+v", changed)
			}
			if len(changed) == 1 && (changed[0].Actor != e.alice.ID || changed[0].Outcome != audit.OutcomeSuccess) {
				t.Errorf("password.changed event = %+v", changed[0])
			}
			var endedByChange []audit.Event
			for _, ev := range events(t, e.recorder, audit.TypeSessionEnded, e.alice.ID) {
				if ev.Reason == EndReasonPasswordChanged {
					endedByChange = append(endedByChange, ev)
				}
			}
			if tt.wantOthersEnded != (len(endedByChange) == 1) || len(endedByChange) > 1 ||
				(len(endedByChange) == 1 && endedByChange[0].Details["session_id"] != e.other.ID) {
				t.Errorf("session.ended events for the change = %+v", endedByChange)
			}
			// The current password is checked like a sign-in and recorded as
			// one; passwordIs adds two sign-ins of its own.
			var checks int
			for _, typ := range []string{audit.TypeLoginSuccess, audit.TypeLoginFailed} {
				for _, ev := range events(t, e.recorder, typ, e.alice.ID) {
					if ev.Details["action"] == policies.ActionPasswordChange {
						checks++
					}
				}
			}
			if (checks == 1) != tt.wantCurrentCheck || checks > 1 {
				t.Errorf("%d recorded checks of the current password, want %v", checks, tt.wantCurrentCheck)
			}
		})
	}
}

func TestPasswordChangeNeedsSignIn(t *testing.T) {
	e := newAccountEnv(t, cookieFor(time.Hour))
	login := e.form(t, "/")
	expired := *e.thisCk
	tests := []struct {
		name    string
		method  string
		cookies []*http.Cookie
		form    url.Values
		setup   func()
	}{
		{name: "GET without a session", method: http.MethodGet},
		{name: "HEAD without a session", method: http.MethodHead},
		{name: "GET with an unknown session", method: http.MethodGet, cookies: []*http.Cookie{{Name: e.sessCookie, Value: randomSecret()}}},
		{
			name: "POST without a session", method: http.MethodPost,
			cookies: []*http.Cookie{login.csrf},
			form:    passwordForm(loginPassword, newPassword, newPassword, login.token),
		},
		{
			name: "GET with an expired session", method: http.MethodGet,
			cookies: []*http.Cookie{&expired},
			setup:   func() { e.clock.Advance(time.Hour) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			req := httptest.NewRequest(tt.method, PasswordPath, strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, c := range tt.cookies {
				req.AddCookie(c)
			}
			rec := httptest.NewRecorder()
			e.password.ServeHTTP(rec, req)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303", rec.Code)
			}
			if got := rec.Header().Get("Location"); got != "/login?return_to=/account/password" {
				t.Errorf("Location = %q", got)
			}
		})
	}
	if e.storedHash(t) != e.firstHash {
		t.Error("password changed without a session")
	}
}

func TestPasswordChangeCSRF(t *testing.T) {
	e := newAccountEnv(t, nil)
	_, ck, tok := e.passwordPage(t, e.thisCk)
	_, otherCk, _ := e.passwordPage(t, e.otherCk)
	tests := []struct {
		name    string
		token   string
		cookies []*http.Cookie
		origin  string
	}{
		{name: "no token", cookies: []*http.Cookie{ck, e.thisCk}},
		{name: "wrong token", token: strings.Repeat("A", 43), cookies: []*http.Cookie{ck, e.thisCk}},
		{name: "no CSRF cookie", token: tok, cookies: []*http.Cookie{e.thisCk}},
		{name: "token for another browser", token: tok, cookies: []*http.Cookie{otherCk, e.thisCk}},
		{name: "cross-origin post", token: tok, cookies: []*http.Cookie{ck, e.thisCk}, origin: "https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			// The right passwords: only the CSRF check stands in the way.
			rec := e.postPassword(passwordForm(loginPassword, newPassword, newPassword, tt.token), hdr, tt.cookies...)
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status = %d, want 403", rec.Code)
			}
			if !strings.Contains(rec.Body.String(), "<h1>Form expired</h1>") {
				t.Errorf("not the error page:\n%s", rec.Body)
			}
		})
	}
	if e.storedHash(t) != e.firstHash {
		t.Error("password changed despite CSRF failures")
	}
	if e.current(t, e.otherCk) == nil {
		t.Error("other session ended despite CSRF failures")
	}
}

func TestPasswordChangeReauth(t *testing.T) {
	const maxAge = 5 * time.Minute
	reauth := func(p *policies.Session) {
		cookieFor(24 * time.Hour)(p)
		p.ReauthMaxAge = policies.Duration(maxAge)
		p.ReauthFor = []string{policies.ActionPasswordChange}
	}
	tests := []struct {
		name string
		// age is how long ago the browser signed in.
		age         time.Duration
		current     string
		wantChanged bool
		wantMsg     string
	}{
		{"stale sign-in, no current password", time.Hour, "", false, msgCurrentMissing},
		{"stale sign-in, wrong current password", time.Hour, "not my password", false, msgCurrentWrong},
		{"stale sign-in, right current password", time.Hour, loginPassword, true, msgPasswordChanged},
		// Stricter than the policy: a session cookie alone never suffices.
		{"fresh sign-in, no current password", time.Minute, "", false, msgCurrentMissing},
		{"fresh sign-in, right current password", time.Minute, loginPassword, true, msgPasswordChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAccountEnv(t, reauth)
			e.clock.Advance(tt.age)
			pol := e.policy.Get("")
			if stale := pol.NeedsReauth(policies.ActionPasswordChange, e.this.AuthTime, e.clock.Now()); stale != (tt.age > maxAge) {
				t.Fatalf("NeedsReauth = %v at age %v", stale, tt.age)
			}
			rec := e.change(t, tt.current, newPassword, newPassword)
			if !strings.Contains(rec.Body.String(), tt.wantMsg) {
				t.Errorf("page lacks %q:\n%s", tt.wantMsg, rec.Body)
			}
			if got := e.storedHash(t) != e.firstHash; got != tt.wantChanged {
				t.Fatalf("changed = %v, want %v", got, tt.wantChanged)
			}
			id := e.current(t, e.thisCk)
			if id == nil {
				t.Fatal("signed out")
			}
			// A successful check is a fresh sign-in for what follows; a
			// failed one changes nothing.
			wantAuth := e.this.AuthTime
			if tt.wantChanged {
				wantAuth = e.clock.Now()
			}
			if !id.Session.AuthTime.Equal(wantAuth) {
				t.Errorf("auth_time = %v, want %v", id.Session.AuthTime, wantAuth)
			}
			if got := pol.NeedsReauth(policies.ActionPasswordChange, id.Session.AuthTime, e.clock.Now()); got != (tt.age > maxAge && !tt.wantChanged) {
				t.Errorf("NeedsReauth afterwards = %v", got)
			}
			// Re-authenticating does not extend the login: an absolute
			// timeout still runs from the sign-in. (Set now, so that it
			// does not also cap the row's expiry, which would hide the
			// difference.)
			e.policy.Set(func(p *policies.Session) { p.AbsoluteTimeout = policies.Duration(3 * time.Hour) })
			e.clock.Advance(3*time.Hour - tt.age)
			if e.current(t, e.thisCk) != nil {
				t.Error("session outlived its absolute timeout")
			}
		})
	}
}

func TestPasswordRequests(t *testing.T) {
	e := newAccountEnv(t, nil)
	tests := []struct {
		name       string
		method     string
		body       string
		wantStatus int
		wantAllow  string
	}{
		{"GET", http.MethodGet, "", http.StatusOK, ""},
		{"HEAD", http.MethodHead, "", http.StatusOK, ""},
		{"PUT", http.MethodPut, "", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{"oversized body", http.MethodPost, "new_password=" + strings.Repeat("a", maxPasswordBody), http.StatusRequestEntityTooLarge, ""},
		{"malformed body", http.MethodPost, "new_password=%zz", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, PasswordPath, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(e.thisCk)
			rec := httptest.NewRecorder()
			e.password.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
		})
	}
}
