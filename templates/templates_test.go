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
			name: "login.html",
			data: LoginPage{Error: "Invalid username or password.", Username: "al<ice", ReturnTo: "/oauth2/auth?a=1&b=2", CSRFToken: "tok"},
			want: []string{
				`<form method="post" action="/login"`,
				`name="username"`, `value="al&lt;ice"`, `autocomplete="username"`,
				`name="password"`, `type="password"`, `autocomplete="current-password"`,
				`<input type="hidden" name="return_to" value="/oauth2/auth?a=1&amp;b=2">`,
				`<input type="hidden" name="csrf_token" value="tok">`,
				`<label for="username">`, `<label for="password">`,
				`Invalid username or password.`, `role="alert"`,
				`type="submit"`,
				`<link rel="stylesheet" href="/static/style.css">`,
			},
		},
		{
			name: "consent.html",
			data: ConsentPage{
				ClientID: "app1", ClientName: "My App", Username: "alice",
				Scopes:    []string{"openid", "profile"},
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
				`My App`, `alice`, `<code>openid</code>`, `<code>profile</code>`,
			},
		},
		{
			name: "error.html",
			data: ErrorPage{Title: "Forbidden", Message: "Try <again>.", RequestID: "req-123"},
			want: []string{`<h1>Forbidden</h1>`, `Try &lt;again&gt;.`, `req-123`},
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
			if m := inlineCode.FindString(body); m != "" {
				t.Errorf("page contains %q, which the CSP blocks", m)
			}
		})
	}
}

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
		if m := inlineCode.FindString(string(b)); m != "" {
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
