package authn

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

const (
	loginPassword = "correct horse battery"
	loginOrigin   = "https://id.example"
)

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

type loginEnv struct {
	*sessionEnv
	alice      *storage.User
	pipeline   *Pipeline
	csrf       *CSRF
	pages      *templates.Renderer
	handler    http.Handler
	csrfCookie string
	sessCookie string
}

func newLoginEnv(t *testing.T, secure bool) *loginEnv {
	t.Helper()
	return newLoginEnvWith(t, secure, cookieFor(time.Hour))
}

// newLoginEnvWith is newLoginEnv under a session policy made by edit.
func newLoginEnvWith(t *testing.T, secure bool, edit func(*policies.Session)) *loginEnv {
	t.Helper()
	r, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	env := &loginEnv{pages: r, csrfCookie: csrfCookieInsecure, sessCookie: "portcullis_session"}
	if secure {
		env.csrfCookie, env.sessCookie = csrfCookieSecure, "__Host-portcullis_session"
	}
	env.sessionEnv = newSessionEnv(t, SessionConfig{CookieName: env.sessCookie, Secure: secure}, edit)
	env.alice = addUser(t, env.st, cheapArgon2, "alice", loginPassword, false)
	addUser(t, env.st, cheapArgon2, "bob", loginPassword, true)
	logger := slog.New(slog.DiscardHandler)
	env.csrf = mustCSRF(t, []byte("0123456789abcdef0123456789abcdef"), secure, loginOrigin)
	env.pipeline = NewPipeline(env.st, cheapArgon2, logger, env.recorder)
	env.handler = NewLoginHandler(env.pipeline, env.sessions, env.csrf, r, nil, logger)
	return env
}

// form loads the login page and returns its CSRF cookie and the form's token.
func (e *loginEnv) form(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /login = %d", rec.Code)
	}
	ck := responseCookie(rec, e.csrfCookie)
	m := csrfInput.FindStringSubmatch(rec.Body.String())
	if ck == nil || m == nil {
		t.Fatalf("login page lacks CSRF cookie or token")
	}
	return ck, m[1]
}

func (e *loginEnv) post(form url.Values, hdr http.Header, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header[k] = v
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func loginForm(username, password, returnTo, token string) url.Values {
	v := url.Values{"username": {username}, "password": {password}, "return_to": {returnTo}}
	if token != "" {
		v.Set(CSRFField, token)
	}
	return v
}

func TestLoginSuccess(t *testing.T) {
	tests := []struct {
		name     string
		secure   bool
		returnTo string
		want     string
	}{
		{"insecure, authorize request", false, "/oauth2/auth?client_id=app&state=x%20y", "/oauth2/auth?client_id=app&state=x%20y"},
		{"secure, authorize request", true, "/oauth2/auth?client_id=app", "/oauth2/auth?client_id=app"},
		{"no return_to", false, "", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoginEnv(t, tt.secure)
			ck, tok := e.form(t)
			rec := e.post(loginForm("Alice", loginPassword, tt.returnTo, tok), http.Header{"Origin": {loginOrigin}}, ck)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303; body:\n%s", rec.Code, rec.Body)
			}
			if got := rec.Header().Get("Location"); got != tt.want {
				t.Errorf("Location = %q, want %q", got, tt.want)
			}
			sc := responseCookie(rec, e.sessCookie)
			if sc == nil {
				t.Fatalf("no session cookie: %v", rec.Header()["Set-Cookie"])
			}
			if !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure != tt.secure || sc.Path != "/" {
				t.Errorf("session cookie attributes: %s", sc)
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.AddCookie(sc)
			if id, err := e.sessions.Current(req); err != nil || id == nil || id.User.Username != "alice" {
				t.Errorf("Current = %+v, %v; want alice", id, err)
			}
		})
	}
}

// appsByReturnTo is an AppFinder that knows the application of a fixed
// set of return paths.
type appsByReturnTo map[string]templates.App

func (m appsByReturnTo) AppForReturnTo(_ context.Context, returnTo string) (*templates.App, bool) {
	a, ok := m[returnTo]
	if !ok {
		return nil, false
	}
	return &a, true
}

func TestLoginNamesTheApplication(t *testing.T) {
	const authReq = "/oauth2/auth?client_id=notes"
	apps := appsByReturnTo{
		authReq: {Name: "Notes & Co", LogoURI: "https://notes.example/logo.png", PolicyURI: "https://notes.example/privacy"},
		// Known to the finder, but not a safe return path: the handler
		// must never ask about it.
		"//evil.example/": {Name: "Evil"},
	}
	tests := []struct {
		name     string
		finder   AppFinder
		method   string
		returnTo string
		want     []string
		absent   []string
	}{
		{
			name: "known application", finder: apps, method: http.MethodGet, returnTo: authReq,
			want: []string{
				`<h1>Sign in to continue to Notes &amp; Co</h1>`,
				`src="https://notes.example/logo.png" alt=""`,
				`href="https://notes.example/privacy" rel="noopener noreferrer">Privacy policy`,
			},
			absent: []string{`Terms of service`},
		},
		{
			name: "still named after a wrong password", finder: apps, method: http.MethodPost, returnTo: authReq,
			want: []string{`Sign in to continue to Notes &amp; Co`, loginFailedMessage},
		},
		{
			name: "unknown return path", finder: apps, method: http.MethodGet, returnTo: "/account/password",
			want:   []string{`<h1>Sign in</h1>`},
			absent: []string{`continue to`, `class="app-logo"`},
		},
		{
			name: "unsafe return path is not looked up", finder: apps, method: http.MethodGet, returnTo: "//evil.example/",
			want:   []string{`<h1>Sign in</h1>`},
			absent: []string{`Evil`},
		},
		{
			name: "no finder", finder: nil, method: http.MethodGet, returnTo: authReq,
			want:   []string{`<h1>Sign in</h1>`},
			absent: []string{`continue to`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoginEnv(t, false)
			e.handler = NewLoginHandler(e.pipeline, e.sessions, e.csrf, e.pages, tt.finder, slog.New(slog.DiscardHandler))
			var rec *httptest.ResponseRecorder
			if tt.method == http.MethodPost {
				ck, tok := e.form(t)
				rec = e.post(loginForm("alice", "wrong password", tt.returnTo, tok), nil, ck)
			} else {
				rec = httptest.NewRecorder()
				e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login?"+url.Values{"return_to": {tt.returnTo}}.Encode(), nil))
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			body := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q:\n%s", w, body)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(body, a) {
					t.Errorf("page contains %q:\n%s", a, body)
				}
			}
		})
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	e := newLoginEnv(t, false)
	ck, tok := e.form(t)
	tests := []struct {
		name     string
		username string
		password string
	}{
		{"wrong password", "alice", "wrong password"},
		{"unknown user", "nobody", loginPassword},
		{"disabled user", "bob", loginPassword},
	}
	var first string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.post(loginForm(tt.username, tt.password, "/oauth2/auth?client_id=app", tok), nil, ck)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			if sc := rec.Header().Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("failed login set cookies: %v", sc)
			}
			body := rec.Body.String()
			for _, want := range []string{
				"Invalid username or password.",
				`value="` + tt.username + `"`,
				`name="return_to" value="/oauth2/auth?client_id=app"`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			// Apart from the echoed username and the CSRF token, every
			// failure must produce the same bytes.
			norm := strings.ReplaceAll(body, `value="`+tt.username+`"`, `value="USERNAME"`)
			norm = csrfInput.ReplaceAllString(norm, `name="csrf_token" value="TOKEN"`)
			if first == "" {
				first = norm
			} else if norm != first {
				t.Errorf("page differs from the first failure:\n%s\n---\n%s", norm, first)
			}
		})
	}
	if n := e.st.creates.Load(); n != 0 {
		t.Errorf("%d sessions created by failed logins", n)
	}
}

func TestLoginCSRF(t *testing.T) {
	e := newLoginEnv(t, true)
	ck, tok := e.form(t)
	otherCk, _ := e.form(t)
	tests := []struct {
		name    string
		token   string
		cookies []*http.Cookie
		origin  string
	}{
		{name: "no token", cookies: []*http.Cookie{ck}},
		{name: "wrong token", token: strings.Repeat("A", 43), cookies: []*http.Cookie{ck}},
		{name: "no cookie", token: tok},
		{name: "token for another browser", token: tok, cookies: []*http.Cookie{otherCk}},
		{name: "cross-origin post", token: tok, cookies: []*http.Cookie{ck}, origin: "https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			// The right password: only the CSRF check stands in the way.
			rec := e.post(loginForm("alice", loginPassword, "/", tt.token), hdr, tt.cookies...)
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status = %d, want 403", rec.Code)
			}
			if !strings.Contains(rec.Body.String(), "<h1>Form expired</h1>") {
				t.Errorf("not the error page:\n%s", rec.Body)
			}
			if sc := responseCookie(rec, e.sessCookie); sc != nil {
				t.Errorf("session cookie set: %s", sc)
			}
		})
	}
	if n := e.st.creates.Load(); n != 0 {
		t.Errorf("%d sessions created despite CSRF failures", n)
	}
}

func TestLoginOpenRedirect(t *testing.T) {
	e := newLoginEnv(t, false)
	ck, tok := e.form(t)
	tests := []struct {
		returnTo string
		want     string
	}{
		{"//evil.example", "/"},
		{"https://evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/\t/evil.example", "/"},
		{"/ok?next=//evil.example", "/ok?next=//evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.returnTo, func(t *testing.T) {
			rec := e.post(loginForm("alice", loginPassword, tt.returnTo, tok), nil, ck)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303", rec.Code)
			}
			if got := rec.Header().Get("Location"); got != tt.want {
				t.Errorf("Location = %q, want %q", got, tt.want)
			}

			// The GET form must not carry the bad value either.
			get := httptest.NewRecorder()
			e.handler.ServeHTTP(get, httptest.NewRequest(http.MethodGet, "/login?"+url.Values{"return_to": {tt.returnTo}}.Encode(), nil))
			want := `name="return_to" value="` + tt.want + `"`
			if !strings.Contains(get.Body.String(), want) {
				t.Errorf("GET form lacks %s", want)
			}
		})
	}
}

func TestSafeReturnTo(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "/"},
		{"/", "/"},
		{"/consent?x=1#frag", "/consent?x=1#frag"},
		{"/oauth2/auth?redirect_uri=https%3A%2F%2Fapp.example%2Fcb", "/oauth2/auth?redirect_uri=https%3A%2F%2Fapp.example%2Fcb"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"/a\\b", "/"},
		{"https://evil.example/", "/"},
		{"HTTPS://evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{" /x", "/"},
		{"/x y", "/"},
		{"/\n/evil.example", "/"},
		{"/\x00", "/"},
		{"/\x7f", "/"},
		{"/é", "/"},
		{"/%zz", "/"},
		{"/" + strings.Repeat("a", maxReturnTo), "/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := safeReturnTo(tt.in); got != tt.want {
				t.Errorf("safeReturnTo(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLoginReplacesExistingSession(t *testing.T) {
	e := newLoginEnv(t, false)
	ck, tok := e.form(t)
	first := responseCookie(e.post(loginForm("alice", loginPassword, "/", tok), nil, ck), e.sessCookie)
	if first == nil {
		t.Fatal("first login set no session cookie")
	}
	second := responseCookie(e.post(loginForm("alice", loginPassword, "/", tok), nil, ck, first), e.sessCookie)
	if second == nil || second.Value == first.Value {
		t.Fatalf("second login kept the session id")
	}
	tests := []struct {
		name   string
		cookie *http.Cookie
		alive  bool
	}{
		{"old id", first, false},
		{"new id", second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.AddCookie(tt.cookie)
			id, err := e.sessions.Current(req)
			if err != nil {
				t.Fatal(err)
			}
			if (id != nil) != tt.alive {
				t.Errorf("Current = %+v, want alive %v", id, tt.alive)
			}
		})
	}
}

func TestLoginRequests(t *testing.T) {
	e := newLoginEnv(t, false)
	tests := []struct {
		name       string
		method     string
		body       string
		wantStatus int
		wantAllow  string
	}{
		{"GET", http.MethodGet, "", http.StatusOK, ""},
		{"HEAD", http.MethodHead, "", http.StatusOK, ""},
		{"PUT", http.MethodPut, "", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{"DELETE", http.MethodDelete, "", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{"oversized body", http.MethodPost, "username=" + strings.Repeat("a", maxLoginBody), http.StatusRequestEntityTooLarge, ""},
		{"malformed body", http.MethodPost, "username=%zz", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/login", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
		})
	}
}

func TestLoginTooManySessions(t *testing.T) {
	e := newLoginEnvWith(t, false, func(p *policies.Session) {
		p.MaxConcurrent, p.OnLimit = 1, policies.OnLimitReject
	})
	ck, tok := e.form(t)
	first := e.post(loginForm("alice", loginPassword, "/", tok), nil, ck)
	if first.Code != http.StatusSeeOther {
		t.Fatalf("first sign-in: status = %d", first.Code)
	}
	tests := []struct {
		name     string
		password string
		want     string
	}{
		// Only the right password learns about the limit.
		{"wrong password", "wrong password", loginFailedMessage},
		{"right password", loginPassword, tooManySessionsMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Another browser: its own CSRF cookie, no session.
			ck, tok := e.form(t)
			rec := e.post(loginForm("alice", tt.password, "/", tok), nil, ck)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			if !strings.Contains(rec.Body.String(), tt.want) {
				t.Errorf("page lacks %q:\n%s", tt.want, rec.Body)
			}
			if sc := responseCookie(rec, e.sessCookie); sc != nil {
				t.Errorf("refused sign-in set a session cookie: %s", sc)
			}
		})
	}
	if n := e.st.creates.Load(); n != 1 {
		t.Errorf("%d sessions created, want 1", n)
	}
}
