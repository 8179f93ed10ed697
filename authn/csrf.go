package authn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// CSRFField is the form field that carries the CSRF token.
const CSRFField = "csrf_token"

const (
	csrfCookieSecure   = "__Host-portcullis_csrf"
	csrfCookieInsecure = "portcullis_csrf"
	csrfSecretLen      = 32
)

// CSRF protects the HTML forms with a signed double-submit token: a random
// cookie, and in the form the HMAC of that cookie under a server key. An
// attacker who can plant a cookie (from a sibling subdomain, say) still
// cannot compute the matching form value without the key.
//
// Where a request comes from is judged by the standard library's
// cross-origin protection (Sec-Fetch-Site, then Origin against Host), not by
// comparing Origin with the issuer: browsers send "Origin: null" on
// same-origin posts under some referrer policies and privacy settings, while
// Sec-Fetch-Site says plainly whether the page was ours.
type CSRF struct {
	key    []byte
	secure bool
	cop    *http.CrossOriginProtection
	// bindTo are the cookies (the browser session's, then the login
	// flow's) a token is bound to: the first the browser holds is signed
	// into the token, so a cookie and token pair planted from a sibling
	// site does not verify for the victim, whose session or flow the
	// attacker cannot know.
	bindTo []string
}

// NewCSRF returns a CSRF guard. key should be at least 32 random bytes derived
// from the system secret, so tokens stay valid across instances and restarts.
// origin is the issuer's scheme://host[:port]; secure selects the __Host-
// cookie and the Secure attribute, and must be true whenever the issuer is
// served over HTTPS.
// bindTo names the cookies a token is bound to, most specific first (the
// session cookie, then the login flow's).
// The issuer's origin is trusted explicitly so that a reverse proxy which
// rewrites Host does not turn every form post into a cross-origin one.
func NewCSRF(key []byte, secure bool, origin string, bindTo ...string) (*CSRF, error) {
	cop := http.NewCrossOriginProtection()
	if err := cop.AddTrustedOrigin(strings.TrimSuffix(origin, "/")); err != nil {
		return nil, fmt.Errorf("csrf: issuer origin: %w", err)
	}
	return &CSRF{
		key:    append([]byte(nil), key...),
		secure: secure,
		cop:    cop,
		bindTo: append([]string(nil), bindTo...),
	}, nil
}

func (c *CSRF) cookieName() string {
	if c.secure {
		return csrfCookieSecure
	}
	return csrfCookieInsecure
}

// Token returns the token to embed in a form as CSRFField, setting the CSRF
// cookie when the browser does not already hold a well-formed one. Calling it
// more than once for one response returns the same token.
func (c *CSRF) Token(w http.ResponseWriter, r *http.Request) string {
	binding := c.binding(w, r)
	if v, ok := pendingCookie(w, c.cookieName()); ok && validSecret(v) {
		return c.sign(v, binding)
	}
	if ck, err := r.Cookie(c.cookieName()); err == nil && validSecret(ck.Value) {
		return c.sign(ck.Value, binding)
	}
	v := randomSecret()
	http.SetCookie(w, &http.Cookie{
		Name:     c.cookieName(),
		Value:    v,
		Path:     "/",
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteLaxMode,
	})
	return c.sign(v, binding)
}

// pendingCookie finds a cookie already set on this response, so a handler
// that asks for a token twice does not hand out two that cannot both
// verify, and a token made in the response that starts a session or flow
// is bound to it.
func pendingCookie(w http.ResponseWriter, name string) (string, bool) {
	for _, line := range w.Header().Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err == nil && ck.Name == name && ck.Value != "" && ck.MaxAge >= 0 {
			return ck.Value, true
		}
	}
	return "", false
}

// binding is the value of the first of bindTo the browser holds (or is
// being given), "" when none.
func (c *CSRF) binding(w http.ResponseWriter, r *http.Request) string {
	for _, name := range c.bindTo {
		if w != nil {
			if v, ok := pendingCookie(w, name); ok {
				return v
			}
		}
		if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}

// Verify reports whether a form submission comes from one of our own pages
// (by Sec-Fetch-Site or Origin, see http.CrossOriginProtection) and carries
// a token matching its CSRF cookie. Only the request body is read for the token: a token in a
// URL would leak through logs and history. The caller must have bounded the
// body (http.MaxBytesReader) before calling.
func (c *CSRF) Verify(r *http.Request) bool {
	if c.cop.Check(r) != nil {
		return false
	}
	ck, err := r.Cookie(c.cookieName())
	if err != nil || !validSecret(ck.Value) {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(r.PostFormValue(CSRFField))
	if err != nil {
		return false
	}
	return hmac.Equal(got, c.mac(ck.Value, c.binding(nil, r)))
}

func (c *CSRF) mac(secret, binding string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(secret))
	m.Write([]byte{0})
	m.Write([]byte(binding))
	return m.Sum(nil)
}

func (c *CSRF) sign(secret, binding string) string {
	return base64.RawURLEncoding.EncodeToString(c.mac(secret, binding))
}

// randomSecret returns 32 random bytes, base64url encoded, for cookie values.
func randomSecret() string {
	b := make([]byte, csrfSecretLen)
	// crypto/rand.Read never returns an error since Go 1.24; it crashes the
	// program rather than hand out predictable bytes.
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validSecret rejects cookie values we could not have issued, so junk is
// replaced rather than signed or looked up.
func validSecret(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == csrfSecretLen
}
