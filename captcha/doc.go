// Package captcha owns the captcha a page shows before a credential is
// checked: the built-in one (digits in a picture, with a recording of them
// to listen to instead) and the third-party providers reCAPTCHA v2 and v3,
// hCaptcha and Cloudflare Turnstile. The captcha policy
// (policies.Captcha) says which, on which pages and when; this package
// draws the widget a page embeds (Service.Widget) and judges the answer
// the form posts back (Service.Verify).
//
// The built-in captcha keeps nothing in memory: a challenge is a database
// row holding a keyed hash of its digits, so that any instance can check an
// answer to a picture another drew, and the row is deleted by the one
// request that redeems it, right or wrong. The picture and the recording
// travel inside the page as data: URLs (see Service.Widget for why), so
// the package serves no route.
//
// A third-party answer is checked by one form POST to the provider's
// verify endpoint; an unreachable or misconfigured provider is an error
// (ErrUnavailable), which the caller answers with 503, never a pass.
//
// It imports storage (the challenges and storage.DeriveKey), policies and
// templates (the widget's page data); authn and server import it.
package captcha
