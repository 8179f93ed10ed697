package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/portcullis/portcullis/captcha"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// TestCaptchaWiring: the server's captcha service keeps built-in
// challenges in the shared database (a challenge drawn on one instance is
// used up by an answer on another), and verifies third-party answers with
// secrets.captcha.
func TestCaptchaWiring(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		clock := &testClock{}
		a, b := start(t, dbURL, clock), start(t, dbURL, clock)
		builtin := policies.Defaults().Captcha
		w, err := a.srv.Captcha().Widget(t.Context(), builtin, policies.CaptchaOnLogin)
		if err != nil {
			t.Fatalf("Widget: %v", err)
		}
		wrong := url.Values{captcha.FieldChallengeID: {w.ChallengeID}, captcha.FieldAnswer: {"not digits"}}
		if ok, err := b.srv.Captcha().Verify(t.Context(), builtin, policies.CaptchaOnLogin, wrong, "192.0.2.1"); ok || err != nil {
			t.Fatalf("wrong answer on the other instance: Verify = %v, %v", ok, err)
		}
		// The other instance's guess used the challenge up for everyone:
		// of two drawn, only the unanswered one is left to purge.
		if _, err := a.srv.Captcha().Widget(t.Context(), builtin, policies.CaptchaOnLogin); err != nil {
			t.Fatalf("Widget: %v", err)
		}
		n, err := a.srv.Store().DeleteExpiredCaptchaChallenges(t.Context(), clock.Now().Add(24*time.Hour))
		if err != nil || n != 1 {
			t.Errorf("challenges left = %d, %v; want 1", n, err)
		}
	})

	t.Run("provider secret", func(t *testing.T) {
		var got url.Values
		fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			got, _ = url.ParseQuery(string(body))
			io.WriteString(w, `{"success":true}`)
		}))
		defer fake.Close()
		in := start(t, storagetest.SQLiteURL(t), &testClock{}, func(c *config.Config) {
			c.Secrets.Captcha = "turnstile-secret"
			c.Captcha.Provider, c.Captcha.SiteKey, c.Captcha.VerifyURL = policies.CaptchaTurnstile, "0x4AAA", fake.URL
		})
		p := policies.Defaults().Captcha
		p.Provider, p.SiteKey, p.VerifyURL = policies.CaptchaTurnstile, "0x4AAA", fake.URL
		ok, err := in.srv.Captcha().Verify(t.Context(), p, policies.CaptchaOnLogin, url.Values{captcha.FieldTurnstile: {"tok"}}, "192.0.2.1")
		if !ok || err != nil {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
		if got.Get("secret") != "turnstile-secret" || got.Get("response") != "tok" || got.Get("remoteip") != "192.0.2.1" {
			t.Errorf("the provider got %v", got)
		}
	})
}
