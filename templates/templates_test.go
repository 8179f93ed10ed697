package templates

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// inlineCode matches what the server's CSP would block: inline styles,
// any script element (the pages need none) and event-handler attributes.
var inlineCode = regexp.MustCompile(`(?i)<style|\sstyle\s*=|<script|\son[a-z]+\s*=|javascript:`)

// scriptBySrc is an empty script element loading its code by src, which
// only a third-party captcha uses: the CSP judges it by origin, and it is
// no inline code. The src is a template action in a source file.
var scriptBySrc = regexp.MustCompile(`<script src="(/static/[a-z0-9-]+\.js|https://[^"]+|\{\{\.ScriptURL\}\})"( async)? defer></script>`)

// findInlineCode is the first inline code in page, scripts by src aside.
func findInlineCode(page string) string {
	return inlineCode.FindString(scriptBySrc.ReplaceAllString(page, ""))
}

func TestRenderPages(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data any
		want []string
		// absent must not appear.
		absent []string
	}{
		{
			name: "login.html error",
			data: LoginPage{Error: "Invalid username or password.", Username: "al<ice", Flow: "flow&id", CSRFToken: "tok"},
			want: []string{
				`<form method="post" action="/login"`,
				`name="username"`, `value="al&lt;ice"`, `autocomplete="username"`,
				`name="password"`, `type="password"`, `autocomplete="current-password"`,
				`<input type="hidden" name="flow" value="flow&amp;id">`,
				`<input type="hidden" name="csrf_token" value="tok">`,
				`<label for="username">`, `<label for="password">`,
				`<p class="error" role="alert" id="login-error">Invalid username or password.</p>`,
				`aria-invalid="true" aria-describedby="login-error"`,
				`type="submit"`,
				`<h1>Sign in</h1>`,
				`<link rel="stylesheet" href="/static/style.css">`,
			},
			absent: []string{`continue to`, `Forgot your password?`, `class="app-logo"`, `class="app-links"`},
		},
		{
			name:   "login.html minimal",
			data:   LoginPage{Flow: "f1", CSRFToken: "tok"},
			want:   []string{`<h1>Sign in</h1>`, `id="username"`, `autofocus`},
			absent: []string{`role="alert"`, `aria-invalid`, `Forgot your password?`, `class="captcha"`, `captcha_answer`, `<script`},
		},
		{
			name: "login.html application and recovery",
			data: LoginPage{
				Flow: "f1", CSRFToken: "tok",
				App: &App{
					Name:      `Notes & "Co" <b>`,
					LogoURI:   "https://notes.example/logo.png?s=48&t=1",
					PolicyURI: "https://notes.example/privacy",
					TosURI:    "https://notes.example/terms",
				},
				ForgotURL: "/account/recover",
			},
			want: []string{
				`<title>Sign in to Notes &amp; &#34;Co&#34; &lt;b&gt; · Portcullis</title>`,
				`<h1>Sign in to continue to Notes &amp; &#34;Co&#34; &lt;b&gt;</h1>`,
				`<img class="app-logo" src="https://notes.example/logo.png?s=48&amp;t=1" alt="" width="48" height="48" referrerpolicy="no-referrer">`,
				`<a href="https://notes.example/privacy" rel="noopener noreferrer">Privacy policy</a>`,
				`<a href="https://notes.example/terms" rel="noopener noreferrer">Terms of service</a>`,
				`<a href="/account/recover">Forgot your password?</a>`,
			},
			absent: []string{`<b>`},
		},
		{
			name: "login.html application without extras",
			data: LoginPage{Flow: "f1", CSRFToken: "tok", App: &App{Name: "Notes"}},
			want: []string{`Sign in to continue to Notes`},
			absent: []string{
				`<img class="app-logo"`, `class="app-links"`, `Privacy policy`, `Terms of service`, `Forgot your password?`,
			},
		},
		{
			name: "login.html unsafe links",
			data: LoginPage{App: &App{Name: "x", LogoURI: "javascript:alert(1)", PolicyURI: "javascript:alert(2)"}},
			// html/template replaces URLs of unsafe schemes.
			want:   []string{`src="#ZgotmplZ"`, `href="#ZgotmplZ"`},
			absent: []string{`alert(`},
		},
		{
			name: "login.html builtin captcha",
			data: LoginPage{Flow: "f1", CSRFToken: "tok", Captcha: &CaptchaWidget{
				ChallengeID: "ch&1", ImageURL: "data:image/png;base64,iVBORw0KGgo=", AudioURL: "data:audio/wav;base64,UklGRg==", Digits: 6,
			}},
			want: []string{
				`<fieldset class="captcha">`, `<legend>Show that you are a person</legend>`,
				`<img class="captcha-image" src="data:image/png;base64,iVBORw0KGgo=" width="240" height="80" alt="A picture of 6 digits`,
				`<summary>Listen instead</summary>`,
				`<audio controls preload="none" src="data:audio/wav;base64,UklGRg==">`,
				`<label for="captcha_answer">Type the digits you see in the picture</label>`,
				`name="captcha_answer" type="text" inputmode="numeric" autocomplete="off"`,
				`aria-describedby="captcha-hint"`,
				`<input type="hidden" name="captcha_id" value="ch&amp;1">`,
			},
			// The captcha needs no script, and html/template kept the
			// data: URLs (unsafe ones would read #ZgotmplZ).
			absent: []string{`<script`, `ZgotmplZ`, `aria-invalid`, `captcha-error`},
		},
		{
			name: "login.html builtin captcha refused",
			data: LoginPage{Flow: "f1", CSRFToken: "tok", Captcha: &CaptchaWidget{
				ChallengeID: "ch2", ImageURL: "data:image/png;base64,AA==", AudioURL: "data:audio/wav;base64,AA==", Digits: 6,
				Error: "Those digits did not match. Here is a new picture.",
			}},
			want: []string{
				`<p class="error" role="alert" id="captcha-error">Those digits did not match. Here is a new picture.</p>`,
				`aria-describedby="captcha-error" aria-invalid="true"`,
			},
		},
		{
			name: "login.html turnstile",
			data: LoginPage{Flow: "f1", CSRFToken: "tok", Captcha: &CaptchaWidget{
				ScriptURL: "https://challenges.cloudflare.com/turnstile/v0/api.js", Class: "cf-turnstile", SiteKey: `0x4AAA"<`, Action: "login",
			}},
			want: []string{
				`<div class="captcha">`,
				`<div class="cf-turnstile" data-sitekey="0x4AAA&#34;&lt;" data-action="login"></div>`,
				`<script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer></script>`,
				`<noscript>`,
			},
			absent: []string{`<fieldset class="captcha">`, `captcha_id`, `recaptcha-v3.js`},
		},
		{
			name: "login.html recaptcha v3",
			data: LoginPage{Flow: "f1", CSRFToken: "tok", Captcha: &CaptchaWidget{
				ScriptURL: "https://www.google.com/recaptcha/api.js?render=6Le&x", SiteKey: "6Le&x", Action: "login", Invisible: true,
			}},
			want: []string{
				`<input type="hidden" name="g-recaptcha-response" value="" data-recaptcha-v3 data-sitekey="6Le&amp;x" data-action="login">`,
				`<script src="/static/recaptcha-v3.js" defer></script>`,
				`<script src="https://www.google.com/recaptcha/api.js?render=6Le&amp;x" async defer></script>`,
			},
			absent: []string{`class="g-recaptcha"`},
		},
		{
			name: "consent.html",
			data: ConsentPage{
				ClientID: "app1",
				App:      App{Name: "My <App>", LogoURI: "https://app.example/logo.svg", PolicyURI: "https://app.example/privacy", TosURI: "https://app.example/terms"},
				Username: "alice",
				Scopes: []ScopeInfo{
					{Name: "openid", Description: "Sign you in with your account"},
					{Name: "email", Description: "See your email address"},
					{Name: "custom", Description: "custom"},
				},
				CSRFToken: "tok",
				Params:    []Param{{"client_id", "app1"}, {"redirect_uri", "https://app.example/cb?x=\"1\""}},
			},
			want: []string{
				`<form method="post" action="/oauth2/auth">`,
				`<input type="hidden" name="csrf_token" value="tok">`,
				`<input type="hidden" name="client_id" value="app1">`,
				`<input type="hidden" name="redirect_uri" value="https://app.example/cb?x=&#34;1&#34;">`,
				`<button type="submit" name="consent" value="allow"`,
				`<button type="submit" name="consent" value="deny"`,
				`<h1>Allow My &lt;App&gt; to use your account?</h1>`,
				`<strong>alice</strong>`,
				`<span class="scope-description">Sign you in with your account</span><code class="scope-name">openid</code>`,
				`<span class="scope-description">See your email address</span><code class="scope-name">email</code>`,
				// A scope nobody described is shown once, by its name.
				`<li><span class="scope-description">custom</span></li>`,
				`<img class="app-logo" src="https://app.example/logo.svg" alt=""`,
				`>Privacy policy</a>`, `>Terms of service</a>`,
			},
			absent: []string{`<App>`},
		},
		{
			name:   "consent.html minimal",
			data:   ConsentPage{ClientID: "app1", CSRFToken: "tok"},
			want:   []string{`<h1>Allow app1 to use your account?</h1>`, `value="allow"`, `value="deny"`},
			absent: []string{`<ul class="scopes"`, `class="app-logo"`, `class="app-links"`, `signed in as`},
		},
		{
			name: "error.html",
			data: ErrorPage{
				Title: "Forbidden", Message: "Try <again>.", Advice: "Go back and reload.",
				Detail: "invalid_request: <bad>", RequestID: "req-123",
			},
			want: []string{
				`<h1>Forbidden</h1>`, `<p>Try &lt;again&gt;.</p>`, `<p class="advice">Go back and reload.</p>`,
				`<details class="technical">`, `<summary>Technical details</summary>`,
				`<code>invalid_request: &lt;bad&gt;</code>`, `Request ID: <code>req-123</code>`,
			},
		},
		{
			name:   "error.html request id only",
			data:   ErrorPage{Title: "Not found", Message: "There is nothing here.", RequestID: "req-123"},
			want:   []string{`<summary>Technical details</summary>`, `<code>req-123</code>`},
			absent: []string{`class="advice"`},
		},
		{
			name:   "error.html minimal",
			data:   ErrorPage{},
			want:   []string{`<h1>Something went wrong</h1>`, `href="/"`},
			absent: []string{`<details`, `class="advice"`},
		},
		{
			name: "logout_confirm.html",
			data: LogoutConfirmPage{
				App:       &App{Name: "Notes & Co", LogoURI: "https://notes.example/logo.png"},
				Username:  "al<ice",
				CSRFToken: "tok",
				Params:    []Param{{"client_id", "notes"}, {"post_logout_redirect_uri", "https://notes.example/bye?a=1&b=2"}},
			},
			want: []string{
				`<h1>Sign out of Portcullis?</h1>`,
				`<strong>Notes &amp; Co</strong> is asking to sign you out.`,
				`<strong>al&lt;ice</strong>`,
				`<form method="post" action="/oauth2/logout">`,
				`<input type="hidden" name="csrf_token" value="tok">`,
				`<input type="hidden" name="client_id" value="notes">`,
				`<input type="hidden" name="post_logout_redirect_uri" value="https://notes.example/bye?a=1&amp;b=2">`,
				`<button type="submit" name="confirm" value="yes" class="primary">Sign out</button>`,
				`<a class="button" href="/">Stay signed in</a>`,
				`<img class="app-logo" src="https://notes.example/logo.png"`,
			},
		},
		{
			name: "logout_confirm.html minimal",
			data: LogoutConfirmPage{CSRFToken: "tok"},
			want: []string{
				`<h1>Sign out of Portcullis?</h1>`,
				`<input type="hidden" name="csrf_token" value="tok">`,
				`name="confirm" value="yes"`, `Stay signed in`,
			},
			absent: []string{`is asking`, `signed in as`, `class="app-logo"`},
		},
		{
			name: "logged_out.html",
			data: LoggedOutPage{},
			want: []string{`Signed out`},
		},
		{
			name: "index.html signed in",
			data: IndexPage{Username: "alice"},
			want: []string{`Signed in as <strong>alice</strong>`, `href="/account/password"`},
		},
		{
			name: "password.html form",
			data: PasswordPage{Username: "al<ice", Error: "Your current password is incorrect.", MinLength: 8, CSRFToken: "tok"},
			want: []string{
				`<form method="post" action="/account/password" aria-describedby="password-error"`,
				`<input type="hidden" name="csrf_token" value="tok">`,
				`value="al&lt;ice" autocomplete="username" hidden`,
				`<label for="current_password">`, `name="current_password" type="password" autocomplete="current-password"`,
				`<label for="new_password">`, `name="new_password" type="password" autocomplete="new-password" minlength="8"`,
				`<label for="confirm_password">`, `name="confirm_password" type="password" autocomplete="new-password"`,
				`Your current password is incorrect.`, `role="alert"`,
				`At least 8 characters.`,
			},
		},
		{
			name:   "password.html success",
			data:   PasswordPage{Username: "alice", Success: "Your password has been changed."},
			want:   []string{`role="status"`, `Your password has been changed.`, `href="/"`},
			absent: []string{`<form`, `type="password"`},
		},
		{
			name: "index.html signed out",
			data: IndexPage{},
			want: []string{`not signed in`, `href="/login"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, _, _ := strings.Cut(tt.name, " ")
			rec := httptest.NewRecorder()
			r.Render(rec, http.StatusOK, page, tt.data)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body:\n%s", rec.Code, rec.Body)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}
			body := rec.Body.String()
			if !strings.HasPrefix(body, "<!doctype html>") {
				t.Errorf("page does not start with the layout's doctype:\n%s", body)
			}
			if !strings.HasSuffix(body, "</html>") {
				t.Errorf("page does not end with the layout's </html>: %q", body[max(0, len(body)-40):])
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
			if m := findInlineCode(body); m != "" {
				t.Errorf("page contains %q, which the CSP blocks", m)
			}
			checkAccessible(t, body)
		})
	}
}

// checkAccessible checks what every page owes keyboard and screen-reader
// users and can be seen in the markup: the language, the icon, exactly one
// h1, a label for every visible input, and error messages that are
// announced and tied to their fields.
func checkAccessible(t *testing.T, body string) {
	t.Helper()
	for _, w := range []string{`<html lang="en">`, `<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">`, `<main`} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	if n := strings.Count(body, "<h1"); n != 1 {
		t.Errorf("page has %d h1 elements, want 1", n)
	}
	for _, m := range inputTag.FindAllString(body, -1) {
		if strings.Contains(m, `type="hidden"`) || strings.Contains(m, " hidden") {
			continue
		}
		id := idAttr.FindStringSubmatch(m)
		if id == nil || !strings.Contains(body, `<label for="`+id[1]+`">`) {
			t.Errorf("input without a label: %s", m)
		}
		if !strings.Contains(m, "autocomplete=") {
			t.Errorf("input without autocomplete: %s", m)
		}
	}
	for _, m := range describedBy.FindAllStringSubmatch(body, -1) {
		if !strings.Contains(body, `id="`+m[1]+`"`) {
			t.Errorf("aria-describedby points at missing id %q", m[1])
		}
	}
	for _, m := range imgTag.FindAllString(body, -1) {
		if !strings.Contains(m, ` alt="`) {
			t.Errorf("image without alt: %s", m)
		}
	}
}

var (
	inputTag    = regexp.MustCompile(`<input\s[^>]*>`)
	imgTag      = regexp.MustCompile(`<img\s[^>]*>`)
	idAttr      = regexp.MustCompile(`\sid="([^"]+)"`)
	describedBy = regexp.MustCompile(`aria-describedby="([^"]+)"`)
)

func TestRenderStatusAndFailures(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		page       string
		data       any
		status     int
		wantStatus int
		wantHTML   bool
	}{
		{"status passed through", "error.html", ErrorPage{Title: "Forbidden"}, http.StatusForbidden, http.StatusForbidden, true},
		{"unknown page", "nope.html", nil, http.StatusOK, http.StatusInternalServerError, false},
		// A field the page reads does not exist on this type, so execution
		// fails part-way; nothing of the page may leak out.
		{"execution error", "login.html", struct{ Error string }{"x"}, http.StatusOK, http.StatusInternalServerError, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r.Render(rec, tt.status, tt.page, tt.data)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			isHTML := strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html")
			if isHTML != tt.wantHTML {
				t.Errorf("Content-Type = %q", rec.Header().Get("Content-Type"))
			}
			if !tt.wantHTML && strings.Contains(rec.Body.String(), "<") {
				t.Errorf("failed render leaked markup: %q", rec.Body)
			}
		})
	}
}

func TestTemplateSourcesHaveNoInlineCode(t *testing.T) {
	names, err := fs.Glob(pageFS, "*.html")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 6 {
		t.Fatalf("found only %v", names)
	}
	for _, name := range names {
		b, err := fs.ReadFile(pageFS, name)
		if err != nil {
			t.Fatal(err)
		}
		if m := findInlineCode(string(b)); m != "" {
			t.Errorf("%s contains %q, which the CSP blocks", name, m)
		}
	}
}

func TestStatic(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path       string
		wantStatus int
		wantType   string
	}{
		{"/static/style.css", http.StatusOK, "text/css; charset=utf-8"},
		{"/static/favicon.svg", http.StatusOK, "image/svg+xml"},
		{"/static/recaptcha-v3.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/static/", http.StatusNotFound, ""},
		{"/static/missing.css", http.StatusNotFound, ""},
		{"/static/../templates.go", http.StatusNotFound, ""},
		{"/style.css", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL.Path = tt.path
			r.Static().ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantType != "" && rec.Header().Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", rec.Header().Get("Content-Type"), tt.wantType)
			}
		})
	}
}

func TestFavicon(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method   string
		wantBody bool
	}{
		{http.MethodGet, true},
		{http.MethodHead, false},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r.Favicon().ServeHTTP(rec, httptest.NewRequest(tt.method, "/favicon.ico", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != "image/svg+xml" {
				t.Errorf("Content-Type = %q, want image/svg+xml", got)
			}
			if got := rec.Header().Get("Cache-Control"); !strings.HasPrefix(got, "public, max-age=") {
				t.Errorf("Cache-Control = %q, want a public lifetime", got)
			}
			if got := strings.HasPrefix(rec.Body.String(), "<svg"); got != tt.wantBody {
				t.Errorf("body is an SVG: %v, want %v", got, tt.wantBody)
			}
		})
	}
}
