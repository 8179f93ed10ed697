package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/internal/browsertest"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// deviceFixture is a fixture with a public TV client registered for the
// device grant, and x/oauth2's view of it.
type deviceFixture struct {
	*fixture
	tv  oauth2.Config
	adm *adminAPI
}

func newDeviceFixture(t *testing.T, dbURL string) *deviceFixture {
	t.Helper()
	f := newFixture(t, dbURL, true)
	f.instance.createClient(oauth.ClientSpec{
		ID: "tv", Name: "Living Room TV", Public: true, TokenEndpointAuthMethod: "none",
		GrantTypes: []string{oauth.GrantDeviceCode, "refresh_token"}, Scopes: []string{"openid", "offline_access", "profile"},
	})
	// Polls once a second, so the tests need not wait five; every test
	// comes from one address, whose look-ups of codes the budget counts.
	adm := f.admin()
	adm.patch("/admin/policies", `{"device_flow":{"poll_interval":"1s","user_code_attempts":{"max":100}}}`)
	return &deviceFixture{fixture: f, adm: adm, tv: oauth2.Config{
		ClientID: "tv", Scopes: []string{"openid", "offline_access", "profile"},
		Endpoint: oauth2.Endpoint{DeviceAuthURL: f.issuer + oauth.DeviceAuthorizationPath, TokenURL: f.issuer + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams},
	}}
}

// decide opens the complete verification URI in b, signs alice in when
// asked, and answers the confirmation page with decision.
func (f *deviceFixture) decide(t *testing.T, b *browser, da *oauth2.DeviceAuthResponse, decision string) string {
	t.Helper()
	resp, page := b.get(da.VerificationURIComplete)
	if resp.Request.URL.Path == "/login" {
		form := hiddenFields(page)
		form.Set("username", "alice")
		form.Set("password", alicePass)
		resp, page = b.postForm(f.issuer+"/login", form)
	}
	if !strings.Contains(page, "Living Room TV") || !strings.Contains(page, da.UserCode) {
		t.Fatalf("confirmation page (at %s) does not name the client and the code: %s", resp.Request.URL, page)
	}
	form := hiddenFields(page)
	form.Set("decision", decision)
	_, page = b.postForm(f.issuer+"/device", form)
	return page
}

// poll is one raw token request of the device, as RFC 8628 3.4 has it.
func (f *deviceFixture) poll(t *testing.T, deviceCode string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(f.issuer+"/oauth2/token", url.Values{
		"grant_type": {oauth.GrantDeviceCode}, "device_code": {deviceCode}, "client_id": {"tv"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestDeviceGrant(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newDeviceFixture(t, dbURL)
		ctx := context.Background()

		t.Run("discovery and the device authorization response", func(t *testing.T) {
			da, err := f.tv.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(da.UserCode) {
				t.Errorf("user code %q, want XXXX-XXXX of consonants", da.UserCode)
			}
			if da.VerificationURI != f.issuer+"/device" || da.VerificationURIComplete != f.issuer+"/device?user_code="+da.UserCode {
				t.Errorf("verification URIs %q %q", da.VerificationURI, da.VerificationURIComplete)
			}
			if da.Interval != 1 || time.Until(da.Expiry) < 9*time.Minute {
				t.Errorf("interval %d, expiry %s", da.Interval, da.Expiry)
			}
		})

		t.Run("approve: x/oauth2 polls and gets tokens", func(t *testing.T) {
			da, err := f.tv.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			var tok *oauth2.Token
			go func() {
				var err error
				tok, err = f.tv.DeviceAccessToken(ctx, da)
				done <- err
			}()
			page := f.decide(t, f.browser(), da, "approve")
			if !strings.Contains(page, "Your device is signed in") {
				t.Fatalf("after approving: %s", page)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("DeviceAccessToken: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the device got no token within 30 s")
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Extra("id_token") == nil {
				t.Fatalf("token response lacks a token: %+v", tok)
			}
			info, err := f.tv.Client(ctx, tok).Get(f.issuer + "/userinfo")
			if err != nil || info.StatusCode != http.StatusOK {
				t.Fatalf("userinfo with the device's token: %v %v", info, err)
			}
			var claims map[string]any
			_ = json.NewDecoder(info.Body).Decode(&claims)
			info.Body.Close()
			if claims["sub"] != f.userID {
				t.Fatalf("userinfo sub = %v, want alice", claims["sub"])
			}
			if n := len(auditEvents(t, f.instance, audit.TypeDeviceCodeApproved, f.userID)); n != 1 {
				t.Fatalf("device_code.approved events = %d", n)
			}
		})

		t.Run("deny is final", func(t *testing.T) {
			da, err := f.tv.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b := f.browser()
			if page := f.decide(t, b, da, "deny"); !strings.Contains(page, "Request denied") {
				t.Fatalf("after denying: %s", page)
			}
			// Going back and approving changes nothing.
			_, entry := b.get(f.issuer + "/device")
			_, page := b.postForm(f.issuer+"/device", url.Values{"csrf_token": {hiddenFields(entry).Get("csrf_token")},
				"user_code": {da.UserCode}, "decision": {"approve"}})
			if strings.Contains(page, "Your device is signed in") {
				t.Fatal("a denied code was approved afterwards")
			}
			if _, err := f.tv.DeviceAccessToken(ctx, da); oauthErrorCode(err) != "access_denied" {
				t.Fatalf("poll after deny: %v, want access_denied", err)
			}
		})

		t.Run("pending, then slow_down when polling too fast", func(t *testing.T) {
			da, _ := f.tv.DeviceAuth(ctx)
			if status, body := f.poll(t, da.DeviceCode); status != 400 || body["error"] != "authorization_pending" {
				t.Fatalf("first poll: %d %v", status, body)
			}
			if status, body := f.poll(t, da.DeviceCode); status != 400 || body["error"] != "slow_down" {
				t.Fatalf("an immediate second poll: %d %v, want slow_down", status, body)
			}
		})

		t.Run("ten parallel polls redeem an approved code once", func(t *testing.T) {
			da, _ := f.tv.DeviceAuth(ctx)
			f.decide(t, f.browser(), da, "approve")
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				tokens int
			)
			for range 10 {
				wg.Go(func() {
					if status, body := f.poll(t, da.DeviceCode); status == 200 && body["access_token"] != nil {
						mu.Lock()
						tokens++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if status, _ := f.poll(t, da.DeviceCode); status == 200 {
				tokens++
			}
			if tokens != 1 {
				t.Fatalf("%d token responses for one device code, want exactly 1", tokens)
			}
		})

		t.Run("a user locked after approving gets the device no token", func(t *testing.T) {
			da, _ := f.tv.DeviceAuth(ctx)
			f.decide(t, f.browser(), da, "approve")
			// Each from a device of its own: the account's counter locks.
			for range 5 {
				f.browser().postLogin(f.issuer+"/login", "alice", "wrong password")
			}
			if status, body := f.poll(t, da.DeviceCode); body["error"] != "access_denied" {
				t.Fatalf("redemption by a locked account: %d %v, want access_denied", status, body)
			}
		})
	})
}

func TestDeviceGrantExpiryAndGuessing(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newDeviceFixture(t, dbURL)
		f.adm.patch("/admin/policies", `{"device_flow":{"user_code_attempts":{"max":10,"period":"10m"}}}`)
		ctx := context.Background()
		da, err := f.tv.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(11 * time.Minute)
		if status, body := f.poll(t, da.DeviceCode); body["error"] != "expired_token" {
			t.Fatalf("poll after code_ttl: %d %v, want expired_token", status, body)
		}
		_, page := f.browser().get(da.VerificationURIComplete)
		if !strings.Contains(page, "not valid, or it has expired") {
			t.Fatalf("an expired code on the verification page: %s", page)
		}

		// The address's budget (10 per 10 minutes) counts every look-up;
		// case and dash variants are the same code and spend it the same.
		b := f.browser()
		for i := range 9 {
			_, page = b.get(f.issuer + "/device?user_code=" + url.QueryEscape([]string{"bcdf-ghjk", "BCDFGHJK", "bcdfghjk"}[i%3]))
			if !strings.Contains(page, "not valid") {
				t.Fatalf("wrong code %d: %s", i+1, page)
			}
		}
		fresh, _ := f.tv.DeviceAuth(ctx)
		_, page = b.get(fresh.VerificationURIComplete)
		if !strings.Contains(page, "Too many codes") {
			t.Fatalf("the eleventh look-up from one address was answered: %s", page)
		}
		if n := len(auditEvents(t, f.instance, audit.TypeDeviceCodeRefused, "")); n < 10 {
			t.Fatalf("device_code.user_code_refused events = %d, want at least 10", n)
		}
	})
}

// TestDeviceVerificationInChromium approves a device the way a person
// does: the complete verification URI in a real browser, the login form,
// the confirmation page.
func TestDeviceVerificationInChromium(t *testing.T) {
	f := newDeviceFixture(t, storagetest.SQLiteURL(t))
	ctx := context.Background()
	da, err := f.tv.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t)
	b.Navigate(f.issuer + "/device")
	b.WaitVisible(`input[name="user_code"]`)
	b.Screenshot("device-enter-code")
	b.Fill(`input[name="user_code"]`, strings.ToLower(strings.ReplaceAll(da.UserCode, "-", "")))
	b.Click(`form button[type="submit"]`)
	b.WaitVisible(`input[name="username"]`)
	b.Fill(`input[name="username"]`, "alice")
	b.Fill(`input[name="password"]`, alicePass)
	b.Click(`form button[type="submit"]`)
	b.WaitVisible(`button[value="approve"]`)
	if got := b.Text("h1"); !strings.Contains(got, "Living Room TV") {
		t.Fatalf("confirmation heading %q does not name the client", got)
	}
	b.Screenshot("device-confirm")
	b.Click(`button[value="approve"]`)
	b.WaitVisible(`.success`)
	b.Screenshot("device-done")
	if _, err := f.tv.DeviceAccessToken(ctx, da); err != nil {
		t.Fatalf("DeviceAccessToken after approval in the browser: %v", err)
	}
}
