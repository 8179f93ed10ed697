package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/captcha"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// tryLogin opens authURL in b and posts its login form to base+"/login",
// reporting errors instead of failing, so goroutines may call it. It
// returns the answer's status, its Location and its body.
func tryLogin(b *browser, base, authURL, username, password string) (int, string, string, error) {
	resp, err := b.c.Get(authURL)
	if err != nil {
		return 0, "", "", err
	}
	page := readBody(b.t, resp)
	if resp.Request.URL.Path != "/login" {
		return 0, "", "", fmt.Errorf("GET %s ended at %s", authURL, resp.Request.URL)
	}
	form := hiddenFields(page)
	form.Set("username", username)
	form.Set("password", password)
	resp, err = b.c.PostForm(base+"/login", form)
	if err != nil {
		return 0, "", "", err
	}
	body := readBody(b.t, resp)
	return resp.StatusCode, resp.Header.Get("Location"), body, nil
}

// The attack: 50 wrong passwords for one account at once, spread
// over two instances sharing one PostgreSQL, lock it at exactly
// max_failures counted failures, while 20 sign-ins of another account at
// the same time all succeed.
func TestParallelAttackAcrossTwoInstances(t *testing.T) {
	dbURL := storagetest.RequirePostgres(t)
	clock := &testClock{}
	// The address budget would block the test's one address; it has a
	// test of its own.
	noIP := func(c *config.Config) { c.Lockout.IP.MaxFailures = 0 }
	a := start(t, dbURL, clock, noIP)
	b := start(t, dbURL, clock, noIP, func(c *config.Config) { c.Server.Issuer = a.issuer })
	f := fixtureOn(t, a, true)
	carol := f.createUser(authn.UserSpec{Username: "carol", Password: alicePass})
	authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	var wg sync.WaitGroup
	var carolCodes atomic.Int64
	errs := make(chan error, 70)
	for i := range 70 {
		in := []*instance{a, b}[i%2]
		wg.Go(func() {
			br := browserFor(f.instance, in)
			u := strings.Replace(authURL, a.issuer, in.ts.URL, 1)
			if i < 50 {
				status, _, _, err := tryLogin(br, in.ts.URL, u, "alice", "wrong password")
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("wrong password: status %d", status)
				}
				if err != nil {
					errs <- err
				}
				return
			}
			status, loc, body, err := tryLogin(br, in.ts.URL, u, "carol", alicePass)
			if err != nil || status != http.StatusSeeOther {
				errs <- fmt.Errorf("carol: %d %v %s", status, err, body)
				return
			}
			// The browser follows the flow back to the authorization
			// endpoint, and stops at the redirect to the client.
			cb, err := url.Parse(loc)
			if err != nil || cb.Query().Get("code") == "" {
				errs <- fmt.Errorf("carol's sign-in did not reach the client: %q", loc)
				return
			}
			carolCodes.Add(1)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := carolCodes.Load(); got != 20 {
		t.Errorf("%d of 20 parallel sign-ins of another account succeeded during the attack", got)
	}
	events := auditEvents(t, f.instance, audit.TypeLoginFailed, f.userID)
	counted := 0
	for _, e := range events {
		if e.Reason == authn.ReasonBadPassword {
			counted++
		}
	}
	if counted != 5 {
		t.Errorf("recorded %d counted failures of the attacked account, want exactly max_failures (5); %d failures in all", counted, len(events))
	}
	if got := len(auditEvents(t, f.instance, audit.TypeAccountLocked, f.userID)); got != 1 {
		t.Errorf("%d account.locked events, want 1", got)
	}
	if len(auditEvents(t, f.instance, audit.TypeLoginFailed, carol)) != 0 {
		t.Error("the other account has failures")
	}
}

// browserFor is a browser of the shared issuer that follows redirects on
// in too, a second instance behind the same issuer.
func browserFor(issuer, in *instance) *browser {
	br := issuer.browser()
	br.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		u := req.URL.String()
		if len(via) > 10 || (!strings.HasPrefix(u, issuer.issuer) && !strings.HasPrefix(u, in.ts.URL)) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return br
}

func auditEvents(t *testing.T, in *instance, typ, userID string) []audit.Event {
	t.Helper()
	events, _, err := in.srv.Audit().Query(context.Background(), audit.Query{Type: typ, UserID: userID, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// The cascade through the HTML form: each browser is a device (its device
// cookie); three wrong passwords lock a browser, three locked browsers lock
// the account on every device, which ends its sessions and tokens, and an
// administrator's unlock lets the person back in.
func TestLockoutCascadeThroughTheForm(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{}, func(c *config.Config) {
			c.Lockout.MaxFailures = 0 // only the device rule and the cascade
			c.Lockout.IP.MaxFailures = 0
		})
		f := fixtureOn(t, in, true)
		code, verifier := f.code(f.browser())
		tok, err := f.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		login := func(br *browser, password string) (int, string) {
			t.Helper()
			status, _, body, err := tryLogin(br, in.issuer, authURL, "alice", password)
			if err != nil {
				t.Fatal(err)
			}
			return status, body
		}
		for dev := range 3 {
			br := f.browser()
			for range 3 {
				login(br, "wrong password")
			}
			_, body := login(br, alicePass)
			want := "from this device"
			if dev == 2 {
				want = "This account is locked"
			}
			if !strings.Contains(body, want) {
				t.Fatalf("device %d, right password after three wrong ones: page does not say %q:\n%s", dev+1, want, body)
			}
		}
		if _, body := login(f.browser(), alicePass); !strings.Contains(body, "This account is locked") {
			t.Fatalf("a new browser after the cascade is not told the account is locked:\n%s", body)
		}
		if active := f.introspect(tok.AccessToken)["active"]; active != false {
			t.Fatalf("a token issued before the lock introspects active = %v", active)
		}
		adm := f.admin()
		if status, body := adm.do(http.MethodPost, "/admin/users/"+f.userID+"/unlock", "", ""); status/100 != 2 {
			t.Fatalf("unlock: %d %s", status, body)
		}
		if status, body := login(f.browser(), alicePass); status != http.StatusSeeOther {
			t.Fatalf("after the unlock: %d\n%s", status, body)
		}
	})
}

// Captcha mode through the form: after max_failures the page shows a
// captcha; a missing or wrong answer is refused before the password is
// checked (no failure is counted, a right password does not get through),
// and a right answer lets the attempt through. The captcha is Cloudflare
// Turnstile against a local fake of its verify endpoint, which passes the
// token "human".
func TestCaptchaModeThroughTheForm(t *testing.T) {
	var verifies atomic.Int64
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verifies.Add(1)
		_ = r.ParseForm()
		if r.PostForm.Get("secret") != "turnstile-secret" || r.PostForm.Get("response") != "human" {
			io.WriteString(w, `{"success":false,"error-codes":["invalid-input-response"]}`)
			return
		}
		io.WriteString(w, `{"success":true,"action":"login"}`)
	}))
	defer fake.Close()
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{}, func(c *config.Config) {
			c.Lockout.Action = policies.LockoutActionCaptcha
			c.Lockout.Device.MaxFailures = 0
			c.Secrets.Captcha = "turnstile-secret"
			c.Captcha.Provider, c.Captcha.SiteKey, c.Captcha.VerifyURL = policies.CaptchaTurnstile, "0x4AAAAAAA", fake.URL
		})
		f := fixtureOn(t, in, true)
		authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		br := f.browser()
		post := func(password, token string) (*http.Response, string) {
			t.Helper()
			_, page := br.get(authURL)
			form := hiddenFields(page)
			form.Set("username", "alice")
			form.Set("password", password)
			if token != "" {
				form.Set(captcha.FieldTurnstile, token)
			}
			return br.postForm(in.issuer+"/login", form)
		}
		if _, page := br.get(authURL); strings.Contains(page, "cf-turnstile") {
			t.Fatal("a captcha before any failure")
		}
		for range 5 {
			post("wrong password", "")
		}
		resp, page := post(alicePass, "")
		if !strings.Contains(page, "cf-turnstile") || !strings.Contains(page, "several failed sign-ins") {
			t.Fatalf("after five failures the page shows no captcha:\n%s", page)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "challenges.cloudflare.com") {
			t.Fatalf("the captcha page's CSP does not allow the provider: %s", csp)
		}
		if _, page := post(alicePass, "robot"); !strings.Contains(page, "did not match") {
			t.Fatalf("a wrong captcha answer with the right password:\n%s", page)
		}
		if got := len(auditEvents(t, f.instance, audit.TypeLoginFailed, f.userID)); got != 7 {
			t.Fatalf("login.failed events = %d, want 5 failures and 2 captcha refusals", got)
		}
		a, _, err := f.srv.Store().Lockout(context.Background(), f.userID, "")
		if err != nil || a.Failures != 5 {
			t.Fatalf("failures counted = %d (%v), want the captcha refusals not counted", a.Failures, err)
		}
		before := verifies.Load()
		resp, _ = post(alicePass, "human")
		if resp.StatusCode != http.StatusSeeOther || verifies.Load() != before+1 {
			t.Fatalf("right captcha and password: %d (verify calls %d)", resp.StatusCode, verifies.Load()-before)
		}
		if _, page := f.browser().get(authURL); !strings.Contains(page, `name="password"`) || strings.Contains(page, "cf-turnstile") {
			t.Fatalf("after a success a new browser gets no plain login page:\n%s", page)
		}
	})
}
