package templates

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestRenderLifecyclePages(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	builtin := &CaptchaWidget{ChallengeID: "ch1", ImageURL: "data:image/png;base64,AA==", AudioURL: "data:audio/wav;base64,AA==", Digits: 6}
	tests := []struct {
		name   string
		data   any
		want   []string
		absent []string
	}{
		{
			name: "register.html blank",
			data: RegisterPage{CSRFToken: "tok", MinLength: 12, SignInURL: "/login"},
			want: []string{
				`<h1>Create an account</h1>`, `<form method="post" action="/register">`,
				`<input type="hidden" name="csrf_token" value="tok">`,
				`<label for="username">Username</label>`, `autocomplete="username"`,
				`<label for="email">Email address</label>`, `autocomplete="email"`, `inputmode="email"`,
				`<label for="password">Password</label>`, `name="password" type="password" autocomplete="new-password" minlength="12"`,
				`<label for="confirm_password">`, `name="confirm_password" type="password" autocomplete="new-password"`,
				`aria-describedby="password-hint"`, `At least 12 characters.`,
				`<a href="/login">Sign in</a>`,
			},
			absent: []string{`role="alert"`, `aria-invalid`, `name="flow"`, `captcha`},
		},
		{
			name: "register.html problems",
			data: RegisterPage{
				CSRFToken: "tok", Flow: "f&1", Username: "al<ice", Email: "a@example.com", MinLength: 12, Captcha: builtin,
				Errors: FieldErrors{"username": "This username is already taken.", "password": "The password must be at least 12 characters.",
					"confirm_password": "The second password does not match."},
			},
			want: []string{
				`<p class="error" role="alert">Please correct the problems marked below.</p>`,
				`<input type="hidden" name="flow" value="f&amp;1">`, `value="al&lt;ice"`, `value="a@example.com"`,
				`<p class="error" id="username-error">This username is already taken.</p>`,
				`aria-invalid="true" aria-describedby="username-error"`,
				`aria-describedby="password-error password-hint" aria-invalid="true"`,
				`<p class="error" id="confirm_password-error">The second password does not match.</p>`,
				`<fieldset class="captcha">`, `<input type="hidden" name="captcha_id" value="ch1">`,
			},
			absent: []string{`email-error`},
		},
		{
			name:   "verify_email.html",
			data:   VerifyEmailPage{CSRFToken: "tok", Token: "t&k", Email: "a@example.com"},
			want:   []string{`<form method="post" action="/verify-email">`, `<input type="hidden" name="token" value="t&amp;k">`, `<strong>a@example.com</strong>`, `Confirm my email address</button>`},
			absent: []string{`<a href="http`, `<img class="app-logo"`},
		},
		{
			name: "forgot_password.html",
			data: ForgotPasswordPage{CSRFToken: "tok", Flow: "f1", SignInURL: "/login?flow=f1"},
			want: []string{
				`<form method="post" action="/forgot-password">`, `<label for="identifier">Username or email address</label>`,
				`name="identifier" type="text"`, `<input type="hidden" name="flow" value="f1">`, `href="/login?flow=f1"`,
			},
			absent: []string{`captcha`},
		},
		{
			name: "forgot_password.html captcha",
			data: ForgotPasswordPage{CSRFToken: "tok", Identifier: "bob", Captcha: &CaptchaWidget{ChallengeID: "c", ImageURL: "data:image/png;base64,AA==", AudioURL: "data:audio/wav;base64,AA==", Digits: 6, Error: "Wrong digits."}},
			want: []string{`value="bob"`, `<p class="error" role="alert" id="captcha-error">Wrong digits.</p>`},
		},
		{
			name: "reset_password.html reset",
			data: ResetPasswordPage{Action: "/reset-password", Token: "tk", CSRFToken: "tok", Username: "bob", MinLength: 8,
				Errors: FieldErrors{"password": "The password must contain a digit."}},
			want: []string{
				`<h1>Choose a new password</h1>`, `<form method="post" action="/reset-password">`,
				`<input type="hidden" name="token" value="tk">`, `value="bob" autocomplete="username" hidden`,
				`<label for="password">New password</label>`, `<p class="error" id="password-error">The password must contain a digit.</p>`,
				`Change password</button>`,
			},
			absent: []string{`Set your password`, `administrator`},
		},
		{
			name:   "reset_password.html activation",
			data:   ResetPasswordPage{Action: "/activate", Token: "tk", CSRFToken: "tok", Username: "carol", MinLength: 8, Activation: true},
			want:   []string{`<title>Set your password · Portcullis</title>`, `<h1>Set your password</h1>`, `action="/activate"`, `An administrator created the account <strong>carol</strong>`, `Set password</button>`},
			absent: []string{`role="alert"`, `aria-invalid`},
		},
		{
			name:   "notice.html success",
			data:   NoticePage{Title: "Your password is changed", Message: "Done <now>.", Success: true, LinkURL: "/login", LinkText: "Sign in"},
			want:   []string{`<h1>Your password is changed</h1>`, `<p class="success" role="status">Done &lt;now&gt;.</p>`, `<a href="/login">Sign in</a>`},
			absent: []string{`<form`},
		},
		{
			name:   "notice.html plain",
			data:   NoticePage{Title: "This link no longer works", Message: "Used.", Advice: "Ask again."},
			want:   []string{`<p>Used.</p>`, `<p>Ask again.</p>`},
			absent: []string{`class="success"`, `<a href`},
		},
		{
			name: "login.html account links",
			data: LoginPage{Flow: "f1", CSRFToken: "tok", ForgotURL: "/forgot-password?flow=f1", RegisterURL: "/register?flow=f1"},
			want: []string{`<a href="/forgot-password?flow=f1">Forgot your password?</a>`, `<a href="/register?flow=f1">Create an account</a>`},
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
			if m := findInlineCode(body); m != "" {
				t.Errorf("page contains %q, which the CSP blocks", m)
			}
			checkAccessible(t, splitDescribedBy(body))
		})
	}
}

var multiDescribedBy = regexp.MustCompile(`aria-describedby="([^" ]+) ([^"]+)"`)

// splitDescribedBy writes an aria-describedby naming several ids as one
// attribute per id, for checkAccessible, which looks each value up as one
// id.
func splitDescribedBy(body string) string {
	for multiDescribedBy.MatchString(body) {
		body = multiDescribedBy.ReplaceAllString(body, `aria-describedby="$1" aria-describedby="$2"`)
	}
	return body
}
