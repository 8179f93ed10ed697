package authn

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A form token is bound to the browser's session (or, before sign-in, its
// login flow): a cookie and token pair that an attacker obtained for
// their own browser and planted in the victim's does not verify there.
func TestCSRFTokenIsBoundToSessionOrFlow(t *testing.T) {
	c, err := NewCSRF([]byte("0123456789abcdef0123456789abcdef"), false, "https://id.example", "sess", "flow")
	if err != nil {
		t.Fatal(err)
	}
	// issue returns the CSRF cookie and token a page would carry for a
	// browser holding cookies.
	issue := func(cookies ...*http.Cookie) (*http.Cookie, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/login", nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		tok := c.Token(rec, req)
		return responseCookie(rec, csrfCookieInsecure), tok
	}
	post := func(csrfCk *http.Cookie, tok string, cookies ...*http.Cookie) bool {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{CSRFField: {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.AddCookie(csrfCk)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		return c.Verify(req)
	}
	victim := &http.Cookie{Name: "sess", Value: "victim-session"}
	attacker := &http.Cookie{Name: "sess", Value: "attacker-session"}
	flowA := &http.Cookie{Name: "flow", Value: "flow-a"}
	flowB := &http.Cookie{Name: "flow", Value: "flow-b"}

	vCk, vTok := issue(victim)
	aCk, aTok := issue(attacker)
	nCk, nTok := issue()
	fCk, fTok := issue(flowA)
	for _, tc := range []struct {
		name    string
		ck      *http.Cookie
		tok     string
		cookies []*http.Cookie
		want    bool
	}{
		{"own session", vCk, vTok, []*http.Cookie{victim}, true},
		{"attacker's pair in the victim's session", aCk, aTok, []*http.Cookie{victim}, false},
		{"unbound pair once the victim has a session", nCk, nTok, []*http.Cookie{victim}, false},
		{"the session outranks the flow", vCk, vTok, []*http.Cookie{victim, flowA}, true},
		{"own login flow", fCk, fTok, []*http.Cookie{flowA}, true},
		{"another browser's flow", fCk, fTok, []*http.Cookie{flowB}, false},
		{"flow token after signing in", fCk, fTok, []*http.Cookie{flowA, victim}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := post(tc.ck, tc.tok, tc.cookies...); got != tc.want {
				t.Errorf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}
