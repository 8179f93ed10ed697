package server_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// An expired password signs in only to be changed, in a real browser: the
// sign-in stops at the change page, refuses the old password and a leaked
// one with the rule's own words, and once a good one is chosen it goes on
// to the application where it was going; the old password no longer works.
func TestBrowserExpiredPasswordMustBeChanged(t *testing.T) {
	a := newWebApp(t, true, func(c *config.Config) { c.Password.ExpireDays = 90 })
	// Carol chose her password 91 days ago. (The clock goes back rather
	// than forward: fosite checks auth_time against the real time.)
	a.in.clock.Advance(-91 * 24 * time.Hour)
	a.in.createUser(authn.UserSpec{Username: "carol", Password: alicePass})
	a.in.clock.Advance(91 * 24 * time.Hour)
	c := newChrome(t)
	const newPass = "a fresh and long passphrase 7"

	state, verifier := a.authorize(c)
	c.signIn("carol", alicePass)
	c.do("see the change page", c.visible(`#new_password`))
	if loc := c.location(); !strings.HasPrefix(loc, a.in.issuer+authn.ForcedChangePath+"?flow=") {
		t.Fatalf("after signing in with an expired password the browser is at %s", loc)
	}
	body := c.text("main")
	if !strings.Contains(body, "Your password has expired.") || strings.Contains(body, "Current password") {
		t.Errorf("the change page: %q", body)
	}
	c.screenshot("password-expired")

	for _, tc := range []struct{ password, want string }{
		{alicePass, "must differ from your current password"},
		{"password123", "leaked"},
	} {
		if _, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](`window.__submitted = true`)); err != nil {
			t.Fatal(err)
		}
		c.do("try "+tc.password, c.fill(`#new_password`, tc.password), c.fill(`#confirm_password`, tc.password),
			c.click(`form button[type="submit"]`))
		if err := pollPage(c, `window.__submitted === undefined && document.readyState === "complete"`); err != nil {
			t.Fatalf("no page after submitting %q: %v", tc.password, err)
		}
		if msg := c.text(`[role="alert"]`); !strings.Contains(msg, tc.want) {
			t.Errorf("new password %q: message %q, want it to say %q", tc.password, msg, tc.want)
		}
	}
	c.screenshot("password-expired-refused")
	c.do("choose a good one", c.fill(`#new_password`, newPass), c.fill(`#confirm_password`, newPass),
		c.click(`form button[type="submit"]`))
	a.callback(c, state, verifier)

	events := auditEvents(t, a.in, audit.TypePasswordChanged, "")
	if len(events) != 1 || events[0].Reason != authn.PasswordReasonForced || events[0].UserID == "" {
		t.Errorf("password.changed events: %+v, want one with reason %s", events, authn.PasswordReasonForced)
	}

	// The new password is good for another 90 days; the old one is gone.
	c = newChrome(t)
	state, verifier = a.authorize(c)
	c.signIn("carol", alicePass)
	c.do("old password refused", c.visible(`[role="alert"]`))
	c.signIn("carol", newPass)
	a.callback(c, state, verifier)
}

// force_reset_if_invalid "change": a password that met the policy when it
// was set and no longer does is changed before the sign-in completes. The
// change step belongs to the browser and flow that proved the password:
// another browser cannot use the flow, posting the login form again
// cannot skip it, and the password grant, which has no page to show,
// refuses the sign-in rather than let it past.
func TestForcedChangeWhenThePolicyTightens(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), false, func(c *oauth.ClientSpec) { c.GrantTypes = append(c.GrantTypes, "password") })
	adm := f.admin()
	adm.patch("/admin/policies", `{"password":{"min_length":30,"force_reset_if_invalid":"change"}}`)

	status, _, grant := f.rawPasswordGrant(t, f.clientID, f.secret, url.Values{"username": {"alice"}, "password": {alicePass}, "scope": {"openid"}})
	if status != http.StatusBadRequest || !strings.Contains(string(grant), "Sign in through the browser") {
		t.Errorf("password grant with a password to change: %d %s", status, grant)
	}

	b := f.browser()
	authURL := f.conf.AuthCodeURL("state-forced-1234")
	resp, body := b.postLogin(authURL, "alice", alicePass)
	if resp.Request.URL.Path != authn.ForcedChangePath || !strings.Contains(body, "no longer meets the password rules") {
		t.Fatalf("sign-in with a password the policy now refuses ended at %s: %s", resp.Request.URL, body)
	}
	changeURL := resp.Request.URL.String()
	flowID := resp.Request.URL.Query().Get("flow")

	// Another browser holding the flow id gets nowhere.
	other := f.browser()
	if resp, body := other.get(changeURL); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "another browser") {
		t.Errorf("the change step in another browser: %d %s", resp.StatusCode, body)
	}
	// The login form of the same flow leads back to the change step.
	form := hiddenFields(body)
	form.Set("flow", flowID)
	form.Set("username", "alice")
	form.Set("password", alicePass)
	if resp, _ := b.postForm(f.issuer+"/login", form); resp.Request.URL.Path != authn.ForcedChangePath {
		t.Errorf("posting the login form again ended at %s, want the change step", resp.Request.URL)
	}

	_, page := b.get(changeURL)
	const newPass = "a passphrase long enough for thirty"
	form = hiddenFields(page)
	form.Set("new_password", newPass)
	form.Set("confirm_password", newPass)
	// An account that expired since its password was proven cannot finish
	// the sign-in through this step either.
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if status, body := adm.do(http.MethodPut, "/admin/users/"+f.userID+"/expiry", "application/json", `{"expires_at":"`+past+`"}`); status != http.StatusOK {
		t.Fatalf("set expiry: %d %s", status, body)
	}
	if resp, body := b.postForm(f.issuer+authn.ForcedChangePath, form); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Invalid username or password.") {
		t.Errorf("the change step of an account expired meanwhile: %d %s", resp.StatusCode, body)
	}
	if status, body := adm.do(http.MethodPut, "/admin/users/"+f.userID+"/expiry", "application/json", `{"expires_at":null}`); status != http.StatusOK {
		t.Fatalf("clear expiry: %d %s", status, body)
	}
	resp, body = b.postForm(f.issuer+authn.ForcedChangePath, form)
	if !strings.Contains(body, `name="consent"`) {
		t.Fatalf("after the change: %d at %s, want the consent page: %s", resp.StatusCode, resp.Request.URL, body)
	}
	// The step is done: the flow cannot change the password again.
	if resp, body := b.get(changeURL); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already complete") {
		t.Errorf("the change step of a completed flow: %d %s", resp.StatusCode, body)
	}
	form.Set("new_password", "yet another passphrase, thirty long")
	form.Set("confirm_password", "yet another passphrase, thirty long")
	if resp, _ := b.postForm(f.issuer+authn.ForcedChangePath, form); resp.StatusCode < 400 {
		t.Errorf("a second change on a completed flow answered %d", resp.StatusCode)
	}
	events := auditEvents(t, f.instance, audit.TypePasswordChanged, f.userID)
	if len(events) != 1 || events[0].Reason != authn.PasswordReasonForced {
		t.Errorf("password.changed events: %+v, want one forced change", events)
	}
	// The new password signs in with nothing more to do.
	tok := f.login(f.browser(), "alice", newPass)
	if tok.AccessToken == "" {
		t.Error("no access token after signing in with the new password")
	}
}

// An account expires account_expire_days after its creation: from then on
// its password no longer signs in (with the one answer every refused
// sign-in gets, recorded as an expiry refusal), and the tokens issued
// before stop working at once, access and refresh alike.
func TestExpiredAccountCannotSignInAndItsTokensStop(t *testing.T) {
	clock := &testClock{}
	in := start(t, storagetest.SQLiteURL(t), clock, func(c *config.Config) {
		c.Registration.AccountExpireDays = 1
		c.Token.AccessTokenTTL = policies.Duration(48 * time.Hour)
	})
	f := fixtureOn(t, in, true)
	tok := f.login(f.browser(), "alice", alicePass)
	if active, _ := f.introspect(tok.AccessToken)["active"].(bool); !active {
		t.Fatal("a fresh access token is not active")
	}

	clock.Advance(24*time.Hour + time.Minute)
	if active, _ := f.introspect(tok.AccessToken)["active"].(bool); active {
		t.Error("the access token of an expired account is still active")
	}
	if _, err := f.refresh(tok.RefreshToken); err == nil {
		t.Error("the refresh token of an expired account still works")
	}
	if n := len(auditEvents(t, in, audit.TypeTokenReuseDetected, "")); n != 0 {
		t.Errorf("%d token reuse alarms for an expired account's refresh token, want none", n)
	}
	resp, body := f.browser().postLogin(f.conf.AuthCodeURL("state-expired-123"), "alice", alicePass)
	if resp.Request.URL.Path != "/login" || !strings.Contains(body, "Invalid username or password.") {
		t.Errorf("signing in to an expired account: %d at %s: %s", resp.StatusCode, resp.Request.URL, body)
	}
	failed := auditEvents(t, in, audit.TypeLoginFailed, f.userID)
	if len(failed) != 1 || failed[0].Reason != authn.ReasonAccountExpired {
		t.Errorf("login.failed events: %+v, want one with reason %s", failed, authn.ReasonAccountExpired)
	}
}

// mailedLink finds the link to path in the mail sent to rcpt, decoding
// the quoted-printable parts it travels in; it waits for the mail queue.
func mailedLink(t *testing.T, in *instance, mc *mailCatcher, rcpt, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.srv.AccountMail().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(regexp.QuoteMeta(in.issuer+path) + `\?token=[A-Za-z0-9_-]+`)
	var link string
	for _, m := range mc.caught() {
		if !slices.Contains(m.to, rcpt) {
			continue
		}
		decoded, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.data)))
		if err != nil {
			t.Fatalf("decode the mail to %s: %v", rcpt, err)
		}
		if found := re.FindString(string(decoded)); found != "" {
			link = found // the newest wins
		}
	}
	if link == "" {
		t.Fatalf("no %s link in the mail to %s (%d mails caught)", path, rcpt, len(mc.caught()))
	}
	return link
}

// withMail points the instance's SMTP at mc and runs its background jobs
// (the mail queues) for the test.
func withMail(mc *mailCatcher) func(*config.Config) {
	return func(c *config.Config) {
		c.SMTP.Host, c.SMTP.Port, c.SMTP.TLS = "127.0.0.1", mc.port, config.SMTPNoTLS
		c.SMTP.From = "Portcullis <noreply@example.com>"
	}
}

func runBackground(t *testing.T, in *instance) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.srv.Background(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// require_email_verification: an account whose address is unverified
// proves its password and is stopped there, told where the link went;
// the mail arrives over SMTP, the link confirms the address, and the
// sign-in then goes through. Sign-ins cannot make it mail more than three
// links an hour.
func TestUnverifiedAccountIsMailedALinkAtSignIn(t *testing.T) {
	mc := startMailCatcher(t)
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, withMail(mc), func(c *config.Config) {
		c.Registration.RequireEmailVerification = true
	})
	runBackground(t, in)
	f := fixtureOn(t, in, true)
	f.createUser(authn.UserSpec{Username: "erin", Password: alicePass, Email: "erin@example.com"})
	authURL := f.conf.AuthCodeURL("state-unverified-1")

	b := f.browser()
	_, body := b.postLogin(authURL, "erin", alicePass)
	if !strings.Contains(body, "Confirm your email address to finish signing in") || !strings.Contains(body, "e•••@example.com") {
		t.Fatalf("sign-in of an unverified account: %s", body)
	}
	// A wrong password learns nothing of the sort.
	if _, body := b.postLogin(authURL, "erin", "not her password"); !strings.Contains(body, "Invalid username or password.") {
		t.Errorf("wrong password of an unverified account: %s", body)
	}
	link := mailedLink(t, in, mc, "erin@example.com", authn.VerifyEmailPath)
	resp, page := b.get(link)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", link, resp.StatusCode)
	}
	if resp, body := b.postForm(in.issuer+authn.VerifyEmailPath, hiddenFields(page)); resp.StatusCode != http.StatusOK || !strings.Contains(body, "confirmed") {
		t.Fatalf("confirming the address: %d %s", resp.StatusCode, body)
	}
	loc := b.signIn(authURL, "erin", alicePass, "")
	if loc.Query().Get("code") == "" {
		t.Errorf("sign-in after verifying: redirected to %s", loc)
	}
	if n := len(auditEvents(t, in, audit.TypeEmailVerified, "")); n != 1 {
		t.Errorf("%d email.verified events, want 1", n)
	}

	// Three mails an hour, whatever the number of sign-ins.
	f.createUser(authn.UserSpec{Username: "frank", Password: alicePass, Email: "frank@example.com"})
	var last string
	for range 5 {
		_, last = f.browser().postLogin(authURL, "frank", alicePass)
	}
	if !strings.Contains(last, "already sent you a link several times") {
		t.Errorf("the fifth sign-in of an unverified account: %s", last)
	}
	mailedLink(t, in, mc, "frank@example.com", authn.VerifyEmailPath)
	sent := 0
	for _, m := range mc.caught() {
		if slices.Contains(m.to, "frank@example.com") {
			sent++
		}
	}
	if sent != 3 {
		t.Errorf("%d verification mails to frank, want 3", sent)
	}
}

// force_reset_if_invalid "email": a password that no longer meets the
// policy signs in to nothing; a reset link is mailed instead, and the
// password it sets signs in.
func TestInvalidPasswordIsResetByMail(t *testing.T) {
	mc := startMailCatcher(t)
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, withMail(mc))
	runBackground(t, in)
	f := fixtureOn(t, in, true)
	f.admin().patch("/admin/policies", `{"password":{"min_length":30,"force_reset_if_invalid":"email"}}`)
	authURL := f.conf.AuthCodeURL("state-reset-mail-1")
	b := f.browser()
	if _, body := b.postLogin(authURL, "alice", alicePass); !strings.Contains(body, "We have sent a link to a•••@example.com") {
		t.Fatalf("sign-in with a password the policy now refuses: %s", body)
	}
	link := mailedLink(t, in, mc, "alice@example.com", authn.ResetPasswordPath)
	_, page := b.get(link)
	const newPass = "a passphrase long enough for thirty"
	form := hiddenFields(page)
	form.Set("password", newPass)
	form.Set("new_password", newPass)
	form.Set("confirm_password", newPass)
	if resp, body := b.postForm(in.issuer+authn.ResetPasswordPath, form); resp.StatusCode != http.StatusOK {
		t.Fatalf("reset with the mailed link: %d %s", resp.StatusCode, body)
	}
	if loc := b.signIn(authURL, "alice", newPass, ""); loc.Query().Get("code") == "" {
		t.Errorf("sign-in with the new password: redirected to %s", loc)
	}
}

// With hibp on, a password the range API knows is refused on a password
// write through the admin API, though the offline list lacks it; the API
// was sent five hex digits and nothing else. When the API fails, "open"
// lets the offline list decide and "closed" refuses the password for now.
func TestHaveIBeenPwnedThroughTheServer(t *testing.T) {
	const leaked = "a long unusual passphrase 91"
	sum := sha1.Sum([]byte(leaked))
	digest := strings.ToUpper(hex.EncodeToString(sum[:]))
	var (
		mu    sync.Mutex
		paths []string
		down  bool
	)
	rangeAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		broken := down
		mu.Unlock()
		if broken {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n%s:42\r\n", digest[5:])
	}))
	t.Cleanup(rangeAPI.Close)
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	adm := f.admin()
	adm.patch("/admin/policies", fmt.Sprintf(`{"password":{"hibp":true,"hibp_url":%q}}`, rangeAPI.URL+"/range/"))
	setPassword := func(pw string) (int, string) {
		status, body := adm.do(http.MethodPut, "/admin/users/"+f.userID+"/password", "application/json", fmt.Sprintf(`{"password":%q}`, pw))
		return status, string(body)
	}
	if status, body := setPassword(leaked); status != http.StatusUnprocessableEntity || !strings.Contains(body, `"code":"password_breached"`) {
		t.Errorf("a password the range API knows: %d %s", status, body)
	}
	mu.Lock()
	if len(paths) == 0 || paths[len(paths)-1] != "/range/"+digest[:5] {
		t.Errorf("range API asked for %v, want /range/%s", paths, digest[:5])
	}
	down = true
	mu.Unlock()
	if status, body := setPassword("another unusual passphrase 92"); status != http.StatusNoContent {
		t.Errorf("range API down, failing open: %d %s", status, body)
	}
	adm.patch("/admin/policies", `{"password":{"hibp_failure":"closed"}}`)
	if status, body := setPassword("a third unusual passphrase 93"); status != http.StatusUnprocessableEntity || !strings.Contains(body, `"code":"breach_check_unavailable"`) {
		t.Errorf("range API down, failing closed: %d %s", status, body)
	}
}
