package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
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
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// The self-service account lifecycle end to end: registration, the mails
// it sends over real SMTP, the pages their links open, in a real browser.

// viaCatcher points the server's mail at mc.
func viaCatcher(mc *mailCatcher) func(*config.Config) {
	return func(c *config.Config) {
		c.SMTP.Host, c.SMTP.Port, c.SMTP.TLS = "127.0.0.1", mc.port, config.SMTPNoTLS
		c.SMTP.From = "Portcullis <noreply@example.com>"
	}
}

func withRegistration(c *config.Config) {
	c.Registration.Enabled, c.Registration.RequireEmailVerification = true, true
}

// lifecycleBackground runs the instance's background work (the mail queue among
// it) until the test ends.
func lifecycleBackground(t *testing.T, in *instance) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.srv.Background(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// mailTo waits for the n-th mail (counting from 1) to address and returns
// its text, every part decoded.
func (mc *mailCatcher) mailTo(t *testing.T, address string, n int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var found []string
		for _, m := range mc.caught() {
			if slices.Contains(m.to, address) {
				found = append(found, m.data)
			}
		}
		if len(found) >= n {
			return decodeMail(t, found[n-1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail #%d to %s within 15s (got %d)", n, address, len(found))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// decodeMail is a mail's headers and the text of each of its parts, with
// their transfer encodings undone, as a mail program shows them.
func decodeMail(t *testing.T, raw string) string {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("read mail: %v\n%s", err, raw)
	}
	var out strings.Builder
	for k, v := range m.Header {
		fmt.Fprintf(&out, "%s: %s\n", k, strings.Join(v, ", "))
	}
	decodePart(t, &out, m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
	return out.String()
}

func decodePart(t *testing.T, out *strings.Builder, contentType, encoding string, body io.Reader) {
	t.Helper()
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err == nil && strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("read mail part: %v", err)
			}
			decodePart(t, out, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("decode mail part: %v", err)
	}
	out.Write(b)
	out.WriteString("\n")
}

// linkIn is the first link to issuer+path?token=… in a decoded mail.
func linkIn(t *testing.T, decoded, issuer, path string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(issuer+path) + `\?token=[A-Za-z0-9_-]+`)
	link := re.FindString(decoded)
	if link == "" {
		t.Fatalf("no %s link in the mail:\n%s", path, decoded)
	}
	return link
}

// waitText waits until sel shows text containing want. The page may be
// navigating meanwhile (a form just sent), so a read that finds no node
// is tried again rather than failed.
func (c *chrome) waitText(sel, want string) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil && strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s says %q (%v), want %q (at %s)", sel, got, err, want, c.location())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Register in the browser from a sign-in, confirm the address with the
// link mailed over SMTP, then sign in to the application.
func TestLifecycleBrowserRegisterVerifySignIn(t *testing.T) {
	mc := startMailCatcher(t)
	a := newWebApp(t, true, viaCatcher(mc), withRegistration)
	lifecycleBackground(t, a.in)
	c := newChrome(t)

	a.authorize(c)
	c.do("see the login page", c.visible(`a[href^="/register?flow="]`), c.visible(`a[href^="/forgot-password?flow="]`))
	c.screenshot("lifecycle-login-links")
	c.do("open registration", c.click(`a[href^="/register?flow="]`), c.visible(`input#username`))
	c.screenshot("lifecycle-register")

	// Values the browser's own checks let through and ours refuse: every
	// problem is shown at once, each beside its field.
	c.do("register with problems",
		c.fill("#username", "alice"),
		c.fill("#email", "not-an-address"),
		c.fill("#password", "password"),
		c.fill("#confirm_password", "passwort"),
		c.click(`form button[type="submit"]`),
		c.visible("#username-error"),
	)
	for sel, want := range map[string]string{
		"#username-error":         "already taken",
		"#email-error":            "not a valid email address",
		"#password-error":         "leaked",
		"#confirm_password-error": "does not match",
	} {
		if got := c.text(sel); !strings.Contains(got, want) {
			t.Errorf("%s says %q, want %q", sel, got, want)
		}
	}
	c.screenshot("lifecycle-register-problems")

	const password = "Juniper kettle orbit 42"
	c.do("register",
		c.fill("#username", "newbie"),
		c.fill("#email", "newbie@example.com"),
		c.fill("#password", password),
		c.fill("#confirm_password", password),
		c.click(`form button[type="submit"]`),
	)
	c.waitText("h1", "Check your email")
	if body := c.text("main"); !strings.Contains(body, "newbie@example.com") {
		t.Errorf("the check-your-email page does not name the address: %q", body)
	}
	c.screenshot("lifecycle-register-check-email")

	link := linkIn(t, mc.mailTo(t, "newbie@example.com", 1), a.in.issuer, authn.VerifyEmailPath)
	c.do("open the verification link", chromedp.Navigate(link))
	c.waitText("h1", "Confirm your email address")
	c.screenshot("lifecycle-verify-email")
	c.do("confirm", c.click(`form button[type="submit"]`))
	c.waitText("h1", "Your email address is confirmed")
	c.screenshot("lifecycle-verify-email-done")
	u, err := a.in.srv.Store().UserByUsername(context.Background(), "newbie")
	if err != nil || !u.EmailVerified || u.Email != "newbie@example.com" {
		t.Fatalf("the new account: %+v, %v", u, err)
	}

	state, verifier := a.authorize(c)
	c.do("see the login page", c.visible(`input[name="username"]`))
	c.signIn("newbie", password)
	if tok := a.callback(c, state, verifier); tok.AccessToken == "" {
		t.Fatal("no access token for the new account")
	}

	// The link worked once.
	c.do("open the used link", chromedp.Navigate(link))
	c.waitText("h1", "This link no longer works")
	c.screenshot("lifecycle-link-invalid")
}

// Forgot the password: ask for a link in the browser, open it from the
// mail, choose a new password, sign in with it.
func TestLifecycleBrowserForgotReset(t *testing.T) {
	mc := startMailCatcher(t)
	a := newWebApp(t, true, viaCatcher(mc))
	lifecycleBackground(t, a.in)
	c := newChrome(t)

	a.authorize(c)
	c.do("open forgot password", c.visible(`a[href^="/forgot-password?flow="]`), c.click(`a[href^="/forgot-password?flow="]`), c.visible("#identifier"))
	c.screenshot("lifecycle-forgot")
	c.do("ask for a link", c.fill("#identifier", "alice"), c.click(`form button[type="submit"]`))
	c.waitText("h1", "Check your email")
	c.screenshot("lifecycle-forgot-sent")

	link := linkIn(t, mc.mailTo(t, "alice@example.com", 1), a.in.issuer, authn.ResetPasswordPath)
	c.do("open the reset link", chromedp.Navigate(link))
	c.waitText("h1", "Choose a new password")
	c.screenshot("lifecycle-reset")
	c.do("mistype the confirmation",
		c.fill("#password", "Lantern meadow 77"),
		c.fill("#confirm_password", "Lantern meadow 78"),
		c.click(`form button[type="submit"]`),
	)
	c.waitText("#confirm_password-error", "does not match")
	c.screenshot("lifecycle-reset-problems")
	const next = "Lantern meadow 77"
	c.do("choose the new password",
		c.fill("#password", next),
		c.fill("#confirm_password", next),
		c.click(`form button[type="submit"]`),
	)
	c.waitText("h1", "Your password is changed")
	c.screenshot("lifecycle-reset-done")

	state, verifier := a.authorize(c)
	c.do("see the login page", c.visible(`input[name="username"]`))
	c.signIn("alice", alicePass)
	c.do("see the refusal", c.visible(`[role="alert"]`))
	c.signIn("alice", next)
	if tok := a.callback(c, state, verifier); tok.AccessToken == "" {
		t.Fatal("no access token with the new password")
	}
}

// An account an administrator created is activated in the browser: its
// owner opens the activation link and sets the first password.
func TestLifecycleBrowserActivation(t *testing.T) {
	in := start(t, storagetest.SQLiteURL(t), &testClock{})
	ctx := context.Background()
	u, err := in.srv.Accounts().Create(ctx, authn.UserSpec{Username: "carol", Email: "carol@example.com", WithoutPassword: true}, authn.Actor{ID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	// No route sends activation links yet; a Links of the test's own, on
	// the same database, stands in for the one that will, its mail kept
	// rather than sent.
	var link string
	links := authn.NewLinks(authn.LinksConfig{Store: in.srv.Store(), Issuer: in.issuer,
		Policies: func(string) policies.Policy { return policies.Defaults() },
		Mail:     func(m authn.LinkMail) bool { link = m.Link; return true }})
	if _, err := links.Send(ctx, u, authn.LinkActivation, authn.Actor{ID: "admin"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, in.issuer+authn.ActivatePath+"?token=") {
		t.Fatalf("activation link %q", link)
	}
	c := newChrome(t)
	c.do("open the activation link", chromedp.Navigate(link))
	c.waitText("h1", "Set your password")
	c.screenshot("lifecycle-activate")
	c.do("set the password", c.fill("#password", alicePass), c.fill("#confirm_password", alicePass), c.click(`form button[type="submit"]`))
	c.waitText("h1", "Your password is set")
	if got, _ := in.srv.Store().User(ctx, u.ID); got == nil || got.PasswordHash == "" || !got.EmailVerified {
		t.Errorf("after activation: %+v", got)
	}
}

// Twenty parallel submissions of one reset form: exactly one sets the
// password, the rest get the used-link page, and one password.changed
// event is recorded.
func TestLifecycleResetLinkParallel(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		mc := startMailCatcher(t)
		in := start(t, dbURL, &testClock{}, viaCatcher(mc))
		lifecycleBackground(t, in)
		uid := in.createUser(authn.UserSpec{Username: "alice", Password: alicePass, Email: "alice@example.com", EmailVerified: true})
		b := in.browser()
		_, page := b.get(in.issuer + authn.ForgotPath)
		form := hiddenFields(page)
		form.Set("identifier", "alice")
		if resp, body := b.postForm(in.issuer+authn.ForgotPath, form); resp.StatusCode != http.StatusOK {
			t.Fatalf("forgot = %d: %s", resp.StatusCode, body)
		}
		link := linkIn(t, mc.mailTo(t, "alice@example.com", 1), in.issuer, authn.ResetPasswordPath)
		resp, page := b.get(link)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reset page = %d: %s", resp.StatusCode, page)
		}
		const n = 20
		type answer struct {
			status int
			body   string
		}
		answers := make([]answer, n)
		var wg sync.WaitGroup
		for i := range n {
			f := hiddenFields(page)
			pw := fmt.Sprintf("Parallel passphrase %02d", i)
			f.Set("password", pw)
			f.Set("confirm_password", pw)
			wg.Go(func() {
				resp, err := b.c.PostForm(in.issuer+authn.ResetPasswordPath, f)
				if err != nil {
					t.Errorf("POST: %v", err)
					return
				}
				answers[i] = answer{resp.StatusCode, readBody(t, resp)}
			})
		}
		wg.Wait()
		ok, gone := 0, 0
		for _, a := range answers {
			switch {
			case a.status == http.StatusOK && strings.Contains(a.body, "Your password is changed"):
				ok++
			case a.status == http.StatusBadRequest && strings.Contains(a.body, "This link no longer works"):
				gone++
			default:
				t.Errorf("answer %d: %.300s", a.status, a.body)
			}
		}
		if ok != 1 || gone != n-1 {
			t.Errorf("%d parallel submissions: %d succeeded, %d refused; want 1 and %d", n, ok, gone, n-1)
		}
		evs, _, err := in.srv.Audit().Query(context.Background(), audit.Query{Type: audit.TypePasswordChanged, UserID: uid, Limit: audit.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Reason != authn.PasswordReasonResetLink {
			t.Errorf("password.changed events %+v, want one by reset link", evs)
		}
	})
}

// Twenty parallel registrations from one address under max = 5: exactly
// five accounts, fifteen refusals.
func TestLifecycleRegistrationRateLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{}, withRegistration, func(c *config.Config) {
			c.Registration.RequireEmailVerification = false
			c.Registration.RateLimit = policies.RateLimit{Max: 5, Period: policies.Duration(time.Hour)}
		})
		const n = 20
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			body := fmt.Sprintf(`{"username":"user%02d","email":"user%02d@example.com","password":"Registered passphrase %02d"}`, i, i, i)
			wg.Go(func() {
				resp, err := http.Post(in.issuer+authn.RegistrationsAPIPath, "application/json", strings.NewReader(body))
				if err != nil {
					t.Errorf("POST: %v", err)
					return
				}
				b := readBody(t, resp)
				statuses[i] = resp.StatusCode
				if resp.StatusCode == http.StatusTooManyRequests && (resp.Header.Get("Retry-After") == "" || !strings.Contains(b, `"rate_limited"`)) {
					t.Errorf("429 without Retry-After or error: %s", b)
				}
				if resp.StatusCode == http.StatusCreated && !strings.Contains(b, `"email_verification_sent":false`) {
					t.Errorf("201 body %s", b)
				}
			})
		}
		wg.Wait()
		created, refused := 0, 0
		for _, s := range statuses {
			switch s {
			case http.StatusCreated:
				created++
			case http.StatusTooManyRequests:
				refused++
			default:
				t.Errorf("status %d", s)
			}
		}
		if created != 5 || refused != n-5 {
			t.Errorf("%d parallel registrations: %d created, %d refused; want 5 and %d", n, created, refused, n-5)
		}
		users, err := in.srv.Store().ListUsers(context.Background(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 5 {
			t.Errorf("%d accounts, want 5", len(users))
		}
	})
}

// With registration off, neither the page nor the API creates anything.
func TestLifecycleRegistrationDisabled(t *testing.T) {
	in := start(t, storagetest.SQLiteURL(t), &testClock{})
	b := in.browser()
	if resp, body := b.get(in.issuer + authn.RegisterPath); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Creating an account is not available") ||
		strings.Contains(body, "<form") {
		t.Errorf("GET %s = %d:\n%s", authn.RegisterPath, resp.StatusCode, body)
	}
	// A valid form token (from the login page) gets past the CSRF check,
	// so the refusal below is the policy's.
	_, login := b.get(in.issuer + "/login")
	form := hiddenFields(login)
	form.Set("username", "eve")
	form.Set("email", "eve@example.com")
	form.Set("password", "Eavesdropper passphrase 1")
	form.Set("confirm_password", "Eavesdropper passphrase 1")
	if resp, body := b.postForm(in.issuer+authn.RegisterPath, form); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Creating an account is not available") {
		t.Errorf("POST %s = %d:\n%s", authn.RegisterPath, resp.StatusCode, body)
	}
	resp, err := http.Post(in.issuer+authn.RegistrationsAPIPath, "application/json",
		strings.NewReader(`{"username":"eve","email":"eve@example.com","password":"Eavesdropper passphrase 1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"error":"registration_disabled"`) {
		t.Errorf("API = %d %s", resp.StatusCode, body)
	}
	users, err := in.srv.Store().ListUsers(context.Background(), "", 10)
	if err != nil || len(users) != 0 {
		t.Errorf("accounts %v (%v), want none", users, err)
	}
}

var csrfValue = regexp.MustCompile(`name="csrf_token" value="[^"]*"`)

// The forgotten-password form says the same, with the same status, for an
// account that exists, one that does not, and one without an address.
func TestLifecycleForgotNoEnumeration(t *testing.T) {
	mc := startMailCatcher(t)
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, viaCatcher(mc))
	lifecycleBackground(t, in)
	in.createUser(authn.UserSpec{Username: "alice", Password: alicePass, Email: "alice@example.com", EmailVerified: true})
	in.createUser(authn.UserSpec{Username: "nomail", Password: alicePass})
	type answer struct {
		status int
		body   string
	}
	ask := func(identifier string) answer {
		b := in.browser()
		_, page := b.get(in.issuer + authn.ForgotPath)
		form := hiddenFields(page)
		form.Set("identifier", identifier)
		resp, body := b.postForm(in.issuer+authn.ForgotPath, form)
		return answer{resp.StatusCode, csrfValue.ReplaceAllString(body, "")}
	}
	known := ask("alice")
	for _, who := range []string{"alice@example.com", "nobody", "nobody@example.com", "nomail"} {
		if got := ask(who); got != known {
			t.Errorf("%q is answered %d\n%s\nbut a known account %d\n%s", who, got.status, got.body, known.status, known.body)
		}
	}
	if known.status != http.StatusOK || !strings.Contains(known.body, "If an account matches") {
		t.Errorf("answer %d:\n%s", known.status, known.body)
	}
	mc.mailTo(t, "alice@example.com", 2)
	time.Sleep(200 * time.Millisecond)
	for _, m := range mc.caught() {
		if !slices.Equal(m.to, []string{"alice@example.com"}) {
			t.Errorf("a mail went to %v", m.to)
		}
	}
}

// The pages a link opens carry its token in their URL: they load nothing
// from another origin, which could be sent it in a Referer.
func TestLifecycleTokenPagesLoadNothingForeign(t *testing.T) {
	mc := startMailCatcher(t)
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, viaCatcher(mc), withRegistration)
	lifecycleBackground(t, in)
	in.createUser(authn.UserSpec{Username: "alice", Password: alicePass, Email: "alice@example.com", EmailVerified: true})
	b := in.browser()
	_, page := b.get(in.issuer + authn.ForgotPath)
	form := hiddenFields(page)
	form.Set("identifier", "alice")
	b.postForm(in.issuer+authn.ForgotPath, form)
	reset := linkIn(t, mc.mailTo(t, "alice@example.com", 1), in.issuer, authn.ResetPasswordPath)

	_, page = b.get(in.issuer + authn.RegisterPath)
	form = hiddenFields(page)
	for k, v := range map[string]string{"username": "newbie", "email": "newbie@example.com", "password": alicePass, "confirm_password": alicePass} {
		form.Set(k, v)
	}
	b.postForm(in.issuer+authn.RegisterPath, form)
	verify := linkIn(t, mc.mailTo(t, "newbie@example.com", 1), in.issuer, authn.VerifyEmailPath)

	foreign := regexp.MustCompile(`(?i)(src|href|action)="(https?:)?//`)
	for _, link := range []string{reset, verify} {
		resp, body := b.get(link)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", link, resp.StatusCode)
		}
		if m := foreign.FindString(body); m != "" {
			t.Errorf("%s loads or links %q", link, m)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", link, cc)
		}
		if rp := resp.Header.Get("Referrer-Policy"); rp != "same-origin" {
			t.Errorf("%s: Referrer-Policy %q", link, rp)
		}
		u, _ := url.Parse(link)
		if bytes.Contains([]byte(body), []byte("token="+u.Query().Get("token"))) {
			t.Errorf("%s repeats its token in a URL of the page", link)
		}
	}
}
