package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

const (
	loginPassword = "correct horse battery"
	loginOrigin   = "https://id.example"
	// The headings of the page a flow that cannot go on gets.
	flowExpiredTitle = "<h1>This sign-in page has expired</h1>"
	flowUsedTitle    = "<h1>This sign-in is already complete</h1>"
)

var (
	csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	flowInput = regexp.MustCompile(`name="flow" value="([^"]*)"`)
)

type loginEnv struct {
	*sessionEnv
	alice      *storage.User
	pipeline   *Pipeline
	flows      *Flows
	csrf       *CSRF
	pages      *templates.Renderer
	handler    http.Handler
	csrfCookie string
	sessCookie string
	flowCookie string
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
	// The flow cookie's names are spelled out rather than taken from the
	// package, so that renaming them (which signs out every browser in the
	// middle of a sign-in) shows up here.
	env := &loginEnv{pages: r, csrfCookie: csrfCookieInsecure, sessCookie: "portcullis_session", flowCookie: "portcullis_flow"}
	if secure {
		env.csrfCookie, env.sessCookie, env.flowCookie = csrfCookieSecure, "__Host-portcullis_session", "__Host-portcullis_flow"
	}
	env.sessionEnv = newSessionEnv(t, SessionConfig{CookieName: env.sessCookie, Secure: secure}, edit)
	env.alice = addUser(t, env.st, cheapArgon2, "alice", loginPassword, false)
	addUser(t, env.st, cheapArgon2, "bob", loginPassword, true)
	logger := slog.New(slog.DiscardHandler)
	env.csrf = mustCSRF(t, []byte("0123456789abcdef0123456789abcdef"), secure, loginOrigin)
	env.pipeline = NewPipeline(env.st, cheapArgon2, logger, env.recorder)
	env.flows = NewFlows(env.st, secure, env.clock.Now)
	env.handler = NewLoginHandler(env.pipeline, env.sessions, env.flows, env.csrf, r, nil, logger)
	return env
}

// loginPage is what a browser holds once it has opened a login form. The
// two cookies are kept apart so that a test can send one browser's CSRF
// cookie with another browser's flow cookie.
type loginPage struct {
	csrf  *http.Cookie
	flow  *http.Cookie
	token string // the form's CSRF token
	id    string // the flow the form signs in to
	body  string
}

// cookies returns the page's cookies, those set to nil left out, then more.
func (p loginPage) cookies(more ...*http.Cookie) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range append([]*http.Cookie{p.csrf, p.flow}, more...) {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// form opens the login form the way a browser does: GET
// /login?return_to=… starts a flow and redirects to its page. cookies are
// what the browser already holds; none means a fresh browser.
func (e *loginEnv) form(t *testing.T, returnTo string, cookies ...*http.Cookie) loginPage {
	t.Helper()
	rec := e.get("/login?"+url.Values{"return_to": {returnTo}}.Encode(), cookies...)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("GET /login?return_to=%s = %d, want 303", returnTo, rec.Code)
	}
	return e.open(t, rec, rec.Header().Get("Location"), cookies)
}

// formFor opens the login form of a flow an entry point started, as the
// authorization endpoint does.
func (e *loginEnv) formFor(t *testing.T, spec FlowSpec, cookies ...*http.Cookie) loginPage {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/oauth2/auth", nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	loginURL, err := e.flows.Start(req.Context(), rec, req, spec)
	if err != nil {
		t.Fatal(err)
	}
	return e.open(t, rec, loginURL, cookies)
}

// open follows loginURL, which the response started set, to the form.
func (e *loginEnv) open(t *testing.T, started *httptest.ResponseRecorder, loginURL string, cookies []*http.Cookie) loginPage {
	t.Helper()
	u, err := url.Parse(loginURL)
	if err != nil || u.Path != "/login" || len(u.Query()) != 1 || u.Query().Get("flow") == "" {
		t.Fatalf("login URL %q is not /login?flow=ID", loginURL)
	}
	id := u.Query().Get("flow")
	// A browser that is already bound keeps its cookie; a fresh one gets
	// it from the response that started the flow.
	flowCk := responseCookie(started, e.flowCookie)
	if flowCk != nil {
		cookies = replaceCookie(cookies, flowCk)
	} else if flowCk = findCookie(cookies, e.flowCookie); flowCk == nil {
		t.Fatalf("starting a flow set no %s cookie: %v", e.flowCookie, started.Header()["Set-Cookie"])
	}
	rec := e.get(loginURL, cookies...)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200:\n%s", loginURL, rec.Code, rec.Body)
	}
	body := rec.Body.String()
	tok, fl := csrfInput.FindStringSubmatch(body), flowInput.FindStringSubmatch(body)
	if tok == nil || fl == nil || fl[1] != id {
		t.Fatalf("login page lacks the CSRF token or flow %s:\n%s", id, body)
	}
	csrfCk := responseCookie(rec, e.csrfCookie)
	if csrfCk == nil {
		csrfCk = findCookie(cookies, e.csrfCookie)
	}
	if csrfCk == nil {
		t.Fatalf("login page set no CSRF cookie")
	}
	return loginPage{csrf: csrfCk, flow: flowCk, token: tok[1], id: id, body: body}
}

// pending is Flows.Pending for the flow of p, asked by the browser holding
// p's flow cookie.
func (e *loginEnv) pending(p loginPage) error {
	req := httptest.NewRequest(http.MethodGet, "/login", nil)
	req.AddCookie(p.flow)
	_, err := e.flows.Pending(req, p.id)
	return err
}

func findCookie(cookies []*http.Cookie, name string) *http.Cookie {
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// replaceCookie is cookies with c in place of any cookie of the same name.
func replaceCookie(cookies []*http.Cookie, c *http.Cookie) []*http.Cookie {
	out := slices.DeleteFunc(slices.Clone(cookies), func(o *http.Cookie) bool { return o.Name == c.Name })
	return append(out, c)
}

func (e *loginEnv) get(target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
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

// loginForm is the login form as posted; an empty flow or token is left
// out, as a forged form would.
func loginForm(username, password, flow, token string) url.Values {
	v := url.Values{"username": {username}, "password": {password}}
	if flow != "" {
		v.Set("flow", flow)
	}
	if token != "" {
		v.Set(CSRFField, token)
	}
	return v
}

func TestLoginSuccess(t *testing.T) {
	authReq := url.Values{"client_id": {"app"}, "state": {"x y"}, "scope": {"openid"}}
	tests := []struct {
		name   string
		secure bool
		// spec, when set, is the flow an entry point starts; otherwise
		// the browser opens /login?return_to=returnTo.
		spec     *FlowSpec
		returnTo string
		// wait passes between opening the form and posting it.
		wait time.Duration
		// resume: the browser goes back to the authorization endpoint
		// with the flow, rather than to want.
		resume bool
		want   string
	}{
		{name: "insecure, authorization request", spec: &FlowSpec{ClientID: "app", Request: authReq}, resume: true},
		{name: "secure, authorization request", secure: true, spec: &FlowSpec{ClientID: "app", Request: authReq}, resume: true},
		{name: "flow with a return path", spec: &FlowSpec{ReturnTo: "/account/password"}, want: "/account/password"},
		{name: "return_to from the browser", returnTo: "/consent?x=1", want: "/consent?x=1"},
		{name: "no return_to", want: "/"},
		{name: "a second before the flow expires", wait: FlowTTL - time.Second, want: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoginEnv(t, tt.secure)
			var p loginPage
			if tt.spec != nil {
				p = e.formFor(t, *tt.spec)
			} else {
				p = e.form(t, tt.returnTo)
			}
			if fc := p.flow; fc.Name != e.flowCookie || !fc.HttpOnly || fc.SameSite != http.SameSiteLaxMode || fc.Secure != tt.secure || fc.Path != "/" {
				t.Errorf("flow cookie attributes: %s", fc)
			}
			e.clock.Advance(tt.wait)
			rec := e.post(loginForm("Alice", loginPassword, p.id, p.token), http.Header{"Origin": {loginOrigin}}, p.cookies()...)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303; body:\n%s", rec.Code, rec.Body)
			}
			want := tt.want
			if tt.resume {
				want = "/oauth2/auth?login_flow=" + url.QueryEscape(p.id)
			}
			if got := rec.Header().Get("Location"); got != want {
				t.Errorf("Location = %q, want %q", got, want)
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
			id, err := e.sessions.Current(req)
			if err != nil || id == nil || id.User.Username != "alice" {
				t.Fatalf("Current = %+v, %v; want alice", id, err)
			}
			// The ID token's amr and acr are read from the session.
			if !slices.Equal(id.Session.AMR, []string{AMRPassword}) || id.Session.ACR != policies.ACRPassword {
				t.Errorf("session amr %q, acr %q; want [pwd], %s", id.Session.AMR, id.Session.ACR, policies.ACRPassword)
			}
			if err := e.pending(p); !errors.Is(err, ErrFlowUsed) {
				t.Errorf("flow after sign-in: Pending = %v, want ErrFlowUsed", err)
			}
			if !tt.resume {
				return
			}
			// Where the browser is sent must hand back the request.
			back := httptest.NewRequest(http.MethodGet, want, nil)
			back.AddCookie(p.flow)
			client, got, err := e.flows.Resume(back.Context(), back, p.id)
			if err != nil || client != "app" || got.Encode() != authReq.Encode() {
				t.Errorf("Resume = %q, %v, %v; want app, %v", client, got, err, authReq)
			}
		})
	}
}

// appsByClient is an AppFinder that knows a fixed set of clients.
type appsByClient map[string]templates.App

func (m appsByClient) AppForClient(_ context.Context, clientID string) (*templates.App, bool) {
	a, ok := m[clientID]
	if !ok {
		return nil, false
	}
	return &a, true
}

func TestLoginNamesTheApplication(t *testing.T) {
	apps := appsByClient{
		"notes": {Name: "Notes & Co", LogoURI: "https://notes.example/logo.png", PolicyURI: "https://notes.example/privacy"},
		// A sign-in to Portcullis itself is for no application: the
		// handler must never ask about the empty client id.
		"": {Name: "Nobody"},
	}
	tests := []struct {
		name   string
		finder AppFinder
		client string
		// wrongPassword posts the form once before looking at the page.
		wrongPassword bool
		want          []string
		absent        []string
	}{
		{
			name: "known application", finder: apps, client: "notes",
			want: []string{
				`<h1>Sign in to continue to Notes &amp; Co</h1>`,
				`src="https://notes.example/logo.png" alt=""`,
				`href="https://notes.example/privacy" rel="noopener noreferrer">Privacy policy`,
			},
			absent: []string{`Terms of service`},
		},
		{
			name: "still named after a wrong password", finder: apps, client: "notes", wrongPassword: true,
			want: []string{`Sign in to continue to Notes &amp; Co`, loginFailedMessage},
		},
		{
			name: "unknown client", finder: apps, client: "stranger",
			want:   []string{`<h1>Sign in</h1>`},
			absent: []string{`continue to`, `class="app-logo"`},
		},
		{
			name: "no client is not looked up", finder: apps, client: "",
			want:   []string{`<h1>Sign in</h1>`},
			absent: []string{`Nobody`, `continue to`},
		},
		{
			name: "no finder", finder: nil, client: "notes",
			want:   []string{`<h1>Sign in</h1>`},
			absent: []string{`continue to`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoginEnv(t, false)
			e.handler = NewLoginHandler(e.pipeline, e.sessions, e.flows, e.csrf, e.pages, tt.finder, slog.New(slog.DiscardHandler))
			spec := FlowSpec{ClientID: tt.client}
			if tt.client != "" {
				spec.Request = url.Values{"client_id": {tt.client}}
			}
			p := e.formFor(t, spec)
			body := p.body
			if tt.wrongPassword {
				rec := e.post(loginForm("alice", "wrong password", p.id, p.token), nil, p.cookies()...)
				if rec.Code != http.StatusOK {
					t.Fatalf("status = %d, want 200", rec.Code)
				}
				body = rec.Body.String()
			}
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
	p := e.formFor(t, FlowSpec{ClientID: "app", Request: url.Values{"client_id": {"app"}}})
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
			rec := e.post(loginForm(tt.username, tt.password, p.id, p.token), nil, p.cookies()...)
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
				// The next try goes on with the same flow.
				`name="flow" value="` + p.id + `"`,
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
	// A failure does not use up the flow: the person may try again.
	if err := e.pending(p); err != nil {
		t.Errorf("flow after failures: Pending = %v, want pending", err)
	}
}

func TestLoginCSRF(t *testing.T) {
	e := newLoginEnv(t, true)
	p := e.form(t, "/")
	other := e.form(t, "/")
	tests := []struct {
		name    string
		token   string
		cookies []*http.Cookie
		origin  string
	}{
		{name: "no token", cookies: p.cookies()},
		{name: "wrong token", token: strings.Repeat("A", 43), cookies: p.cookies()},
		{name: "no cookie", token: p.token, cookies: []*http.Cookie{p.flow}},
		{name: "token for another browser", token: p.token, cookies: []*http.Cookie{other.csrf, p.flow}},
		{name: "cross-origin post", token: p.token, cookies: p.cookies(), origin: "https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			// The right password and a live flow of this browser: only
			// the CSRF check stands in the way.
			rec := e.post(loginForm("alice", loginPassword, p.id, tt.token), hdr, tt.cookies...)
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
	if err := e.pending(p); err != nil {
		t.Errorf("flow after forged posts: Pending = %v, want pending", err)
	}
}

func TestLoginOpenRedirect(t *testing.T) {
	e := newLoginEnv(t, false)
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
			p := e.form(t, tt.returnTo)
			// The flow stores the sanitized value, so nothing read from it
			// later can redirect off the site.
			fl, err := e.st.LoginFlow(t.Context(), p.id)
			if err != nil {
				t.Fatal(err)
			}
			if fl.ReturnTo != tt.want {
				t.Errorf("stored ReturnTo = %q, want %q", fl.ReturnTo, tt.want)
			}
			if strings.Contains(p.body, "evil") {
				t.Errorf("the form carries the return path:\n%s", p.body)
			}
			rec := e.post(loginForm("alice", loginPassword, p.id, p.token), nil, p.cookies()...)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303", rec.Code)
			}
			if got := rec.Header().Get("Location"); got != tt.want {
				t.Errorf("Location = %q, want %q", got, tt.want)
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
	p := e.form(t, "/")
	first := responseCookie(e.post(loginForm("alice", loginPassword, p.id, p.token), nil, p.cookies()...), e.sessCookie)
	if first == nil {
		t.Fatal("first login set no session cookie")
	}
	// The same browser, signed in, signs in again; a flow completes once,
	// so this is a new one.
	again := e.form(t, "/", p.cookies(first)...)
	if again.id == p.id {
		t.Fatal("second form reused the completed flow")
	}
	second := responseCookie(e.post(loginForm("alice", loginPassword, again.id, again.token), nil, again.cookies(first)...), e.sessCookie)
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
	p := e.form(t, "/")
	tests := []struct {
		name   string
		method string
		target string
		body   string
		// withFlow sends the cookies of the browser that opened p.
		withFlow   bool
		wantStatus int
		wantAllow  string
		// wantLocation is the Location prefix of a redirect.
		wantLocation string
	}{
		{name: "GET without a flow starts one", method: http.MethodGet, target: "/login", wantStatus: http.StatusSeeOther, wantLocation: "/login?flow="},
		{name: "GET a flow", method: http.MethodGet, target: "/login?flow=" + p.id, withFlow: true, wantStatus: http.StatusOK},
		{name: "HEAD a flow", method: http.MethodHead, target: "/login?flow=" + p.id, withFlow: true, wantStatus: http.StatusOK},
		{name: "GET a garbage flow", method: http.MethodGet, target: "/login?flow=garbage", withFlow: true, wantStatus: http.StatusBadRequest},
		{name: "PUT", method: http.MethodPut, target: "/login", wantStatus: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD, POST"},
		{name: "DELETE", method: http.MethodDelete, target: "/login", wantStatus: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD, POST"},
		{name: "oversized body", method: http.MethodPost, target: "/login", body: "username=" + strings.Repeat("a", maxLoginBody), wantStatus: http.StatusRequestEntityTooLarge},
		{name: "malformed body", method: http.MethodPost, target: "/login", body: "username=%zz", wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.withFlow {
				for _, c := range p.cookies() {
					req.AddCookie(c)
				}
			}
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantLocation != "" {
				if got := rec.Header().Get("Location"); !strings.HasPrefix(got, tt.wantLocation) {
					t.Errorf("Location = %q, want %s…", got, tt.wantLocation)
				}
				return
			}
			if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			// A form with a CSRF token must not be stored by a cache.
			if tt.wantStatus == http.StatusOK && rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", rec.Header().Get("Cache-Control"))
			}
		})
	}
}

func TestLoginTooManySessions(t *testing.T) {
	const returnTo = "/account/password"
	e := newLoginEnvWith(t, false, func(p *policies.Session) {
		p.MaxConcurrent, p.OnLimit = 1, policies.OnLimitReject
	})
	p := e.form(t, returnTo)
	first := e.post(loginForm("alice", loginPassword, p.id, p.token), nil, p.cookies()...)
	if first.Code != http.StatusSeeOther {
		t.Fatalf("first sign-in: status = %d", first.Code)
	}
	tests := []struct {
		name     string
		password string
		want     string
		// newFlow: the page offers a fresh flow, the one posted having
		// completed when the password was accepted.
		newFlow bool
	}{
		// Only the right password learns about the limit.
		{"wrong password", "wrong password", loginFailedMessage, false},
		{"right password", loginPassword, tooManySessionsMessage, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Another browser: its own cookies, no session.
			p := e.form(t, returnTo)
			rec := e.post(loginForm("alice", tt.password, p.id, p.token), nil, p.cookies()...)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			body := rec.Body.String()
			if !strings.Contains(body, tt.want) {
				t.Errorf("page lacks %q:\n%s", tt.want, body)
			}
			if sc := responseCookie(rec, e.sessCookie); sc != nil {
				t.Errorf("refused sign-in set a session cookie: %s", sc)
			}
			m := flowInput.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("page has no flow:\n%s", body)
			}
			if !tt.newFlow {
				if m[1] != p.id || e.pending(p) != nil {
					t.Errorf("form flow %s, want the same pending flow %s", m[1], p.id)
				}
				return
			}
			if m[1] == p.id {
				t.Fatal("form offers the completed flow again")
			}
			if err := e.pending(p); !errors.Is(err, ErrFlowUsed) {
				t.Errorf("posted flow: Pending = %v, want ErrFlowUsed", err)
			}
			next := p
			next.id = m[1]
			if ck := responseCookie(rec, e.flowCookie); ck != nil {
				next.flow = ck
			}
			if err := e.pending(next); err != nil {
				t.Errorf("new flow: Pending = %v, want pending for this browser", err)
			}
			// The new flow goes where the first was going.
			if fl, err := e.st.LoginFlow(t.Context(), next.id); err != nil || fl.ReturnTo != returnTo {
				t.Errorf("new flow = %+v, %v; want return to %s", fl, err, returnTo)
			}
		})
	}
	if n := e.st.creates.Load(); n != 1 {
		t.Errorf("%d sessions created, want 1", n)
	}
}

// A flow that cannot go on gets the same refusal on GET and POST, and a
// POST is refused before the password is even checked.
func TestLoginFlowRefused(t *testing.T) {
	tests := []struct {
		name string
		// tamper turns the freshly opened form p into the request under
		// test.
		tamper func(t *testing.T, e *loginEnv, p *loginPage)
		want   []string
		// ownerSignsIn: the browser that opened the flow can still use
		// it afterwards, so a refused request does not burn it.
		ownerSignsIn bool
	}{
		{
			name:   "garbage id",
			tamper: func(_ *testing.T, _ *loginEnv, p *loginPage) { p.id = "garbage" },
			want:   []string{flowExpiredTitle, "login flow unknown or expired"}, ownerSignsIn: true,
		},
		{
			name:   "unknown id",
			tamper: func(_ *testing.T, _ *loginEnv, p *loginPage) { p.id = randomSecret() },
			want:   []string{flowExpiredTitle, "login flow unknown or expired"}, ownerSignsIn: true,
		},
		{
			// FlowTTL is the boundary: the flow is gone at that instant.
			name:   "expired",
			tamper: func(_ *testing.T, e *loginEnv, _ *loginPage) { e.clock.Advance(FlowTTL) },
			want:   []string{flowExpiredTitle, "login flow unknown or expired"},
		},
		{
			name: "completed",
			tamper: func(t *testing.T, e *loginEnv, p *loginPage) {
				rec := e.post(loginForm("alice", loginPassword, p.id, p.token), nil, p.cookies()...)
				if rec.Code != http.StatusSeeOther {
					t.Fatalf("first sign-in: status = %d", rec.Code)
				}
			},
			want: []string{flowUsedTitle, "login flow already completed"},
		},
		{
			name:   "no flow cookie",
			tamper: func(_ *testing.T, _ *loginEnv, p *loginPage) { p.flow = nil },
			want:   []string{flowExpiredTitle, "opened in another browser"}, ownerSignsIn: true,
		},
		{
			// Another browser, with every cookie and token of its own,
			// submits this flow's id (leaked in a Referer or a log).
			name: "another browser's cookies",
			tamper: func(t *testing.T, e *loginEnv, p *loginPage) {
				other := e.form(t, "/")
				p.csrf, p.flow, p.token = other.csrf, other.flow, other.token
			},
			want: []string{flowExpiredTitle, "opened in another browser"}, ownerSignsIn: true,
		},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				e := newLoginEnv(t, false)
				owner := e.form(t, "/")
				p := owner
				tt.tamper(t, e, &p)
				creates := e.st.creates.Load()
				checks := len(events(t, e.recorder, audit.TypeLoginSuccess, e.alice.ID))

				var rec *httptest.ResponseRecorder
				if method == http.MethodGet {
					rec = e.get("/login?"+url.Values{"flow": {p.id}}.Encode(), p.cookies()...)
				} else {
					rec = e.post(loginForm("alice", loginPassword, p.id, p.token), nil, p.cookies()...)
				}
				if rec.Code != http.StatusBadRequest {
					t.Fatalf("status = %d, want 400:\n%s", rec.Code, rec.Body)
				}
				for _, w := range tt.want {
					if !strings.Contains(rec.Body.String(), w) {
						t.Errorf("page lacks %q:\n%s", w, rec.Body)
					}
				}
				if strings.Contains(rec.Body.String(), `name="password"`) {
					t.Error("refused flow still shows the form")
				}
				if sc := responseCookie(rec, e.sessCookie); sc != nil {
					t.Errorf("session cookie set: %s", sc)
				}
				if n := e.st.creates.Load(); n != creates {
					t.Errorf("%d sessions created", n-creates)
				}
				if n := len(events(t, e.recorder, audit.TypeLoginSuccess, e.alice.ID)); n != checks {
					t.Errorf("password checked %d times for a refused flow", n-checks)
				}
				if !tt.ownerSignsIn {
					return
				}
				ok := e.post(loginForm("alice", loginPassword, owner.id, owner.token), nil, owner.cookies()...)
				if ok.Code != http.StatusSeeOther {
					t.Errorf("owner's sign-in afterwards: status = %d, want 303", ok.Code)
				}
			})
		}
	}
}

// Parallel posts of one flow (a double click, a replayed request) must
// sign in once: the flow completes atomically before a session starts.
func TestLoginFlowCompletesOnce(t *testing.T) {
	const attempts = 20
	e := newLoginEnv(t, false)
	p := e.form(t, "/")
	form := loginForm("alice", loginPassword, p.id, p.token)
	recs := make([]*httptest.ResponseRecorder, attempts)
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() { recs[i] = e.post(form, nil, p.cookies()...) })
	}
	wg.Wait()
	var signedIn, refused int
	for _, rec := range recs {
		switch {
		case rec.Code == http.StatusSeeOther:
			signedIn++
		case rec.Code == http.StatusBadRequest && strings.Contains(rec.Body.String(), flowUsedTitle):
			refused++
			if sc := responseCookie(rec, e.sessCookie); sc != nil {
				t.Errorf("refused post set a session cookie: %s", sc)
			}
		default:
			t.Errorf("status = %d:\n%s", rec.Code, rec.Body)
		}
	}
	if signedIn != 1 || refused != attempts-1 {
		t.Errorf("%d signed in, %d refused; want 1 and %d", signedIn, refused, attempts-1)
	}
	if n := e.st.creates.Load(); n != 1 {
		t.Errorf("%d sessions created, want 1", n)
	}
	if live, err := e.st.UserBrowserSessions(t.Context(), e.alice.ID); err != nil || len(live) != 1 {
		t.Errorf("%d live sessions (%v), want 1", len(live), err)
	}
}

// The attempt is judged, and recorded, under the flow's client: that is
// what selects the application's policy.
func TestLoginAttemptIsForTheFlowsClient(t *testing.T) {
	tests := []struct {
		name     string
		spec     FlowSpec
		password string
		wantType string
	}{
		{"sign-in for an application", FlowSpec{ClientID: "notes", Request: url.Values{"client_id": {"notes"}}}, loginPassword, audit.TypeLoginSuccess},
		{"failure for an application", FlowSpec{ClientID: "notes", Request: url.Values{"client_id": {"notes"}}}, "wrong password", audit.TypeLoginFailed},
		{"sign-in to Portcullis itself", FlowSpec{ReturnTo: "/account/password"}, loginPassword, audit.TypeLoginSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoginEnv(t, false)
			p := e.formFor(t, tt.spec)
			e.post(loginForm("alice", tt.password, p.id, p.token), nil, p.cookies()...)
			evs := events(t, e.recorder, tt.wantType, e.alice.ID)
			if len(evs) != 1 || evs[0].ClientID != tt.spec.ClientID {
				t.Errorf("%s events = %+v, want one for client %q", tt.wantType, evs, tt.spec.ClientID)
			}
		})
	}
}

// A sign-in's events carry the request's address and device; a device_id
// in the posted form names the device in place of the browser's cookie.
func TestLoginRecordsRequestIdentity(t *testing.T) {
	tests := []struct {
		name       string
		formDevice string // "" leaves it out of the form
		password   string
		wantDevice string
	}{
		{name: "the browser's device", password: loginPassword, wantDevice: "cookie-device"},
		{name: "device_id in the form wins", formDevice: "ios-install-7", password: loginPassword, wantDevice: "ios-install-7"},
		{name: "malformed device_id is ignored", formDevice: "not a device", password: loginPassword, wantDevice: "cookie-device"},
		{name: "a failure too", formDevice: "ios-install-7", password: "wrong password", wantDevice: "ios-install-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoginEnv(t, false)
			p := e.form(t, "/")
			form := loginForm("alice", tt.password, p.id, p.token)
			if tt.formDevice != "" {
				form.Set("device_id", tt.formDevice)
			}
			req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", loginOrigin)
			for _, c := range p.cookies() {
				req.AddCookie(c)
			}
			// What the server's middleware resolved: the peer is a proxy.
			req.RemoteAddr = "10.0.0.1:4567"
			req = req.WithContext(reqinfo.With(req.Context(), reqinfo.Info{
				IP: netip.MustParseAddr("2001:db8::42"), RequestID: "req-1", DeviceID: "cookie-device",
			}))
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)

			typ := audit.TypeLoginSuccess
			if tt.password != loginPassword {
				typ = audit.TypeLoginFailed
			}
			got := events(t, e.recorder, typ, e.alice.ID)
			if len(got) != 1 || got[0].IP != "2001:db8::42" || got[0].Device != tt.wantDevice {
				t.Fatalf("%s events = %+v; want one from 2001:db8::42 on %s", typ, got, tt.wantDevice)
			}
			if typ != audit.TypeLoginSuccess {
				return
			}
			started := events(t, e.recorder, audit.TypeSessionStarted, e.alice.ID)
			if len(started) != 1 || started[0].IP != "2001:db8::42" || started[0].Device != tt.wantDevice {
				t.Fatalf("session.started events = %+v; want one from 2001:db8::42 on %s", started, tt.wantDevice)
			}
			live, err := e.st.UserBrowserSessions(t.Context(), e.alice.ID)
			if err != nil || len(live) != 1 || live[0].IP != "2001:db8::42" {
				t.Fatalf("sessions = %+v, %v; want one from 2001:db8::42", live, err)
			}
		})
	}
}
