package captcha

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/policies"
)

const providerSecret = "provider-secret-key"

// fakeProvider is a local stand-in for a provider's siteverify endpoint:
// it records what it was sent and answers what the test says.
type fakeProvider struct {
	*httptest.Server
	mu       sync.Mutex
	requests []url.Values
	methods  []string
	types    []string
	status   int
	body     string
	delay    time.Duration
}

func newFake(t *testing.T) *fakeProvider {
	f := &fakeProvider{status: http.StatusOK, body: `{"success":true}`}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		f.mu.Lock()
		f.requests = append(f.requests, form)
		f.methods = append(f.methods, r.Method)
		f.types = append(f.types, r.Header.Get("Content-Type"))
		status, body, delay := f.status, f.body, f.delay
		f.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProvider) answer(status int, body string, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body, f.delay = status, body, delay
}

func (f *fakeProvider) calls() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.requests...)
}

func providerService(t *testing.T, secret string, timeout time.Duration) *Service {
	t.Helper()
	s, err := New(Config{Store: &memStore{}, SystemSecrets: []string{secretA}, ProviderSecret: secret, VerifyTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func providerPolicy(provider, verifyURL string) policies.Captcha {
	p := policies.Defaults().Captcha
	p.Provider, p.SiteKey, p.VerifyURL = provider, "site-key-"+provider, verifyURL
	return p
}

// TestProviders runs each provider's verifier against a fake of its
// verify endpoint.
func TestProviders(t *testing.T) {
	providers := []struct {
		provider string
		field    string
	}{
		{policies.CaptchaRecaptchaV2, FieldRecaptcha},
		{policies.CaptchaRecaptchaV3, FieldRecaptcha},
		{policies.CaptchaHCaptcha, FieldHCaptcha},
		{policies.CaptchaTurnstile, FieldTurnstile},
	}
	// success is what a provider answers for a good token for the login
	// page: reCAPTCHA v3 with a score and the action.
	success := map[string]string{
		policies.CaptchaRecaptchaV2: `{"success":true,"challenge_ts":"2031-03-04T05:06:07Z","hostname":"id.example"}`,
		policies.CaptchaRecaptchaV3: `{"success":true,"score":0.9,"action":"login","challenge_ts":"2031-03-04T05:06:07Z","hostname":"id.example"}`,
		policies.CaptchaHCaptcha:    `{"success":true,"challenge_ts":"2031-03-04T05:06:07Z","hostname":"id.example","credit":false}`,
		policies.CaptchaTurnstile:   `{"success":true,"challenge_ts":"2031-03-04T05:06:07Z","hostname":"id.example","action":"login","cdata":""}`,
	}
	type outcome int
	const (
		pass outcome = iota
		refuse
		unavailable
	)
	tests := []struct {
		name      string
		only      string // run for this provider only; "" for all
		status    int
		body      string
		delay     time.Duration
		token     string // posted in the provider's field; default "token-1"
		noRequest bool   // the provider must not be asked
		want      outcome
	}{
		{name: "success", want: pass},
		{name: "wrong answer", body: `{"success":false,"error-codes":["invalid-input-response"]}`, want: refuse},
		{name: "replayed token", body: `{"success":false,"error-codes":["timeout-or-duplicate"]}`, want: refuse},
		{name: "failure without codes", body: `{"success":false}`, want: refuse},
		{name: "missing token", token: "-", noRequest: true, want: refuse},
		{name: "oversized token", token: strings.Repeat("t", maxToken+1), noRequest: true, want: refuse},
		{name: "wrong secret", body: `{"success":false,"error-codes":["invalid-input-secret"]}`, want: unavailable},
		{name: "bad request", body: `{"success":false,"error-codes":["bad-request"]}`, want: unavailable},
		{name: "site key and secret mismatch", only: policies.CaptchaHCaptcha,
			body: `{"success":false,"error-codes":["sitekey-secret-mismatch"]}`, want: unavailable},
		{name: "provider error", only: policies.CaptchaTurnstile,
			body: `{"success":false,"error-codes":["internal-error"]}`, want: unavailable},
		{name: "server error", status: http.StatusInternalServerError, body: `oops`, want: unavailable},
		{name: "not json", body: `<html>maintenance</html>`, want: unavailable},
		{name: "timeout", delay: 2 * time.Second, want: unavailable},
		{name: "low score", only: policies.CaptchaRecaptchaV3, body: `{"success":true,"score":0.3,"action":"login"}`, want: refuse},
		{name: "score at the threshold", only: policies.CaptchaRecaptchaV3, body: `{"success":true,"score":0.5,"action":"login"}`, want: pass},
		{name: "token of another action", only: policies.CaptchaRecaptchaV3, body: `{"success":true,"score":0.9,"action":"checkout"}`, want: refuse},
		{name: "v3 answer without a score", only: policies.CaptchaRecaptchaV3, body: `{"success":true,"action":"login"}`, want: unavailable},
		{name: "turnstile token of another action", only: policies.CaptchaTurnstile, body: `{"success":true,"action":"signup"}`, want: refuse},
		{name: "turnstile token without action", only: policies.CaptchaTurnstile, body: `{"success":true}`, want: pass},
	}
	for _, pv := range providers {
		for _, tt := range tests {
			if tt.only != "" && tt.only != pv.provider {
				continue
			}
			t.Run(pv.provider+"/"+tt.name, func(t *testing.T) {
				fake := newFake(t)
				body := tt.body
				if body == "" {
					body = success[pv.provider]
				}
				status := tt.status
				if status == 0 {
					status = http.StatusOK
				}
				fake.answer(status, body, tt.delay)
				svc := providerService(t, providerSecret, 200*time.Millisecond)
				token := tt.token
				switch token {
				case "":
					token = "token-1"
				case "-":
					token = ""
				}
				p := providerPolicy(pv.provider, fake.URL+"/siteverify")
				form := url.Values{pv.field: {token}, "username": {"alice"}}

				ok, err := svc.Verify(t.Context(), p, policies.CaptchaOnLogin, form, "198.51.100.7")
				switch tt.want {
				case pass:
					if err != nil || !ok {
						t.Fatalf("Verify = %v, %v; want true", ok, err)
					}
				case refuse:
					if err != nil || ok {
						t.Fatalf("Verify = %v, %v; want false, nil", ok, err)
					}
				case unavailable:
					if ok || !errors.Is(err, ErrUnavailable) {
						t.Fatalf("Verify = %v, %v; want false, ErrUnavailable", ok, err)
					}
					if strings.Contains(err.Error(), providerSecret) {
						t.Errorf("the error %q shows the secret", err)
					}
				}

				calls := fake.calls()
				if tt.noRequest {
					if len(calls) != 0 {
						t.Errorf("the provider was asked %d times, want never", len(calls))
					}
					return
				}
				if len(calls) != 1 {
					t.Fatalf("the provider was asked %d times, want once", len(calls))
				}
				got := calls[0]
				if got.Get("secret") != providerSecret || got.Get("response") != token || got.Get("remoteip") != "198.51.100.7" {
					t.Errorf("sent %v, want secret, response and remoteip", got)
				}
				if got.Has("username") {
					t.Error("the form's other fields were sent to the provider")
				}
				if want := pv.provider == policies.CaptchaHCaptcha; got.Has("sitekey") != want || (want && got.Get("sitekey") != p.SiteKey) {
					t.Errorf("sitekey sent = %q, want it only for hcaptcha", got.Get("sitekey"))
				}
				if fake.methods[0] != http.MethodPost || fake.types[0] != "application/x-www-form-urlencoded" {
					t.Errorf("request %s %s, want a form POST", fake.methods[0], fake.types[0])
				}
			})
		}
	}
}

func TestProviderFailuresAreErrors(t *testing.T) {
	form := url.Values{FieldTurnstile: {"token"}}

	t.Run("provider down", func(t *testing.T) {
		fake := newFake(t)
		down := fake.URL
		fake.Close()
		p := providerPolicy(policies.CaptchaTurnstile, down)
		ok, err := providerService(t, providerSecret, time.Second).Verify(t.Context(), p, policies.CaptchaOnLogin, form, "")
		if ok || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "turnstile") {
			t.Errorf("Verify = %v, %v; want false, ErrUnavailable naming the provider", ok, err)
		}
	})
	t.Run("no secret configured", func(t *testing.T) {
		fake := newFake(t)
		p := providerPolicy(policies.CaptchaTurnstile, fake.URL)
		ok, err := providerService(t, "", time.Second).Verify(t.Context(), p, policies.CaptchaOnLogin, form, "")
		if ok || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "secrets.captcha") {
			t.Errorf("Verify = %v, %v; want false, ErrUnavailable naming secrets.captcha", ok, err)
		}
		if n := len(fake.calls()); n != 0 {
			t.Errorf("the provider was asked %d times without a secret", n)
		}
		if _, err := providerService(t, "", time.Second).Widget(t.Context(), p, policies.CaptchaOnLogin); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Widget without a secret: %v, want ErrUnavailable", err)
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		// The secret is in the body; a redirect must not carry it on.
		elsewhere := newFake(t)
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
		}))
		t.Cleanup(redirector.Close)
		p := providerPolicy(policies.CaptchaTurnstile, redirector.URL)
		ok, err := providerService(t, providerSecret, time.Second).Verify(t.Context(), p, policies.CaptchaOnLogin, form, "")
		if ok || !errors.Is(err, ErrUnavailable) {
			t.Errorf("Verify = %v, %v; want false, ErrUnavailable", ok, err)
		}
		if n := len(elsewhere.calls()); n != 0 {
			t.Errorf("the redirect target got %d requests", n)
		}
	})
	t.Run("caller's context ends", func(t *testing.T) {
		fake := newFake(t)
		fake.answer(http.StatusOK, `{"success":true}`, 5*time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		p := providerPolicy(policies.CaptchaTurnstile, fake.URL)
		start := time.Now()
		ok, err := providerService(t, providerSecret, time.Minute).Verify(ctx, p, policies.CaptchaOnLogin, form, "")
		if ok || !errors.Is(err, ErrUnavailable) || time.Since(start) > 2*time.Second {
			t.Errorf("Verify = %v, %v after %s; want a prompt ErrUnavailable", ok, err, time.Since(start))
		}
	})
	t.Run("unknown provider", func(t *testing.T) {
		p := providerPolicy("friendlycaptcha", "")
		svc := providerService(t, providerSecret, time.Second)
		if ok, err := svc.Verify(t.Context(), p, policies.CaptchaOnLogin, form, ""); ok || !errors.Is(err, ErrUnavailable) {
			t.Errorf("Verify = %v, %v; want false, ErrUnavailable", ok, err)
		}
		if _, err := svc.Widget(t.Context(), p, policies.CaptchaOnLogin); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Widget error = %v, want ErrUnavailable", err)
		}
	})
}

// TestProviderReadsItsOwnField: each provider's answer is read from its
// own field only, so a token posted under another name is no answer.
func TestProviderReadsItsOwnField(t *testing.T) {
	fake := newFake(t)
	svc := providerService(t, providerSecret, time.Second)
	for provider, wrongField := range map[string]string{
		policies.CaptchaRecaptchaV2: FieldHCaptcha,
		policies.CaptchaHCaptcha:    FieldRecaptcha,
		policies.CaptchaTurnstile:   FieldRecaptcha,
		policies.CaptchaBuiltin:     FieldTurnstile,
	} {
		p := providerPolicy(provider, fake.URL)
		ok, err := svc.Verify(t.Context(), p, policies.CaptchaOnLogin, url.Values{wrongField: {"token"}}, "")
		if ok || err != nil {
			t.Errorf("%s with the answer in %s: Verify = %v, %v; want false, nil", provider, wrongField, ok, err)
		}
	}
	if n := len(fake.calls()); n != 0 {
		t.Errorf("the provider was asked %d times", n)
	}
}

func TestProviderWidgets(t *testing.T) {
	svc := providerService(t, providerSecret, time.Second)
	tests := []struct {
		provider, siteKey string
		field, script     string
		class, action     string
		invisible         bool
	}{
		{policies.CaptchaRecaptchaV2, "6Lv2", FieldRecaptcha, "https://www.google.com/recaptcha/api.js", "g-recaptcha", "", false},
		{policies.CaptchaRecaptchaV3, "6L v3&", FieldRecaptcha, "https://www.google.com/recaptcha/api.js?render=6L+v3%26", "", "login", true},
		{policies.CaptchaHCaptcha, "10000000-ffff", FieldHCaptcha, "https://js.hcaptcha.com/1/api.js", "h-captcha", "", false},
		{policies.CaptchaTurnstile, "0x4AAA", FieldTurnstile, "https://challenges.cloudflare.com/turnstile/v0/api.js", "cf-turnstile", "login", false},
	}
	for _, tt := range tests {
		t.Run(tt.provider, func(t *testing.T) {
			p := policies.Defaults().Captcha
			p.Provider, p.SiteKey = tt.provider, tt.siteKey
			w, err := svc.Widget(t.Context(), p, policies.CaptchaOnLogin)
			if err != nil {
				t.Fatal(err)
			}
			if w.Field != tt.field || w.ScriptURL != tt.script || w.SiteKey != tt.siteKey || w.ChallengeID != "" {
				t.Errorf("widget = %+v", w)
			}
			page := w.Template("try again")
			if page.Class != tt.class || page.Action != tt.action || page.Invisible != tt.invisible ||
				page.SiteKey != tt.siteKey || page.ScriptURL != tt.script || page.ChallengeID != "" || page.Error != "try again" {
				t.Errorf("template data = %+v", page)
			}
		})
	}
}
