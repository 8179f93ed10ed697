package server_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// oathtool computes a TOTP code for secret at t with Debian's oathtool: an
// implementation independent of ours, so the two cannot share a mistake.
func oathtool(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	path, err := exec.LookPath("oathtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("oathtool not installed (apt-get install -y oathtool): %v", err)
		}
		t.Skip("oathtool not installed (apt-get install -y oathtool)")
	}
	out, err := exec.Command(path, "--totp", "-b", secret, fmt.Sprintf("--now=@%d", at.Unix())).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

var (
	totpSecretRe   = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	recoveryCodeRe = regexp.MustCompile(`<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>`)
)

// enrolTOTP signs b in as alice (already signed in is fine), sets up an
// authenticator app on the account page, and returns its secret and the
// recovery codes shown.
func (f *fixture) enrolTOTP(t *testing.T, b *browser) (secret string, codes []string) {
	t.Helper()
	resp, page := b.get(f.issuer + authn.AccountTOTPPath)
	if resp.Request.URL.Path == "/login" {
		form := hiddenFields(page)
		form.Set("username", "alice")
		form.Set("password", alicePass)
		resp, page = b.postForm(f.issuer+"/login", form)
	}
	if resp.Request.URL.Path != authn.AccountTOTPPath {
		t.Fatalf("enrolment page: at %s (%d): %s", resp.Request.URL, resp.StatusCode, page)
	}
	m := totpSecretRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("enrolment page shows no secret: %s", page)
	}
	secret = m[1]
	for _, want := range []string{`src="data:image/png;base64,`, `value="otpauth://totp/`, `name="code"`} {
		if !strings.Contains(page, want) {
			t.Errorf("enrolment page lacks %s", want)
		}
	}
	form := hiddenFields(page)
	form.Set("method", "totp")
	form.Set("code", oathtool(t, secret, f.clock.Now()))
	form.Set("name", "Phone")
	resp, page = b.postForm(f.issuer+authn.AccountTOTPPath, form)
	for _, m := range recoveryCodeRe.FindAllStringSubmatch(page, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("after enrolment (%d at %s): %d recovery codes shown, want 10: %s", resp.StatusCode, resp.Request.URL, len(codes), page)
	}
	return secret, codes
}

// toSecondFactor starts an authorization for alice and submits her
// password; it returns the second-factor page the sign-in stops at.
func (f *fixture) toSecondFactor(t *testing.T, b *browser, verifier string, extra ...oauth2.AuthCodeOption) string {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-12345678")}, extra...)
	resp, page := b.postLogin(f.conf.AuthCodeURL("state-mfa", opts...), "alice", alicePass)
	if resp.Request.URL.Path != authn.SecondFactorPath {
		t.Fatalf("after the password: at %s (%d), want the second-factor page: %s", resp.Request.URL, resp.StatusCode, page)
	}
	if !strings.Contains(page, `name="code"`) {
		t.Fatalf("second-factor page has no code input: %s", page)
	}
	return page
}

// submitCode posts code on the second-factor page and returns the answer
// without following a redirect to the client.
func (f *fixture) submitCode(b *browser, page, code string) (*http.Response, string) {
	form := hiddenFields(page)
	form.Set("code", code)
	return b.postForm(f.issuer+authn.SecondFactorPath, form)
}

// codeFrom is the authorization code of a redirect to the client.
func codeFrom(t *testing.T, resp *http.Response, body string) string {
	t.Helper()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code for the client (status %d at %s): %s", resp.StatusCode, resp.Request.URL, body)
	}
	return loc.Query().Get("code")
}

func TestMFATOTPEndToEnd(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		// The clock only moves forward from the past: fosite refuses an
		// auth_time ahead of the wall clock.
		f.clock.Advance(-15 * time.Minute)
		secret, codes := f.enrolTOTP(t, f.browser())
		enrolCode := oathtool(t, secret, f.clock.Now())

		t.Run("the code used to enrol is refused, the next one signs in with amr otp", func(t *testing.T) {
			b := f.browser()
			verifier := oauth2.GenerateVerifier()
			page := f.toSecondFactor(t, b, verifier)
			resp, body := f.submitCode(b, page, enrolCode)
			if resp.Request.URL.Path != authn.SecondFactorPath || !strings.Contains(body, "used already") {
				t.Fatalf("replayed code: at %s (%d): %s", resp.Request.URL, resp.StatusCode, body)
			}
			f.clock.Advance(30 * time.Second)
			resp, body = f.submitCode(b, body, oathtool(t, secret, f.clock.Now()))
			claims := f.exchangeID(t, codeFrom(t, resp, body), verifier)
			if !slices.Contains(claims.AMR, "pwd") || !slices.Contains(claims.AMR, "otp") || !slices.Contains(claims.AMR, "mfa") ||
				claims.ACR != policies.ACRMultiFactor {
				t.Fatalf("ID token amr=%v acr=%q, want pwd, otp, mfa and %s", claims.AMR, claims.ACR, policies.ACRMultiFactor)
			}
		})

		t.Run("ten parallel submissions of one code: exactly one signs in", func(t *testing.T) {
			f.clock.Advance(30 * time.Second)
			const n = 10
			browsers := make([]*browser, n)
			pages := make([]string, n)
			for i := range n {
				browsers[i] = f.browser()
				pages[i] = f.toSecondFactor(t, browsers[i], oauth2.GenerateVerifier())
			}
			code := oathtool(t, secret, f.clock.Now())
			var (
				wg sync.WaitGroup
				mu sync.Mutex
				ok int
			)
			for i := range n {
				wg.Go(func() {
					resp, err := browsers[i].c.PostForm(f.issuer+authn.SecondFactorPath, withCode(pages[i], code))
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if loc, _ := resp.Location(); loc != nil && loc.Query().Get("code") != "" {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if ok != 1 {
				t.Fatalf("%d of %d parallel submissions of one code signed in, want exactly 1", ok, n)
			}
		})

		t.Run("a recovery code works once and says how many are left", func(t *testing.T) {
			// The parallel submissions spent the account's code budget.
			f.clock.Advance(5 * time.Minute)
			b := f.browser()
			verifier := oauth2.GenerateVerifier()
			page := f.toSecondFactor(t, b, verifier)
			resp, body := f.submitCode(b, page, strings.ToUpper(codes[0]))
			if !strings.Contains(body, "You have 9 left") {
				t.Fatalf("recovery code sign-in (%d at %s): %s", resp.StatusCode, resp.Request.URL, body)
			}
			next := regexp.MustCompile(`<a href="([^"]+)">Continue</a>`).FindStringSubmatch(body)
			if next == nil {
				t.Fatalf("no way on after the recovery code: %s", body)
			}
			resp, body = b.get(f.issuer + html.UnescapeString(next[1]))
			claims := f.exchangeID(t, codeFrom(t, resp, body), verifier)
			if !slices.Contains(claims.AMR, "mfa") {
				t.Fatalf("amr after a recovery code = %v", claims.AMR)
			}
			if ev := auditEvents(t, f.instance, audit.TypeMFARecoveryCodeUsed, f.userID); len(ev) != 1 || fmt.Sprint(ev[0].Details["remaining"]) != "9" {
				t.Fatalf("recovery code events = %+v", ev)
			}

			b2 := f.browser()
			page = f.toSecondFactor(t, b2, oauth2.GenerateVerifier())
			resp, body = f.submitCode(b2, page, codes[0])
			if resp.Request.URL.Path != authn.SecondFactorPath || !strings.Contains(body, `role="alert"`) {
				t.Fatalf("a spent recovery code was accepted: %d at %s", resp.StatusCode, resp.Request.URL)
			}
		})
	})
}

func withCode(page, code string) url.Values {
	form := hiddenFields(page)
	form.Set("code", code)
	return form
}

func TestMFAWrongCodesLockTheAccount(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		// The account's counter, not the device's, is under test.
		f.admin().patch("/admin/policies", `{"lockout":{"device":{"max_failures":0}}}`)
		f.clock.Advance(-5 * time.Minute)
		secret, _ := f.enrolTOTP(t, f.browser())
		f.clock.Advance(30 * time.Second)
		b := f.browser()
		page := f.toSecondFactor(t, b, oauth2.GenerateVerifier())
		max := policies.Defaults().Lockout.MaxFailures
		for i := range max {
			resp, body := f.submitCode(b, page, "000000")
			if resp.Request.URL.Path != authn.SecondFactorPath {
				t.Fatalf("wrong code %d: at %s: %s", i+1, resp.Request.URL, body)
			}
			page = body
		}
		if !strings.Contains(page, "This account is locked") {
			t.Fatalf("after %d wrong codes the page does not say the account is locked: %s", max, page)
		}
		resp, body := f.submitCode(b, page, oathtool(t, secret, f.clock.Now()))
		if loc, _ := resp.Location(); loc != nil || !strings.Contains(body, "This account is locked") {
			t.Fatalf("the right code went through a locked account: %d %v", resp.StatusCode, loc)
		}
		if ev := auditEvents(t, f.instance, audit.TypeAccountLocked, f.userID); len(ev) != 1 {
			t.Fatalf("account.locked events = %d, want 1", len(ev))
		}
		failed := auditEvents(t, f.instance, audit.TypeLoginFailed, f.userID)
		n := 0
		for _, e := range failed {
			if e.Reason == authn.ReasonBadSecondFactor {
				n++
			}
		}
		if n != max {
			t.Fatalf("%d bad_second_factor failures recorded, want %d", n, max)
		}
	})
}

// TestMFATOTPBudget: the code's own budget stops guessing below the
// lockout threshold, so six digits cannot be ground through by an attacker
// who spaces guesses under the lockout window.
func TestMFATOTPBudget(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		f.admin().patch("/admin/policies", `{"lockout":{"max_failures":100,"device":{"max_failures":100},"ip":{"max_failures":100}},"mfa":{"totp":{"max_attempts":3,"attempt_window":"5m"}}}`)
		f.clock.Advance(-10 * time.Minute)
		secret, _ := f.enrolTOTP(t, f.browser())
		f.clock.Advance(30 * time.Second)
		b := f.browser()
		page := f.toSecondFactor(t, b, oauth2.GenerateVerifier())
		for range 3 {
			_, page = f.submitCode(b, page, "000000")
		}
		_, body := f.submitCode(b, page, oathtool(t, secret, f.clock.Now()))
		if !strings.Contains(body, "Too many codes") {
			t.Fatalf("a fourth code inside the window was checked: %s", body)
		}
		f.clock.Advance(5 * time.Minute)
		resp, body := f.submitCode(b, body, oathtool(t, secret, f.clock.Now()))
		_ = codeFrom(t, resp, body)
	})
}

func TestMFARequiredGracePeriod(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		admin := f.admin()
		admin.patch("/admin/policies", `{"mfa":{"requirement":"required","grace_period":"72h"}}`)
		f.clock.Advance(-74 * time.Hour)
		toEnrol := func(b *browser) (string, *http.Response) {
			t.Helper()
			resp, page := b.postLogin(f.conf.AuthCodeURL("state-grace", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
			if resp.Request.URL.Path != authn.MFAEnrollPath {
				t.Fatalf("required MFA without a factor: at %s, want enrolment: %s", resp.Request.URL, page)
			}
			return page, resp
		}
		skip := func(b *browser, page string) (*http.Response, string) {
			form := hiddenFields(page)
			form.Set("method", "skip")
			return b.postForm(f.issuer+authn.MFAEnrollPath, form)
		}
		for day := range 2 {
			b := f.browser()
			page, _ := toEnrol(b)
			if !strings.Contains(page, "Not now") {
				t.Fatalf("day %d of the grace period: no way to skip: %s", day, page)
			}
			resp, body := skip(b, page)
			codeFrom(t, resp, body)
			f.clock.Advance(24 * time.Hour)
		}
		f.clock.Advance(25 * time.Hour) // 73 hours after the first sign-in
		b := f.browser()
		page, _ := toEnrol(b)
		if strings.Contains(page, "Not now") {
			t.Fatalf("after the grace period enrolment can still be skipped")
		}
		resp, body := skip(b, page)
		if resp.Request.URL.Path != authn.MFAEnrollPath || resp.StatusCode != http.StatusOK {
			t.Fatalf("skipping after the grace period: %d at %s", resp.StatusCode, resp.Request.URL)
		}
		// Enrolling at the sign-in completes it with both factors.
		secret := totpSecretRe.FindStringSubmatch(body)
		if secret == nil {
			t.Fatalf("enrolment page shows no secret: %s", body)
		}
		form := hiddenFields(body)
		form.Set("method", "totp")
		form.Set("code", oathtool(t, secret[1], f.clock.Now()))
		resp, body = b.postForm(f.issuer+authn.MFAEnrollPath, form)
		if len(recoveryCodeRe.FindAllString(body, -1)) != 10 {
			t.Fatalf("enrolment at sign-in showed no recovery codes: %s", body)
		}

		// An administrator's reset puts the account back to enrolment.
		// (The clock is back at the wall clock's time first: fosite judges
		// the admin token's expiry by the wall clock.)
		f.clock.Advance(time.Hour)
		status, _ := admin.do(http.MethodDelete, "/admin/users/"+f.userID+"/mfa", "", "")
		if status != http.StatusOK && status != http.StatusNoContent {
			t.Fatalf("reset factors: %d", status)
		}
		page, _ = toEnrol(f.browser())
		if strings.Contains(page, "Not now") {
			t.Fatalf("after a reset past the grace period enrolment can be skipped")
		}
	})
}

// TestMFAPerApplicationAndStepUp: an application's own mfa rule applies
// to sign-ins for it only, and acr_values asking for MFA make a
// password-only session step up with the account's factor.
func TestMFAPerApplicationAndStepUp(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		other := *f.conf
		other.ClientID, other.ClientSecret = "other", f.instance.createClient(oauth.ClientSpec{
			ID: "other", Name: "Other App", GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"},
			RedirectURIs: []string{callback}, SkipConsent: true,
		})
		other.Scopes = []string{"openid"}
		admin := f.admin()
		admin.patch("/admin/clients/webapp/policies", `{"customized":true,"mfa":{"requirement":"required"}}`)
		f.clock.Advance(-10 * time.Minute)

		t.Run("the application that requires MFA takes a factorless account to enrolment", func(t *testing.T) {
			resp, page := f.browser().postLogin(f.conf.AuthCodeURL("state-per-app", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
			if resp.Request.URL.Path != authn.MFAEnrollPath || strings.Contains(page, "Not now") {
				t.Fatalf("webapp (mfa required, no grace): at %s, want enrolment without skipping", resp.Request.URL)
			}
		})
		t.Run("another application follows the global optional rule", func(t *testing.T) {
			b := f.browser()
			resp, body := b.postLogin(other.AuthCodeURL("state-per-app"), "alice", alicePass)
			if loc, _ := resp.Location(); loc == nil || loc.Query().Get("code") == "" {
				t.Fatalf("other app: no code after the password (at %s): %s", resp.Request.URL, body)
			}
		})

		// A factor, then a password-only session: the application turns
		// MFA off, so its sign-ins ask for the password alone.
		secret, _ := f.enrolTOTP(t, f.browser())
		admin.patch("/admin/clients/webapp/policies", `{"mfa":{"requirement":"off"}}`)
		t.Run("acr_values for MFA step a password-only session up", func(t *testing.T) {
			b := f.browser()
			code, verifier := f.code(b)
			if c := f.exchangeID(t, code, verifier); c.ACR != policies.ACRPassword {
				t.Fatalf("sign-in under mfa off: acr %q, want %s", c.ACR, policies.ACRPassword)
			}
			verifier = oauth2.GenerateVerifier()
			resp, page := b.get(f.conf.AuthCodeURL("state-per-app", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-12345678"),
				oauth2.SetAuthURLParam("acr_values", policies.ACRMultiFactor)))
			if resp.Request.URL.Path != authn.SecondFactorPath {
				t.Fatalf("acr_values=mfa on a password session: at %s, want the second-factor page: %s", resp.Request.URL, page)
			}
			f.clock.Advance(30 * time.Second)
			resp, body := f.submitCode(b, page, oathtool(t, secret, f.clock.Now()))
			c := f.exchangeID(t, codeFrom(t, resp, body), verifier)
			if c.ACR != policies.ACRMultiFactor || !slices.Contains(c.AMR, "otp") {
				t.Fatalf("after step-up: amr=%v acr=%q", c.AMR, c.ACR)
			}
		})
	})
}

// TestMFAStepUpBeforePasswordChange: with password_change in
// session.reauth_for, an account with a factor passes it again before
// changing its password once the last one is older than reauth_max_age.
func TestMFAStepUpBeforePasswordChange(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.admin().patch("/admin/policies", `{"session":{"reauth_max_age":"2m","reauth_for":["password_change","mfa_removal"]}}`)
	f.clock.Advance(-10 * time.Minute)
	b := f.browser()
	secret, _ := f.enrolTOTP(t, b) // enrolment counts as a second factor just now
	if resp, _ := b.get(f.issuer + authn.PasswordPath); resp.Request.URL.Path != authn.PasswordPath {
		t.Fatalf("right after enrolment the password page sent to %s", resp.Request.URL)
	}
	f.clock.Advance(3 * time.Minute)
	resp, page := b.get(f.issuer + authn.PasswordPath)
	if resp.Request.URL.Path != authn.AccountStepUpURL || !strings.Contains(page, "change your password") {
		t.Fatalf("3 minutes after the last second factor: at %s, want the step-up page", resp.Request.URL)
	}
	form := hiddenFields(page)
	form.Set("code", oathtool(t, secret, f.clock.Now()))
	resp, page = b.postForm(f.issuer+authn.AccountStepUpURL, form)
	if resp.Request.URL.Path != authn.PasswordPath || !strings.Contains(page, `name="new_password"`) {
		t.Fatalf("after the step-up: at %s: %s", resp.Request.URL, page)
	}
}

// TestMFARememberDevice: a device that passed the second factor within
// mfa.remember_device signs in with the password alone; another does not.
func TestMFARememberDevice(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.admin().patch("/admin/policies", `{"mfa":{"remember_device":"24h"}}`)
	f.clock.Advance(-10 * time.Minute)
	secret, _ := f.enrolTOTP(t, f.browser())
	f.clock.Advance(30 * time.Second)
	b := f.browser()
	page := f.toSecondFactor(t, b, oauth2.GenerateVerifier())
	resp, body := f.submitCode(b, page, oathtool(t, secret, f.clock.Now()))
	codeFrom(t, resp, body)

	// Signing in again on this device (prompt=login): the password only.
	resp, body = b.postLogin(f.conf.AuthCodeURL("state-remembered", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("prompt", "login")), "alice", alicePass)
	codeFrom(t, resp, body)
	// Another device is asked.
	f.toSecondFactor(t, f.browser(), oauth2.GenerateVerifier())
}
