package captcha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis/portcullis/policies"
)

const (
	// maxToken bounds a posted provider token: real ones are a few kB, and
	// anything longer is not worth a request to the provider.
	maxToken = 8 << 10
	// maxVerifyResponse bounds what is read of a provider's answer.
	maxVerifyResponse = 64 << 10
)

var errNoSecret = errors.New("secrets.captcha is not set, and the third-party provider needs it")

// verifyResponse is the siteverify answer, which reCAPTCHA, hCaptcha and
// Turnstile share: success and error-codes from all, score and action from
// reCAPTCHA v3 (action from Turnstile too).
type verifyResponse struct {
	Success    bool     `json:"success"`
	Score      *float64 `json:"score"`
	Action     string   `json:"action"`
	ErrorCodes []string `json:"error-codes"`
}

// verifyProvider checks token with the provider of p: one form POST of
// secret, response and remoteip to its verify endpoint.
//
// The response's hostname is not compared with ours: every provider checks
// the site key's domains itself unless an administrator turned that off
// in its console, and our idea of our host name (behind proxies, with the
// providers' test keys) would be wrong more often than the check helps.
func (s *Service) verifyProvider(ctx context.Context, p policies.Captcha, page, token, remoteIP string) (bool, error) {
	if token == "" || len(token) > maxToken {
		// Nothing a provider could accept: the widget did not run, or the
		// form was not sent by it.
		return false, nil
	}
	if s.secret == "" {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, errNoSecret)
	}
	endpoint := p.VerifyEndpoint()
	form := url.Values{"secret": {s.secret}, "response": {token}}
	if remoteIP != "" {
		form.Set("remoteip", remoteIP)
	}
	if p.Provider == policies.CaptchaHCaptcha {
		// hCaptcha then also refuses a token solved for another site key.
		form.Set("sitekey", p.SiteKey)
	}

	ctx, cancel := context.WithTimeout(ctx, s.verifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("%w: captcha.verify_url %q: %w", ErrUnavailable, endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// The secret is in the body, so the error (which names the URL)
		// may be logged.
		return false, fmt.Errorf("%w: %s at %s: %w", ErrUnavailable, p.Provider, endpoint, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxVerifyResponse)
	// Draining what is left lets the connection be reused.
	defer func() { _, _ = io.Copy(io.Discard, body) }()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%w: %s at %s answered %s", ErrUnavailable, p.Provider, endpoint, resp.Status)
	}
	var vr verifyResponse
	if err := json.NewDecoder(body).Decode(&vr); err != nil {
		return false, fmt.Errorf("%w: %s at %s: unreadable answer: %w", ErrUnavailable, p.Provider, endpoint, err)
	}

	if !vr.Success {
		for _, code := range vr.ErrorCodes {
			if blamesUs(code) {
				return false, fmt.Errorf("%w: %s at %s refused our request (%s): check secrets.captcha and captcha.site_key",
					ErrUnavailable, p.Provider, endpoint, strings.Join(vr.ErrorCodes, ", "))
			}
		}
		return false, nil
	}
	switch p.Provider {
	case policies.CaptchaRecaptchaV3:
		if vr.Score == nil {
			return false, fmt.Errorf("%w: %s at %s answered without a score: is captcha.site_key a reCAPTCHA v3 key?",
				ErrUnavailable, p.Provider, endpoint)
		}
		// A token earned on another page of the site (its action) is
		// worth nothing here: scores are judged per action.
		return *vr.Score >= p.MinScore && vr.Action == page, nil
	case policies.CaptchaTurnstile:
		return vr.Action == "" || vr.Action == page, nil
	}
	return true, nil
}

// blamesUs reports whether a siteverify error code is about our request
// (the secret, the site key, the request's form) rather than the person's
// answer: those are an operator's to fix, and refusing the person for them
// would lock everyone out without a word in the log.
func blamesUs(code string) bool {
	switch code {
	case "missing-input-secret", "invalid-input-secret", // all three
		"bad-request",                                // reCAPTCHA, hCaptcha, Turnstile
		"internal-error",                             // Turnstile
		"sitekey-secret-mismatch", "invalid-sitekey", // hCaptcha
		"missing-remoteip", "invalid-remoteip", "not-using-dummy-passcode": // hCaptcha
		return true
	}
	return false
}
