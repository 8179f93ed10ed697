package authn

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/captcha"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// linkToken is the token of a mailed link.
func linkToken(t *testing.T, m LinkMail) string {
	t.Helper()
	u, err := url.Parse(m.Link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("no token in %q (%v)", m.Link, err)
	}
	return u.Query().Get("token")
}

func (e *selfServiceEnv) passwordIs(t *testing.T, userID, pw string) bool {
	t.Helper()
	u, err := e.st.User(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash == "" {
		return false
	}
	ok, err := hashing.Verify(u.PasswordHash, pw)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// The forgotten-password form answers every request alike: an account
// found by username or by address, an unknown one, one without an
// address, a disabled one, one over its budget.
func TestForgotPasswordLooksTheSame(t *testing.T) {
	e := newSelfServiceEnv(t, true, nil)
	alice := e.addUser(t, UserSpec{Username: "alice", Password: goodPassword, Email: "alice@example.test", EmailVerified: true})
	shared1 := e.addUser(t, UserSpec{Username: "sam", Password: goodPassword, Email: "family@example.test"})
	shared2 := e.addUser(t, UserSpec{Username: "sue", Password: goodPassword, Email: "Family@example.test"})
	noMail := e.addUser(t, UserSpec{Username: "nomail", Password: goodPassword})
	// Stored directly: a disabled account cannot be made through Accounts.
	disabled := &storage.User{ID: "user-gone", Username: "gone", Email: "gone@example.test", Disabled: true}
	if err := e.st.CreateUser(t.Context(), disabled); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		identifier string
		// wantTo are the accounts mailed a reset link.
		wantTo []string
		// wantReasons are the reasons of the password.reset_requested
		// events, by user id ("" for none).
		wantReasons map[string]string
	}{
		{"username", "Alice", []string{alice.ID}, map[string]string{alice.ID: ""}},
		{"address", " alice@example.test ", []string{alice.ID}, map[string]string{alice.ID: ""}},
		{"address of two accounts", "family@EXAMPLE.test", []string{shared1.ID, shared2.ID}, map[string]string{shared1.ID: "", shared2.ID: ""}},
		{"unknown username", "mallory", nil, map[string]string{"": resetReasonUnknown}},
		{"unknown address", "nobody@example.test", nil, map[string]string{"": resetReasonUnknown}},
		{"empty", "", nil, map[string]string{"": resetReasonUnknown}},
		{"no address", "nomail", nil, map[string]string{noMail.ID: resetReasonNoEmail}},
		{"disabled", "gone", nil, map[string]string{disabled.ID: resetReasonDisabled}},
	}
	var first string
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, events := len(e.sent()), len(eventsOf(t, e.recorder, audit.TypePasswordResetRequested))
			// Each from its own address, so the address budget is not
			// what is tested here.
			c := newPageClient(t, "192.0.2."+string(rune('1'+i)))
			rec := c.submit(e.forgot, ForgotPath, url.Values{"identifier": {tt.identifier}})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", rec.Code, rec.Body)
			}
			body := rec.Body.String()
			if first == "" {
				first = body
				if !strings.Contains(body, msgForgotSent) {
					t.Fatalf("answer:\n%s", body)
				}
			} else if body != first {
				t.Errorf("answer differs from the first one:\n%s\nvs\n%s", body, first)
			}
			var to []string
			for _, m := range e.sent()[before:] {
				if m.Kind != LinkReset {
					t.Errorf("mail of kind %s", m.Kind)
				}
				to = append(to, m.UserID)
			}
			slices.Sort(to)
			if !slices.Equal(to, tt.wantTo) {
				t.Errorf("mailed %v, want %v", to, tt.wantTo)
			}
			got := map[string]string{}
			for _, ev := range eventsOf(t, e.recorder, audit.TypePasswordResetRequested)[events:] {
				got[ev.UserID] = ev.Reason
				if ev.Reason == resetReasonUnknown && ev.Details["identifier"] != strings.TrimSpace(tt.identifier) {
					t.Errorf("unknown account event details %v", ev.Details)
				}
			}
			if len(got) != len(tt.wantReasons) {
				t.Errorf("events %v, want %v", got, tt.wantReasons)
			}
			for id, reason := range tt.wantReasons {
				if r, ok := got[id]; !ok || r != reason {
					t.Errorf("event for %q: reason %q (recorded %v), want %q", id, r, ok, reason)
				}
			}
		})
	}
}

// The form cannot flood a mailbox: an account gets at most
// resetPerAccount mails an hour from any number of addresses, and one
// address may ask resetPerAddress times an hour; the answer stays the same.
func TestForgotPasswordBudgets(t *testing.T) {
	e := newSelfServiceEnv(t, true, nil)
	alice := e.addUser(t, UserSpec{Username: "alice", Password: goodPassword, Email: "alice@example.test"})
	for i := range resetPerAccount + 2 {
		if err := e.rec.RequestReset(ipCtx(t.Context(), "203.0.113."+string(rune('1'+i))), "", "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.sent()); n != resetPerAccount {
		t.Errorf("%d mails to one account from %d requests, want %d", n, resetPerAccount+2, resetPerAccount)
	}
	limited := 0
	for _, ev := range eventsOf(t, e.recorder, audit.TypePasswordResetRequested) {
		if ev.Reason == resetReasonRateLimited && ev.UserID == alice.ID {
			limited++
		}
	}
	if limited != 2 {
		t.Errorf("%d rate-limited events, want 2", limited)
	}

	e.clock.Advance(resetWindow)
	ctx := ipCtx(t.Context(), "198.51.100.99")
	for range resetPerAddress {
		if err := e.rec.RequestReset(ctx, "", "nobody"); err != nil {
			t.Fatal(err)
		}
	}
	sent := len(e.sent())
	if err := e.rec.RequestReset(ctx, "", "alice"); err != nil {
		t.Fatal(err)
	}
	if len(e.sent()) != sent {
		t.Error("an address over its budget still had a link sent")
	}
	if err := e.rec.RequestReset(ipCtx(t.Context(), "198.51.100.98"), "", "alice"); err != nil || len(e.sent()) != sent+1 {
		t.Errorf("another address: %v, %d mails", err, len(e.sent())-sent)
	}
}

func TestForgotPasswordWithoutEmail(t *testing.T) {
	e := newSelfServiceEnv(t, false, func(p *policies.Policy) { p.Registration.RequireEmailVerification = false })
	e.addUser(t, UserSpec{Username: "alice", Password: goodPassword, Email: "alice@example.test"})
	c := newPageClient(t, "192.0.2.30")
	rec := c.do(e.forgot, ForgotPath, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<h1>Password reset is not available</h1>") || strings.Contains(rec.Body.String(), "<form") {
		t.Fatalf("GET without email = %d:\n%s", rec.Code, rec.Body)
	}
}

func TestForgotPasswordCaptcha(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) { p.Captcha.ShowOn = []string{policies.CaptchaOnPasswordReset} })
	e.pc.Captcha = fakeCaptcha{}
	e.rebuild()
	e.addUser(t, UserSpec{Username: "alice", Password: goodPassword, Email: "alice@example.test"})
	c := newPageClient(t, "192.0.2.31")
	page := c.do(e.forgot, ForgotPath, nil).Body.String()
	if !strings.Contains(page, `value="ch-password_reset"`) {
		t.Fatalf("no captcha:\n%s", page)
	}
	form := fields(page, url.Values{"identifier": {"alice"}, captcha.FieldAnswer: {"7"}})
	if rec := c.do(e.forgot, ForgotPath, form); !strings.Contains(rec.Body.String(), `id="captcha-error"`) || len(e.sent()) != 0 {
		t.Fatalf("wrong answer: %d mails:\n%s", len(e.sent()), rec.Body)
	}
	form.Set(captcha.FieldAnswer, "42")
	if rec := c.do(e.forgot, ForgotPath, form); !strings.Contains(rec.Body.String(), msgForgotSent) || len(e.sent()) != 1 {
		t.Fatalf("right answer: %d mails:\n%s", len(e.sent()), rec.Body)
	}
}

func TestResetPage(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) { p.Session.InvalidateOnPasswordChange = true })
	alice := e.addUser(t, UserSpec{Username: "alice", Password: goodPassword, Email: "alice@example.test"})
	if err := e.rec.RequestReset(ipCtx(t.Context(), "192.0.2.40"), "", "alice"); err != nil {
		t.Fatal(err)
	}
	token := linkToken(t, e.sent()[0])
	c := newPageClient(t, "192.0.2.40")
	target := ResetPasswordPath + "?" + url.Values{"token": {token}}.Encode()

	page := c.do(e.reset, target, nil)
	body := page.Body.String()
	if page.Code != http.StatusOK || !strings.Contains(body, "<h1>Choose a new password</h1>") || !strings.Contains(body, "<strong>alice</strong>") ||
		!strings.Contains(body, `action="/reset-password"`) {
		t.Fatalf("GET = %d:\n%s", page.Code, body)
	}
	if cc := page.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	// Opening the page twice uses nothing.
	if again := c.do(e.reset, target, nil); again.Code != http.StatusOK {
		t.Fatalf("second GET = %d", again.Code)
	}

	// Every problem at once, and the link still works afterwards.
	rec := c.do(e.reset, ResetPasswordPath, fields(body, url.Values{"password": {"abc"}, "confirm_password": {"abd"}}))
	body = rec.Body.String()
	if !strings.Contains(body, `id="password-error">This password must be at least 8 characters.`) ||
		!strings.Contains(body, `id="confirm_password-error">This does not match the password above.`) {
		t.Fatalf("refused password:\n%s", body)
	}
	rec = c.do(e.reset, ResetPasswordPath, fields(body, url.Values{"password": {"x"}, "confirm_password": {"x"}}))
	if !strings.Contains(rec.Body.String(), `id="password-error"`) || strings.Contains(rec.Body.String(), "confirm_password-error") {
		t.Fatalf("short password:\n%s", rec.Body)
	}

	const next = "An entirely new passphrase 7"
	rec = c.do(e.reset, ResetPasswordPath, fields(body, url.Values{"password": {next}, "confirm_password": {next}}))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<h1>Your password is changed</h1>") ||
		!strings.Contains(rec.Body.String(), "signed out on every device") {
		t.Fatalf("reset = %d:\n%s", rec.Code, rec.Body)
	}
	if !e.passwordIs(t, alice.ID, next) {
		t.Error("the password was not changed")
	}
	for _, r := range []int{c.do(e.reset, target, nil).Code, c.do(e.reset, ResetPasswordPath, fields(body, url.Values{"password": {next + "!"}, "confirm_password": {next + "!"}})).Code} {
		if r != http.StatusBadRequest {
			t.Errorf("a used link answered %d, want 400", r)
		}
	}
	gone := c.do(e.reset, target, nil).Body.String()
	if !strings.Contains(gone, "<h1>This link no longer works</h1>") || !strings.Contains(gone, `href="/forgot-password"`) {
		t.Errorf("used link page:\n%s", gone)
	}
	// A reset link does not open the activation page, and nonsense opens nothing.
	for _, target := range []string{ActivatePath + "?token=" + url.QueryEscape(token), ActivatePath + "?token=nonsense", ActivatePath} {
		if rec := c.do(e.activate, target, nil); rec.Code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", target, rec.Code)
		}
	}
}

func TestActivationPage(t *testing.T) {
	e := newSelfServiceEnv(t, true, nil)
	carol := e.addUser(t, UserSpec{Username: "carol", Email: "carol@example.test", WithoutPassword: true})
	if _, err := e.links.Send(t.Context(), carol, LinkActivation, Actor{ID: "admin"}); err != nil {
		t.Fatal(err)
	}
	c := newPageClient(t, "192.0.2.41")
	target := ActivatePath + "?" + url.Values{"token": {linkToken(t, e.sent()[0])}}.Encode()
	rec := c.submit(e.activate, target, url.Values{"password": {goodPassword}, "confirm_password": {goodPassword}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<h1>Your password is set</h1>") {
		t.Fatalf("activation = %d:\n%s", rec.Code, rec.Body)
	}
	if !e.passwordIs(t, carol.ID, goodPassword) {
		t.Error("no password set")
	}
	changed := eventsOf(t, e.recorder, audit.TypePasswordChanged)
	if len(changed) != 1 || changed[0].Reason != PasswordReasonActivation {
		t.Errorf("password.changed events %+v", changed)
	}
}

// Of parallel submissions of one reset form exactly one sets a password.
func TestResetPageParallel(t *testing.T) {
	e := newSelfServiceEnv(t, true, nil)
	alice := e.addUser(t, UserSpec{Username: "alice", Password: goodPassword, Email: "alice@example.test"})
	if err := e.rec.RequestReset(ipCtx(t.Context(), "192.0.2.42"), "", "alice"); err != nil {
		t.Fatal(err)
	}
	c := newPageClient(t, "192.0.2.42")
	page := c.do(e.reset, ResetPasswordPath+"?token="+url.QueryEscape(linkToken(t, e.sent()[0])), nil).Body.String()
	const n = 10
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		pw := "Parallel passphrase " + string(rune('a'+i))
		form := fields(page, url.Values{"password": {pw}, "confirm_password": {pw}})
		wg.Go(func() { codes[i] = c.do(e.reset, ResetPasswordPath, form).Code })
	}
	wg.Wait()
	slices.Sort(codes)
	want := append([]int{http.StatusOK}, slices.Repeat([]int{http.StatusBadRequest}, n-1)...)
	if !slices.Equal(codes, want) {
		t.Errorf("statuses %v, want one 200 and %d 400", codes, n-1)
	}
	if evs := eventsOf(t, e.recorder, audit.TypePasswordChanged); len(evs) != 1 || evs[0].UserID != alice.ID {
		t.Errorf("password.changed events %+v", evs)
	}
}

func TestVerifyEmailPage(t *testing.T) {
	e := newSelfServiceEnv(t, true, nil)
	out, err := e.reg.Register(ipCtx(t.Context(), "192.0.2.50"), RegisterRequest{Username: "dora", Email: "dora@example.test", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	verified := func() bool {
		u, err := e.st.User(t.Context(), out.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		return u.EmailVerified
	}
	c := newPageClient(t, "192.0.2.50")
	target := VerifyEmailPath + "?" + url.Values{"token": {linkToken(t, e.sent()[0])}}.Encode()
	// A scanner opening the link confirms nothing.
	for range 2 {
		page := c.do(e.verify, target, nil)
		if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "Confirm my email address</button>") ||
			!strings.Contains(page.Body.String(), "<strong>dora@example.test</strong>") {
			t.Fatalf("GET = %d:\n%s", page.Code, page.Body)
		}
	}
	if verified() {
		t.Fatal("opening the link verified the address")
	}
	page := c.do(e.verify, target, nil).Body.String()
	if rec := c.do(e.verify, VerifyEmailPath, fields(page, nil)); rec.Code != http.StatusOK ||
		!strings.Contains(rec.Body.String(), "<h1>Your email address is confirmed</h1>") {
		t.Fatalf("POST = %d:\n%s", rec.Code, rec.Body)
	}
	if !verified() {
		t.Error("the address is not verified")
	}
	for _, rec := range []int{c.do(e.verify, VerifyEmailPath, fields(page, nil)).Code, c.do(e.verify, target, nil).Code} {
		if rec != http.StatusBadRequest {
			t.Errorf("a used link answered %d, want 400", rec)
		}
	}
	gone := c.do(e.verify, target, nil).Body.String()
	if !strings.Contains(gone, "<h1>This link no longer works</h1>") || !strings.Contains(gone, "sign in again") {
		t.Errorf("used link page:\n%s", gone)
	}
	if rec := c.do(e.verify, VerifyEmailPath, url.Values{"token": {"x"}}); rec.Code != http.StatusForbidden {
		t.Errorf("POST without a CSRF token = %d, want 403", rec.Code)
	}
}

// A reset that nobody finishes expires with the link's lifetime.
func TestResetLinkExpires(t *testing.T) {
	e := newSelfServiceEnv(t, true, nil)
	e.addUser(t, UserSpec{Username: "alice", Password: goodPassword, Email: "alice@example.test"})
	if err := e.rec.RequestReset(ipCtx(t.Context(), "192.0.2.60"), "", "alice"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(e.links.TTL(LinkReset) + time.Second)
	c := newPageClient(t, "192.0.2.60")
	if rec := c.do(e.reset, ResetPasswordPath+"?token="+url.QueryEscape(linkToken(t, e.sent()[0])), nil); rec.Code != http.StatusBadRequest {
		t.Errorf("expired link = %d, want 400", rec.Code)
	}
}
