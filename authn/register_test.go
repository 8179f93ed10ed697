package authn

import (
	"context"
	"encoding/json"
	"errors"
	"html"
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
	"github.com/portcullis/portcullis/captcha"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
	"github.com/portcullis/portcullis/templates"
)

// selfServiceEnv is the registration and recovery services and their
// pages over one SQLite store, with a policy tests edit, a mailer that
// keeps what it is given (or email off) and an injected clock.
type selfServiceEnv struct {
	st       *storage.Store
	clock    *storagetest.Clock
	recorder *audit.Recorder
	accounts *Accounts
	links    *Links
	reg      *Register
	rec      *Recovery
	flows    *Flows
	pc       PageConfig

	register, api, forgot, reset, activate, verify http.Handler

	mu     sync.Mutex
	mails  []LinkMail
	policy policies.Policy
}

// selfServiceOrigin is the issuer the CSRF guard trusts.
const selfServiceOrigin = "https://id.example.test"

// A password every rule of the default policy accepts.
const goodPassword = "Correct horse battery 9"

func newSelfServiceEnv(t *testing.T, mail bool, edit func(*policies.Policy)) *selfServiceEnv {
	t.Helper()
	e := &selfServiceEnv{clock: newClock(), policy: policies.Defaults()}
	e.policy.Registration.Enabled, e.policy.Registration.RequireEmailVerification = true, true
	if edit != nil {
		edit(&e.policy)
	}
	e.st = storagetest.OpenWithClock(t, storagetest.SQLiteURL(t), e.clock.Now)
	e.recorder = audit.NewRecorder(e.st, nil, e.clock.Now)
	source := func(clientID string) policies.Policy {
		e.mu.Lock()
		defer e.mu.Unlock()
		p := e.policy
		if clientID == "closed-app" {
			p.Registration.Enabled = false
		}
		return p
	}
	e.accounts = NewAccounts(AccountsConfig{Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Recorder: e.recorder, Now: e.clock.Now, Policies: source})
	var mailer LinkMailer
	if mail {
		mailer = func(m LinkMail) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.mails = append(e.mails, m)
			return true
		}
	}
	e.links = NewLinks(LinksConfig{Store: e.st, Mail: mailer, Issuer: selfServiceOrigin, Policies: source, Recorder: e.recorder, Now: e.clock.Now})
	quiet := slog.New(slog.DiscardHandler)
	e.reg = NewRegister(RegisterConfig{Accounts: e.accounts, Links: e.links, Budget: e.st, Users: e.st, Policies: source,
		Recorder: e.recorder, Logger: quiet, Now: e.clock.Now})
	e.rec = NewRecovery(RecoveryConfig{Accounts: e.accounts, Links: e.links, Users: e.st, Budget: e.st, Recorder: e.recorder, Logger: quiet})
	pages, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	e.flows = NewFlows(e.st, true, e.clock.Now)
	csrf, err := NewCSRF([]byte("0123456789abcdef0123456789abcdef"), true, selfServiceOrigin, e.flows.CookieName())
	if err != nil {
		t.Fatal(err)
	}
	e.pc = PageConfig{Flows: e.flows, CSRF: csrf, Pages: pages, Policies: source, Logger: quiet}
	e.rebuild()
	return e
}

// rebuild makes the handlers anew from e.pc.
func (e *selfServiceEnv) rebuild() {
	e.register = NewRegisterHandler(e.reg, e.pc)
	e.api = NewRegistrationAPI(e.reg, e.pc.Logger)
	e.forgot = NewForgotHandler(e.rec, e.pc)
	e.reset = NewResetHandler(e.rec, LinkReset, e.pc)
	e.activate = NewResetHandler(e.rec, LinkActivation, e.pc)
	e.verify = NewVerifyEmailHandler(e.rec, e.pc)
}

func (e *selfServiceEnv) sent() []LinkMail {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.mails)
}

func (e *selfServiceEnv) users(t *testing.T) []string {
	t.Helper()
	all, err := e.st.ListUsers(t.Context(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range all {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	return names
}

func (e *selfServiceEnv) addUser(t *testing.T, spec UserSpec) *storage.User {
	t.Helper()
	u, err := e.accounts.Create(t.Context(), spec, Actor{ID: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// ipCtx is a request's context from ip, as the server's middleware fills it.
func ipCtx(ctx context.Context, ip string) context.Context {
	return reqinfo.With(ctx, reqinfo.Info{IP: netip.MustParseAddr(ip)})
}

// pageClient is one browser: it keeps cookies and comes from one address.
type pageClient struct {
	t       *testing.T
	ip      string
	cookies map[string]*http.Cookie
}

func newPageClient(t *testing.T, ip string) *pageClient {
	return &pageClient{t: t, ip: ip, cookies: map[string]*http.Cookie{}}
}

// do sends one request to h; a non-nil form is POSTed.
func (c *pageClient) do(h http.Handler, target string, form url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if form != nil {
		req = httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req = req.WithContext(ipCtx(req.Context(), c.ip))
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		c.cookies[ck.Name] = ck
	}
	return rec
}

var formHidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// fields are a page's hidden inputs, as its form posts them, with more.
func fields(page string, more url.Values) url.Values {
	v := url.Values{}
	for _, m := range formHidden.FindAllStringSubmatch(page, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	for k, vs := range more {
		v[k] = vs
	}
	return v
}

// submit opens target, fills its form with values and posts it.
func (c *pageClient) submit(h http.Handler, target string, values url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	page := c.do(h, target, nil)
	if page.Code != http.StatusOK {
		c.t.Fatalf("GET %s = %d:\n%s", target, page.Code, page.Body)
	}
	path, _, _ := strings.Cut(target, "?")
	return c.do(h, path, fields(page.Body.String(), values))
}

func registration(username, email, password, confirm string) url.Values {
	return url.Values{"username": {username}, "email": {email}, "password": {password}, "confirm_password": {confirm}}
}

func fieldCodes(err error) []string {
	fe, ok := fielderr.As(err)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range fe.Fields {
		out = append(out, f.Field+":"+f.Code)
	}
	slices.Sort(out)
	return out
}

func TestRegisterService(t *testing.T) {
	tests := []struct {
		name string
		edit func(*policies.Policy)
		mail bool
		// existing accounts before the registration.
		existing []string
		req      RegisterRequest
		wantErr  error
		// wantFields are field:code of a refused registration, sorted.
		wantFields []string
		wantSent   bool
	}{
		{
			name: "verification mailed", mail: true,
			req:      RegisterRequest{Username: " Dora ", Email: "dora@example.test", Password: goodPassword},
			wantSent: true,
		},
		{
			name: "no verification required", mail: true,
			edit: func(p *policies.Policy) { p.Registration.RequireEmailVerification = false },
			req:  RegisterRequest{Username: "dora", Email: "dora@example.test", Password: goodPassword},
		},
		{
			name: "disabled", mail: true,
			edit:    func(p *policies.Policy) { p.Registration.Enabled = false },
			req:     RegisterRequest{Username: "dora", Email: "dora@example.test", Password: goodPassword},
			wantErr: ErrRegistrationDisabled,
		},
		{
			name: "disabled for the application", mail: true,
			req:     RegisterRequest{ClientID: "closed-app", Username: "dora", Email: "dora@example.test", Password: goodPassword},
			wantErr: ErrRegistrationDisabled,
		},
		{
			// The link could never be sent, so the account never used.
			name:    "verification required without email",
			req:     RegisterRequest{Username: "dora", Email: "dora@example.test", Password: goodPassword},
			wantErr: ErrRegistrationDisabled,
		},
		{
			name: "verification not required without email",
			edit: func(p *policies.Policy) { p.Registration.RequireEmailVerification = false },
			req:  RegisterRequest{Username: "dora", Email: "dora@example.test", Password: goodPassword},
		},
		{
			name: "every problem at once", mail: true,
			req: RegisterRequest{Username: "do ra", Email: "not-an-address", Password: "short",
				Problems: []fielderr.Field{{Field: "confirm_password", Code: CodeMismatch, Message: "differs"}}},
			wantFields: []string{"confirm_password:mismatch", "email:", "password:" + policies.PasswordTooShort, "username:"},
		},
		{
			name: "problems found by Create", mail: true,
			req:        RegisterRequest{Username: "dora", Email: "nope", Password: "short"},
			wantFields: []string{"email:", "password:" + policies.PasswordTooShort},
		},
		{
			name: "email required", mail: true,
			req:        RegisterRequest{Username: "dora", Email: "  ", Password: goodPassword},
			wantFields: []string{"email:" + CodeRequired},
		},
		{
			name: "taken", mail: true, existing: []string{"dora"},
			req:        RegisterRequest{Username: "DORA", Email: "dora@example.test", Password: goodPassword},
			wantFields: []string{"username:" + CodeTaken},
		},
		{
			name: "taken among other problems", mail: true, existing: []string{"dora"},
			req:        RegisterRequest{Username: "dora", Email: "dora@example.test", Password: "short"},
			wantFields: []string{"password:" + policies.PasswordTooShort, "username:" + CodeTaken},
		},
		{
			name: "taken with a mismatch", mail: true, existing: []string{"dora"},
			req: RegisterRequest{Username: "dora", Email: "dora@example.test", Password: goodPassword,
				Problems: []fielderr.Field{{Field: "confirm_password", Code: CodeMismatch, Message: "differs"}}},
			wantFields: []string{"confirm_password:mismatch", "username:" + CodeTaken},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSelfServiceEnv(t, tt.mail, tt.edit)
			for _, name := range tt.existing {
				e.addUser(t, UserSpec{Username: name, Password: goodPassword})
			}
			before := e.users(t)
			out, err := e.reg.Register(ipCtx(t.Context(), "192.0.2.1"), tt.req)
			if tt.wantErr != nil || tt.wantFields != nil {
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("Register = %v, want %v", err, tt.wantErr)
				}
				if got := fieldCodes(err); tt.wantFields != nil && !slices.Equal(got, tt.wantFields) {
					t.Fatalf("problems %v (%v), want %v", got, err, tt.wantFields)
				}
				if after := e.users(t); !slices.Equal(after, before) {
					t.Errorf("a refused registration changed the accounts: %v → %v", before, after)
				}
				if len(e.sent()) != 0 || len(eventsOf(t, e.recorder, audit.TypeUserRegistered)) != 0 {
					t.Error("a refused registration mailed or recorded something")
				}
				return
			}
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			u, err := e.st.User(t.Context(), out.User.ID)
			if err != nil {
				t.Fatal(err)
			}
			if u.Username != "dora" || u.Email != "dora@example.test" || u.EmailVerified || u.Admin {
				t.Errorf("stored account %+v", u)
			}
			if out.VerificationSent != tt.wantSent {
				t.Errorf("VerificationSent = %v, want %v", out.VerificationSent, tt.wantSent)
			}
			mails := e.sent()
			if tt.wantSent != (len(mails) == 1) || (tt.wantSent && (mails[0].Kind != LinkVerifyEmail || mails[0].To != u.Email)) {
				t.Errorf("mails %+v", mails)
			}
			evs := eventsOf(t, e.recorder, audit.TypeUserRegistered)
			if len(evs) != 1 || evs[0].UserID != u.ID || evs[0].Actor != u.ID || evs[0].IP != "192.0.2.1" {
				t.Errorf("user.registered events %+v", evs)
			}
			created := eventsOf(t, e.recorder, audit.TypeUserCreated)
			if len(created) != 1 || created[0].Actor != RegistrationActor {
				t.Errorf("user.created events %+v", created)
			}
		})
	}
}

// Every attempt from an address counts, refused ones too, so that the
// limit also bounds probing which usernames are taken; another address
// has its own budget, and the next window a fresh one.
func TestRegisterRateLimit(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) {
		p.Registration.RateLimit = policies.RateLimit{Max: 2, Period: policies.Duration(time.Hour)}
	})
	ctx := ipCtx(t.Context(), "198.51.100.7")
	if _, err := e.reg.Register(ctx, RegisterRequest{Username: "a", Email: "x", Password: "short"}); fieldCodes(err) == nil {
		t.Fatalf("first attempt: %v, want field problems", err)
	}
	if _, err := e.reg.Register(ctx, RegisterRequest{Username: "erin", Email: "erin@example.test", Password: goodPassword}); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	_, err := e.reg.Register(ctx, RegisterRequest{Username: "fred", Email: "fred@example.test", Password: goodPassword})
	rl, ok := errors.AsType[*RateLimitedError](err)
	if !ok || rl.RetryAfter <= 0 || rl.RetryAfter > time.Hour {
		t.Fatalf("third attempt: %v, want a rate limit with a retry within the hour", err)
	}
	if _, err := e.reg.Register(ipCtx(t.Context(), "2001:db8::1"), RegisterRequest{Username: "fred", Email: "fred@example.test", Password: goodPassword}); err != nil {
		t.Fatalf("another address: %v", err)
	}
	e.clock.Advance(rl.RetryAfter)
	if _, err := e.reg.Register(ctx, RegisterRequest{Username: "gina", Email: "gina@example.test", Password: goodPassword}); err != nil {
		t.Fatalf("the next window: %v", err)
	}
	if got := e.users(t); !slices.Equal(got, []string{"erin", "fred", "gina"}) {
		t.Errorf("accounts %v", got)
	}

	e.mu.Lock()
	e.policy.Registration.RateLimit.Max = 0
	e.mu.Unlock()
	for i := range 4 {
		if _, err := e.reg.Register(ctx, RegisterRequest{Username: "u" + string(rune('a'+i)), Email: "u@example.test", Password: goodPassword}); err != nil {
			t.Fatalf("with the limit off, attempt %d: %v", i, err)
		}
	}
}

func TestRegisterPage(t *testing.T) {
	e := newSelfServiceEnv(t, true, nil)
	e.addUser(t, UserSpec{Username: "alice", Password: goodPassword})
	c := newPageClient(t, "192.0.2.10")

	page := c.do(e.register, RegisterPath, nil)
	body := page.Body.String()
	if page.Code != http.StatusOK || !strings.Contains(body, `<form method="post" action="/register">`) || strings.Contains(body, `name="flow"`) {
		t.Fatalf("GET %s = %d:\n%s", RegisterPath, page.Code, body)
	}
	if cc := page.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}

	// Every problem is shown beside its field, what was typed is kept,
	// and no password is echoed.
	rec := c.do(e.register, RegisterPath, fields(body, registration("alice", "not an address", "shrtpw1", "other")))
	body = rec.Body.String()
	for _, want := range []string{
		`<p class="error" id="username-error">This username is already taken.</p>`,
		`<p class="error" id="email-error">This is not a valid email address.</p>`,
		`<p class="error" id="password-error">This password must be at least`,
		`<p class="error" id="confirm_password-error">This does not match the password above.</p>`,
		`value="alice"`, `value="not an address"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("refused registration lacks %q:\n%s", want, body)
		}
	}
	if rec.Code != http.StatusOK || strings.Contains(body, "shrtpw1") {
		t.Errorf("refused registration: status %d, echoes the password: %v", rec.Code, strings.Contains(body, "shrtpw1"))
	}

	// Without the form's token nothing happens.
	if rec := c.do(e.register, RegisterPath, registration("dora", "dora@example.test", goodPassword, goodPassword)); rec.Code != http.StatusForbidden {
		t.Errorf("POST without a CSRF token = %d, want 403", rec.Code)
	}

	rec = c.submit(e.register, RegisterPath, registration("dora", "dora@example.test", goodPassword, goodPassword))
	body = rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "<h1>Check your email</h1>") || !strings.Contains(body, "dora@example.test") ||
		!strings.Contains(body, `href="/login"`) {
		t.Fatalf("registration = %d:\n%s", rec.Code, body)
	}
	if got := e.users(t); !slices.Equal(got, []string{"alice", "dora"}) {
		t.Errorf("accounts %v", got)
	}
}

// A registration opened from a sign-in goes by its application's policy
// and leads back to it.
func TestRegisterPageFromAFlow(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) { p.Registration.RequireEmailVerification = false })
	c := newPageClient(t, "192.0.2.11")
	start := func(clientID string) string {
		req := httptest.NewRequest(http.MethodGet, "/oauth2/auth", nil)
		rec := httptest.NewRecorder()
		loginURL, err := e.flows.Start(req.Context(), rec, req, FlowSpec{ClientID: clientID})
		if err != nil {
			t.Fatal(err)
		}
		for _, ck := range rec.Result().Cookies() {
			c.cookies[ck.Name] = ck
		}
		u, _ := url.Parse(loginURL)
		return u.Query().Get("flow")
	}
	open := start("open-app")
	rec := c.submit(e.register, RegisterPath+"?flow="+url.QueryEscape(open), registration("hal", "hal@example.test", goodPassword, goodPassword))
	body := rec.Body.String()
	if !strings.Contains(body, "<h1>Your account is created</h1>") || !strings.Contains(body, `href="/login?flow=`+url.QueryEscape(open)+`"`) {
		t.Errorf("registration from a flow:\n%s", body)
	}

	closed := start("closed-app")
	rec = c.do(e.register, RegisterPath+"?flow="+url.QueryEscape(closed), nil)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "Creating an account is not available") {
		t.Errorf("GET for an application that does not allow registration = %d:\n%s", rec.Code, rec.Body)
	}
	// A flow that cannot go on is ignored: the global policy applies.
	if rec := c.do(e.register, RegisterPath+"?flow=unknown", nil); rec.Code != http.StatusOK {
		t.Errorf("GET with an unknown flow = %d", rec.Code)
	}
}

func TestRegisterPageDisabled(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) { p.Registration.Enabled = false })
	c := newPageClient(t, "192.0.2.12")
	rec := c.do(e.register, RegisterPath, nil)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "<h1>Creating an account is not available</h1>") ||
		strings.Contains(rec.Body.String(), "<form") {
		t.Fatalf("GET = %d:\n%s", rec.Code, rec.Body)
	}
	// A form kept from before the change is refused too.
	e.mu.Lock()
	e.policy.Registration.Enabled = true
	e.mu.Unlock()
	page := c.do(e.register, RegisterPath, nil).Body.String()
	e.mu.Lock()
	e.policy.Registration.Enabled = false
	e.mu.Unlock()
	if rec := c.do(e.register, RegisterPath, fields(page, registration("ivy", "ivy@example.test", goodPassword, goodPassword))); rec.Code != http.StatusForbidden {
		t.Errorf("POST = %d, want 403", rec.Code)
	}
	if got := e.users(t); len(got) != 0 {
		t.Errorf("accounts %v", got)
	}
}

func TestRegisterPageRateLimited(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) {
		p.Registration.RateLimit = policies.RateLimit{Max: 1, Period: policies.Duration(time.Hour)}
	})
	c := newPageClient(t, "192.0.2.13")
	if rec := c.submit(e.register, RegisterPath, registration("jo", "jo@example.test", goodPassword, goodPassword)); rec.Code != http.StatusOK {
		t.Fatalf("first = %d", rec.Code)
	}
	rec := c.submit(e.register, RegisterPath, registration("kim", "kim@example.test", goodPassword, goodPassword))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "<h1>Too many new accounts</h1>") {
		t.Fatalf("second = %d (Retry-After %q):\n%s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

// fakeCaptcha draws a built-in-looking challenge whose answer is 42.
type fakeCaptcha struct{}

func (fakeCaptcha) Widget(_ context.Context, p policies.Captcha, page string) (*captcha.Widget, error) {
	return &captcha.Widget{Provider: p.Provider, Page: page, ChallengeID: "ch-" + page, Digits: 2, PNG: []byte{1}, WAV: []byte{2}}, nil
}

func (fakeCaptcha) Verify(_ context.Context, _ policies.Captcha, _ string, form url.Values, _ string) (bool, error) {
	return form.Get(captcha.FieldAnswer) == "42", nil
}

// A captcha listed for registration is shown whatever "when" says, and
// an attempt without the right answer creates nothing and takes no budget.
func TestRegisterPageCaptcha(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) {
		p.Captcha.ShowOn = []string{policies.CaptchaOnRegistration}
		p.Registration.RateLimit.Max = 1
	})
	e.pc.Captcha = fakeCaptcha{}
	e.rebuild()
	c := newPageClient(t, "192.0.2.14")
	page := c.do(e.register, RegisterPath, nil).Body.String()
	if !strings.Contains(page, `name="captcha_id" value="ch-registration"`) {
		t.Fatalf("no captcha on the page:\n%s", page)
	}
	for _, answer := range []string{"", "41"} {
		form := fields(page, registration("lou", "lou@example.test", goodPassword, goodPassword))
		form.Set(captcha.FieldAnswer, answer)
		rec := c.do(e.register, RegisterPath, form)
		if !strings.Contains(rec.Body.String(), `id="captcha-error"`) || !strings.Contains(rec.Body.String(), `value="lou"`) {
			t.Errorf("answer %q: no captcha error:\n%s", answer, rec.Body)
		}
	}
	form := fields(page, registration("lou", "lou@example.test", goodPassword, goodPassword))
	form.Set(captcha.FieldAnswer, "42")
	if rec := c.do(e.register, RegisterPath, form); !strings.Contains(rec.Body.String(), "Check your email") {
		t.Fatalf("right answer:\n%s", rec.Body)
	}
	// The API cannot show a captcha, so it is closed while one is asked for.
	rec := postJSON(e.api, "192.0.2.14", "application/json", `{"username":"max","email":"max@example.test","password":"`+goodPassword+`"}`)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"captcha_required"`) {
		t.Errorf("API with a captcha policy = %d %s", rec.Code, rec.Body)
	}
}

func postJSON(h http.Handler, ip, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, RegistrationsAPIPath, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req = req.WithContext(ipCtx(req.Context(), ip))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRegistrationAPI(t *testing.T) {
	valid := `{"username":"nia","email":"nia@example.test","password":"` + goodPassword + `"}`
	tests := []struct {
		name        string
		edit        func(*policies.Policy)
		contentType string
		body        string
		wantStatus  int
		wantError   string
		// wantFields are field:code, sorted.
		wantFields []string
		wantUser   bool
	}{
		{name: "created", contentType: "application/json; charset=utf-8", body: valid, wantStatus: http.StatusCreated, wantUser: true},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: valid, wantStatus: http.StatusUnsupportedMediaType, wantError: "unsupported_media_type"},
		{name: "text/plain shaped like JSON", contentType: "text/plain", body: valid, wantStatus: http.StatusUnsupportedMediaType, wantError: "unsupported_media_type"},
		{name: "no content type", body: valid, wantStatus: http.StatusUnsupportedMediaType, wantError: "unsupported_media_type"},
		{name: "malformed", contentType: "application/json", body: `{"username":`, wantStatus: http.StatusBadRequest, wantError: "invalid_request"},
		{name: "unknown field", contentType: "application/json", body: `{"username":"nia","admin":true}`, wantStatus: http.StatusBadRequest, wantError: "invalid_request"},
		{name: "two values", contentType: "application/json", body: valid + valid, wantStatus: http.StatusBadRequest, wantError: "invalid_request"},
		{
			name: "disabled", edit: func(p *policies.Policy) { p.Registration.Enabled = false },
			contentType: "application/json", body: valid, wantStatus: http.StatusForbidden, wantError: "registration_disabled",
		},
		{
			name: "field problems", contentType: "application/json", body: `{"username":"","email":"nope","password":"short"}`,
			wantStatus: http.StatusUnprocessableEntity, wantError: "invalid_request",
			wantFields: []string{"email:" + CodeInvalid, "password:" + policies.PasswordTooShort, "username:" + CodeInvalid},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSelfServiceEnv(t, true, tt.edit)
			rec := postJSON(e.api, "192.0.2.20", tt.contentType, tt.body)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got struct {
				Error  string `json:"error"`
				Fields []struct {
					Field, Code, Message string
				} `json:"fields"`
				ID       string `json:"id"`
				Username string `json:"username"`
				Sent     *bool  `json:"email_verification_sent"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if got.Error != tt.wantError {
				t.Errorf("error %q, want %q", got.Error, tt.wantError)
			}
			var codes []string
			for _, f := range got.Fields {
				codes = append(codes, f.Field+":"+f.Code)
				if f.Message == "" {
					t.Errorf("field %s without a message", f.Field)
				}
			}
			slices.Sort(codes)
			if !slices.Equal(codes, tt.wantFields) {
				t.Errorf("fields %v, want %v", codes, tt.wantFields)
			}
			users := e.users(t)
			if tt.wantUser != (len(users) == 1) {
				t.Fatalf("accounts %v", users)
			}
			if tt.wantUser && (got.ID == "" || got.Username != "nia" || got.Sent == nil || !*got.Sent) {
				t.Errorf("created body %s", rec.Body)
			}
		})
	}
}

func TestRegistrationAPIRateLimited(t *testing.T) {
	e := newSelfServiceEnv(t, true, func(p *policies.Policy) {
		p.Registration.RateLimit = policies.RateLimit{Max: 1, Period: policies.Duration(time.Minute)}
	})
	if rec := postJSON(e.api, "192.0.2.21", "application/json", `{"username":"oz","email":"oz@example.test","password":"`+goodPassword+`"}`); rec.Code != http.StatusCreated {
		t.Fatalf("first = %d %s", rec.Code, rec.Body)
	}
	rec := postJSON(e.api, "192.0.2.21", "application/json", `{"username":"pia","email":"pia@example.test","password":"`+goodPassword+`"}`)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), `"error":"rate_limited"`) {
		t.Fatalf("second = %d %s", rec.Code, rec.Body)
	}
	if ra := rec.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
}

func TestRetryAfterAndWindow(t *testing.T) {
	tests := []struct {
		now    time.Time
		period time.Duration
		want   time.Duration
	}{
		{time.Date(2030, 1, 1, 10, 15, 0, 0, time.UTC), time.Hour, 45 * time.Minute},
		{time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC), time.Hour, time.Hour},
		{time.Date(2030, 1, 1, 10, 0, 59, 500_000_000, time.UTC), time.Minute, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := windowLeft(tt.now, tt.period); got != tt.want {
			t.Errorf("windowLeft(%s, %s) = %s, want %s", tt.now, tt.period, got, tt.want)
		}
	}
	for d, want := range map[time.Duration]string{0: "1", 500 * time.Millisecond: "1", 61 * time.Second: "61", 1500 * time.Millisecond: "2"} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%s) = %q, want %q", d, got, want)
		}
	}
}
