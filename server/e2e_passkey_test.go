package server_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/internal/browsertest"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// startOnLocalhost is start with the issuer named http://localhost:PORT:
// WebAuthn binds credentials to a host name and refuses IP addresses.
func startOnLocalhost(t *testing.T, dbURL string, clock *testClock) *instance {
	t.Helper()
	in := start(t, dbURL, clock, func(c *config.Config) {
		c.Server.Issuer = strings.Replace(c.Server.Issuer, "127.0.0.1", "localhost", 1)
	})
	in.issuer = strings.Replace(in.issuer, "127.0.0.1", "localhost", 1)
	return in
}

// TestPasskeysInChromium registers passkeys and signs in with them in a
// real Chromium, through the DevTools virtual authenticator: as a second
// factor, without a password, with a second authenticator, and removes
// one behind a step-up check.
func TestPasskeysInChromium(t *testing.T) {
	clock := &testClock{}
	in := startOnLocalhost(t, storagetest.SQLiteURL(t), clock)
	// The application's callback, so that the browser lands somewhere and
	// the code in its URL can be read.
	codes := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case codes <- r.URL.Query().Get("code"):
		default:
		}
		_, _ = w.Write([]byte("<!doctype html><title>App</title><p>Signed in.</p>"))
	}))
	t.Cleanup(app.Close)
	f := fixtureOn(t, in, true, func(c *oauth.ClientSpec) { c.RedirectURIs = append(c.RedirectURIs, app.URL+"/callback") })
	f.conf.RedirectURL = app.URL + "/callback"
	f.admin().patch("/admin/policies", `{"mfa":{"passwordless":true}}`)
	clock.Advance(-15 * time.Minute) // only forward from here: fosite refuses an auth_time ahead of the wall clock

	b := browsertest.New(t)
	laptop := b.AddVirtualAuthenticator(true, true)
	clearCookies := func() {
		if _, err := chromedp.Call(b.Context(), network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatalf("clear cookies: %v", err)
		}
	}
	// signInCode runs an authorization in the browser up to the redirect
	// to the client and redeems its code; drive does what the pages ask.
	signInCode := func(t *testing.T, drive func()) idClaims {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		b.Navigate(f.conf.AuthCodeURL("state-passkey", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-12345678")))
		drive()
		var code string
		select {
		case code = <-codes:
		case <-time.After(15 * time.Second):
			t.Fatalf("no code for the client; the browser is at %s", b.Location())
		}
		if code == "" {
			t.Fatalf("the client got no code; the browser is at %s", b.Location())
		}
		return f.exchangeID(t, code, verifier)
	}

	t.Run("register a passkey from the account page", func(t *testing.T) {
		b := b.For(t)
		b.Navigate(f.issuer + authn.AccountPasskey)
		b.Fill(`input[name="username"]`, "alice")
		b.Fill(`input[name="password"]`, alicePass)
		b.Click(`form button[type="submit"]`)
		b.WaitVisible(`form[data-webauthn="create"]`)
		b.Screenshot("mfa-passkey-enrol")
		b.Fill(`input[name="name"]`, "Laptop")
		b.Click(`button[data-webauthn-start]`)
		b.WaitVisible(`.recovery-codes`)
		b.Screenshot("mfa-recovery-codes")
		b.Click(`a.button.primary`)
		b.WaitVisible(`.factors`)
		if got := b.Text(`.factors`); !strings.Contains(got, "Laptop") {
			t.Fatalf("account page lists %q, want the passkey Laptop", got)
		}
		b.Screenshot("mfa-account")
		if creds := b.Credentials(laptop); len(creds) != 1 || !creds[0].Resident {
			t.Fatalf("authenticator holds %+v, want one passkey", creds)
		}
	})

	t.Run("the passkey as the second factor after the password", func(t *testing.T) {
		b := b.For(t)
		clearCookies()
		claims := signInCode(t, func() {
			b.Fill(`input[name="username"]`, "alice")
			b.Fill(`input[name="password"]`, alicePass)
			b.Click(`form:not(.passkey-login) button[type="submit"]`)
			b.WaitVisible(`input[name="code"]`)
			b.Screenshot("mfa-second-factor")
			b.Click(`a[href*="method=passkey"]`)
			b.WaitVisible(`form[data-webauthn="get"]`)
			b.Click(`button[data-webauthn-start]`)
		})
		if !slices.Contains(claims.AMR, "pwd") || !slices.Contains(claims.AMR, "hwk") || claims.ACR != policies.ACRMultiFactor {
			t.Fatalf("amr=%v acr=%q, want pwd and hwk at %s", claims.AMR, claims.ACR, policies.ACRMultiFactor)
		}
	})

	t.Run("passwordless with the discoverable passkey", func(t *testing.T) {
		b := b.For(t)
		clearCookies()
		claims := signInCode(t, func() {
			b.WaitVisible(`.passkey-login button`)
			b.Screenshot("mfa-login-passkey")
			b.Click(`.passkey-login button`)
		})
		if slices.Contains(claims.AMR, "pwd") || !slices.Contains(claims.AMR, "hwk") || !slices.Contains(claims.AMR, "mfa") {
			t.Fatalf("passwordless amr=%v, want hwk and mfa without pwd", claims.AMR)
		}
	})

	var key string
	t.Run("a second authenticator, usable on its own", func(t *testing.T) {
		b := b.For(t)
		key = b.AddSecurityKey(true, true)
		b.SetUserPresence(laptop, false) // the browser uses the one that answers
		b.Navigate(f.issuer + authn.AccountPasskey)
		b.WaitVisible(`form[data-webauthn="create"]`)
		b.Fill(`input[name="name"]`, "Blue key")
		b.Click(`button[data-webauthn-start]`)
		b.WaitVisible(`.factors`)
		if got := b.Text(`.factors`); !strings.Contains(got, "Blue key") || !strings.Contains(got, "Laptop") {
			t.Fatalf("account page lists %q, want both passkeys", got)
		}
		clearCookies()
		signInCode(t, func() {
			b.WaitVisible(`.passkey-login button`)
			b.Click(`.passkey-login button`)
		})
		if creds := b.Credentials(key); len(creds) != 1 || creds[0].SignCount == 0 {
			t.Fatalf("the security key was not used: %+v", creds)
		}
	})

	t.Run("removing a passkey needs a fresh second factor", func(t *testing.T) {
		b := b.For(t)
		// Past session.reauth_max_age (5 minutes when unset) since the
		// last second factor of this session.
		clock.Advance(10 * time.Minute)
		b.Navigate(f.issuer + authn.AccountMFAPath)
		b.WaitVisible(`.factors`)
		b.Click(`li.factor:first-child button.danger`)
		b.WaitVisible(`a[href*="method=passkey"]`)
		if !strings.HasPrefix(b.Location(), f.issuer+authn.AccountStepUpURL) {
			t.Fatalf("removal without a fresh second factor went to %s, want the step-up page", b.Location())
		}
		b.Screenshot("mfa-step-up")
		b.Click(`a[href*="method=passkey"]`)
		b.WaitVisible(`form[data-webauthn="get"]`)
		b.Click(`button[data-webauthn-start]`)
		b.WaitVisible(`.factors`)
		b.Click(`li.factor:first-child button.danger`)
		waitLocation(t, b, "done=removed")
		if got := b.Text(`.factors`); strings.Contains(got, "Laptop") || !strings.Contains(got, "Blue key") {
			t.Fatalf("after removing Laptop the page lists %q", got)
		}
		if ev := auditEvents(t, f.instance, audit.TypeMFARemoved, f.userID); len(ev) != 1 {
			t.Fatalf("mfa.removed events = %d, want 1", len(ev))
		}
	})

	t.Run("the authenticator-app setup and the device list render in the browser", func(t *testing.T) {
		b := b.For(t)
		b.Navigate(f.issuer + authn.AccountTOTPPath)
		b.WaitVisible(`img.qr-code`)
		if secret := b.Text(`#totp-secret`); len(secret) < 16 {
			t.Fatalf("the setup page shows secret %q", secret)
		}
		b.Screenshot("mfa-totp-enrol")
		b.Navigate(f.issuer + authn.AccountDevicesPath)
		b.WaitVisible(`.devices`)
		if got := b.Text(`.devices`); !strings.Contains(got, "(this device)") {
			t.Fatalf("the device list does not mark this browser: %q", got)
		}
		b.Screenshot("account-devices")
	})
}

// waitLocation waits until the browser's URL contains part.
func waitLocation(t *testing.T, b *browsertest.Browser, part string) {
	t.Helper()
	for range 100 {
		if strings.Contains(b.Location(), part) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the browser is at %s, want a URL with %q", b.Location(), part)
}
