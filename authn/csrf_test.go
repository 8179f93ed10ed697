package authn

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCSRFToken(t *testing.T) {
	tests := []struct {
		name       string
		secure     bool
		wantCookie string
	}{
		{"insecure", false, "portcullis_csrf"},
		{"secure", true, "__Host-portcullis_csrf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCSRF(t, []byte("0123456789abcdef0123456789abcdef"), tt.secure, "https://id.example")
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/login", nil)
			tok := c.Token(rec, req)
			if again := c.Token(rec, req); again != tok {
				t.Errorf("second Token on one response = %q, want %q", again, tok)
			}
			if n := len(rec.Header().Values("Set-Cookie")); n != 1 {
				t.Errorf("%d Set-Cookie headers, want 1", n)
			}
			ck := responseCookie(rec, tt.wantCookie)
			if ck == nil {
				t.Fatalf("no %s cookie: %v", tt.wantCookie, rec.Header()["Set-Cookie"])
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure != tt.secure || ck.Domain != "" {
				t.Errorf("cookie attributes: %s", ck)
			}
			if !validSecret(ck.Value) || tok == ck.Value {
				t.Errorf("cookie %q / token %q", ck.Value, tok)
			}

			// A browser holding the cookie keeps it and gets the same token.
			rec2 := httptest.NewRecorder()
			req2 := httptest.NewRequest(http.MethodGet, "/login", nil)
			req2.AddCookie(ck)
			if got := c.Token(rec2, req2); got != tok {
				t.Errorf("Token with cookie = %q, want %q", got, tok)
			}
			if sc := rec2.Header().Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("cookie re-set: %v", sc)
			}

			// A malformed cookie is replaced.
			rec3 := httptest.NewRecorder()
			req3 := httptest.NewRequest(http.MethodGet, "/login", nil)
			req3.AddCookie(&http.Cookie{Name: tt.wantCookie, Value: "short"})
			c.Token(rec3, req3)
			if nc := responseCookie(rec3, tt.wantCookie); nc == nil || !validSecret(nc.Value) {
				t.Errorf("malformed cookie not replaced: %v", rec3.Header()["Set-Cookie"])
			}
		})
	}
}

func TestCSRFVerify(t *testing.T) {
	const origin = "https://id.example"
	key := []byte("0123456789abcdef0123456789abcdef")
	c := mustCSRF(t, key, true, origin+"/")
	rec := httptest.NewRecorder()
	tok := c.Token(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	ck := responseCookie(rec, csrfCookieSecure)

	other := httptest.NewRecorder()
	otherTok := c.Token(other, httptest.NewRequest(http.MethodGet, "/login", nil))
	otherKey := mustCSRF(t, []byte("another key, another key, anothe"), true, origin)
	otherKeyTok := otherKey.Token(httptest.NewRecorder(), withCookie(ck))

	tests := []struct {
		name   string
		cookie *http.Cookie
		token  string
		query  string
		origin string
		site   string // Sec-Fetch-Site
		want   bool
	}{
		{name: "valid", cookie: ck, token: tok, want: true},
		{name: "valid with same origin", cookie: ck, token: tok, origin: origin, want: true},
		{name: "foreign origin", cookie: ck, token: tok, origin: "https://evil.example"},
		{name: "opaque origin, no fetch metadata", cookie: ck, token: tok, origin: "null"},
		// Chromium under a strict referrer policy: Origin is opaque but
		// fetch metadata says the page was ours.
		{name: "opaque origin, same-origin fetch", cookie: ck, token: tok, origin: "null", site: "same-origin", want: true},
		{name: "typed into the address bar", cookie: ck, token: tok, site: "none", want: true},
		{name: "cross-site fetch", cookie: ck, token: tok, site: "cross-site"},
		{name: "same-site fetch from a sibling host", cookie: ck, token: tok, origin: "https://app.id.example", site: "same-site"},
		{name: "origin on another port", cookie: ck, token: tok, origin: origin + ":8443"},
		{name: "no token", cookie: ck},
		{name: "no cookie", token: tok},
		{name: "token of another cookie", cookie: ck, token: otherTok},
		{name: "token under another key", cookie: ck, token: otherKeyTok},
		{name: "cookie value as token", cookie: ck, token: ck.Value},
		{name: "token in query only", cookie: ck, query: tok},
		{name: "cookie under insecure name", cookie: &http.Cookie{Name: csrfCookieInsecure, Value: ck.Value}, token: tok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{}
			if tt.token != "" {
				form.Set(CSRFField, tt.token)
			}
			target := "/login"
			if tt.query != "" {
				target += "?" + url.Values{CSRFField: {tt.query}}.Encode()
			}
			req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.cookie != nil {
				req.AddCookie(tt.cookie)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.site != "" {
				req.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if got := c.Verify(req); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func mustCSRF(t testing.TB, key []byte, secure bool, origin string) *CSRF {
	t.Helper()
	c, err := NewCSRF(key, secure, origin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func withCookie(ck *http.Cookie) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/login", nil)
	req.AddCookie(ck)
	return req
}
