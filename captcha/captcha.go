package captcha

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// ErrUnavailable means an answer could not be judged: the database or the
// provider did not answer, answered nonsense, or refused our own request
// (a wrong secret). The caller answers 503: neither letting the attempt
// through nor blaming the person.
var ErrUnavailable = errors.New("captcha: cannot check the answer")

// Form fields the answers come back in.
const (
	FieldChallengeID = "captcha_id"
	FieldAnswer      = "captcha_answer"
	FieldRecaptcha   = "g-recaptcha-response"
	FieldHCaptcha    = "h-captcha-response"
	FieldTurnstile   = "cf-turnstile-response"
)

// Defaults of Config.
const (
	// DefaultChallengeTTL is long enough to read a page, fail once and
	// listen to the recording, and shorter than a login flow (30m).
	DefaultChallengeTTL = 15 * time.Minute
	// DefaultVerifyTimeout bounds a provider check: a sign-in should not
	// hang on a provider, and they answer in well under a second.
	DefaultVerifyTimeout = 5 * time.Second
)

// Store keeps the built-in captcha's challenges; *storage.Store is one.
type Store interface {
	CreateCaptchaChallenge(ctx context.Context, c *storage.CaptchaChallenge) error
	RedeemCaptchaChallenge(ctx context.Context, id string, candidates []string) (bool, error)
}

// Config is what a Service needs.
type Config struct {
	// Store keeps the built-in challenges. Required.
	Store Store
	// SystemSecrets are the system secrets, newest first; the answer
	// hashes are keyed with them (the first hashes, every one checks).
	// Required.
	SystemSecrets []string
	// ProviderSecret is secrets.captcha, the third-party provider's
	// secret key; "" when the provider is builtin.
	ProviderSecret string
	// Client posts to providers' verify endpoints. nil means a client of
	// its own that follows no redirects (the secret is in the body).
	Client *http.Client
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// ChallengeTTL is how long a built-in challenge may be answered;
	// defaults to DefaultChallengeTTL.
	ChallengeTTL time.Duration
	// VerifyTimeout bounds one provider check; defaults to
	// DefaultVerifyTimeout.
	VerifyTimeout time.Duration
}

// Service draws captchas and judges answers. It is safe for concurrent
// use and holds no state of its own: every instance sharing the database
// judges alike.
type Service struct {
	store         Store
	keys          [][]byte
	secret        string
	client        *http.Client
	now           func() time.Time
	ttl           time.Duration
	verifyTimeout time.Duration
	// draw makes the digits of a challenge: randomDigits, or in tests
	// digits known in advance.
	draw func(n int) ([]byte, error)
}

// New checks cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("captcha: a store is required")
	}
	if len(cfg.SystemSecrets) == 0 {
		return nil, errors.New("captcha: a system secret is required")
	}
	keys := make([][]byte, len(cfg.SystemSecrets))
	for i, secret := range cfg.SystemSecrets {
		k, err := storage.DeriveKey(secret, answerKeyPurpose, 32)
		if err != nil {
			return nil, fmt.Errorf("captcha: system secret %d: %w", i, err)
		}
		keys[i] = k
	}
	s := &Service{
		store: cfg.Store, keys: keys, secret: cfg.ProviderSecret, client: cfg.Client, now: cfg.Now,
		ttl: cfg.ChallengeTTL, verifyTimeout: cfg.VerifyTimeout, draw: randomDigits,
	}
	if s.client == nil {
		s.client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl <= 0 {
		s.ttl = DefaultChallengeTTL
	}
	if s.verifyTimeout <= 0 {
		s.verifyTimeout = DefaultVerifyTimeout
	}
	return s, nil
}

// Widget is what a page shows for one captcha: the built-in challenge
// (ChallengeID, PNG, WAV) or a provider's widget (SiteKey, ScriptURL).
type Widget struct {
	// Provider is the policy's provider ("builtin", "turnstile", …).
	Provider string
	// Page is what the captcha guards (policies.CaptchaOnLogin, …); it is
	// the action reCAPTCHA v3 and Turnstile tokens are bound to.
	Page string
	// Field is the form field the answer comes back in: captcha_answer
	// (with captcha_id) for builtin, else the provider's own.
	Field string

	// ChallengeID, PNG and WAV are the built-in challenge: its id and its
	// digits drawn and read out.
	ChallengeID string
	Digits      int
	PNG         []byte
	WAV         []byte

	// SiteKey and ScriptURL are a provider's public key and script.
	SiteKey   string
	ScriptURL string
}

// Widget draws a captcha for page (policies.CaptchaOnLogin, …) under p.
// For builtin it stores a new challenge; a page shown again gets a new
// one, and the old one expires unanswered.
//
// The built-in picture and recording go into the page as data: URLs
// rather than being served at /captcha/{id}.png and .wav. The answer is
// stored only as a keyed hash, so a route could not draw the digits again
// from the database; keeping them in clear (or sealed) for the route would
// be a second copy of the answer at rest, and drawing the same digits
// twice with fresh noise helps a program read them. Inline, the digits
// exist in clear only in this one response, any instance can check the
// answer, and no second request can land on an instance that would draw
// the recording differently (dchest/captcha seeds its noise per process,
// so range requests for one recording could splice two). The price is
// page weight: the picture is about 1.5 kB, the recording about 130 kB
// (180 kB as base64), drawn in about 15 ms, on pages that show a captcha.
func (s *Service) Widget(ctx context.Context, p policies.Captcha, page string) (*Widget, error) {
	w := &Widget{Provider: p.Provider, Page: page}
	if p.ThirdParty() && s.secret == "" {
		// Better now than after the person solved it and typed a password.
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, errNoSecret)
	}
	switch p.Provider {
	case policies.CaptchaBuiltin:
		return s.builtinWidget(ctx, w)
	case policies.CaptchaRecaptchaV2:
		w.Field, w.SiteKey, w.ScriptURL = FieldRecaptcha, p.SiteKey, "https://www.google.com/recaptcha/api.js"
	case policies.CaptchaRecaptchaV3:
		w.Field, w.SiteKey = FieldRecaptcha, p.SiteKey
		w.ScriptURL = "https://www.google.com/recaptcha/api.js?render=" + url.QueryEscape(p.SiteKey)
	case policies.CaptchaHCaptcha:
		w.Field, w.SiteKey, w.ScriptURL = FieldHCaptcha, p.SiteKey, "https://js.hcaptcha.com/1/api.js"
	case policies.CaptchaTurnstile:
		w.Field, w.SiteKey, w.ScriptURL = FieldTurnstile, p.SiteKey, "https://challenges.cloudflare.com/turnstile/v0/api.js"
	default:
		// Validation refuses this; reaching it means a policy that skipped
		// validation, which is the server's fault, not the person's.
		return nil, fmt.Errorf("%w: captcha.provider %q is unknown", ErrUnavailable, p.Provider)
	}
	return w, nil
}

// Template is the widget as templates renders it (LoginPage.Captcha);
// errMsg, when not "", says why the last answer was refused.
func (w *Widget) Template(errMsg string) *templates.CaptchaWidget {
	out := &templates.CaptchaWidget{Error: errMsg}
	if w.Provider == policies.CaptchaBuiltin {
		out.ChallengeID = w.ChallengeID
		out.Digits = w.Digits
		// Both are our own encodings of bytes we drew; html/template only
		// lets data: URLs through when told so.
		out.ImageURL = template.URL(dataURL("image/png", w.PNG))
		out.AudioURL = template.URL(dataURL("audio/wav", w.WAV))
		return out
	}
	out.ScriptURL, out.SiteKey = w.ScriptURL, w.SiteKey
	switch w.Provider {
	case policies.CaptchaRecaptchaV2:
		out.Class = "g-recaptcha"
	case policies.CaptchaRecaptchaV3:
		out.Invisible, out.Action = true, w.Page
	case policies.CaptchaHCaptcha:
		out.Class = "h-captcha"
	case policies.CaptchaTurnstile:
		out.Class, out.Action = "cf-turnstile", w.Page
	}
	return out
}

// Verify judges the answer in form (the posted fields of the page) for page
// under p: true lets the attempt through; false, for a missing, wrong,
// expired or replayed answer, refuses it. A built-in challenge is used up
// by any answer. remoteIP (the client's address, "" if unknown) is passed
// to the provider. err (wrapping ErrUnavailable) means the answer could
// not be judged.
func (s *Service) Verify(ctx context.Context, p policies.Captcha, page string, form url.Values, remoteIP string) (bool, error) {
	switch p.Provider {
	case policies.CaptchaBuiltin:
		return s.verifyBuiltin(ctx, form.Get(FieldChallengeID), form.Get(FieldAnswer))
	case policies.CaptchaRecaptchaV2, policies.CaptchaRecaptchaV3:
		return s.verifyProvider(ctx, p, page, form.Get(FieldRecaptcha), remoteIP)
	case policies.CaptchaHCaptcha:
		return s.verifyProvider(ctx, p, page, form.Get(FieldHCaptcha), remoteIP)
	case policies.CaptchaTurnstile:
		return s.verifyProvider(ctx, p, page, form.Get(FieldTurnstile), remoteIP)
	}
	return false, fmt.Errorf("%w: captcha.provider %q is unknown", ErrUnavailable, p.Provider)
}
