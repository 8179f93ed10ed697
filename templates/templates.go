// Package templates owns the HTML pages Portcullis renders (login, consent,
// errors, sign-out and its confirmation, password change, the index page)
// and the static assets they link, the favicon among them. Both are
// embedded in the binary so a deployment is one file.
//
// Pages must work under the server's Content-Security-Policy, which allows
// neither inline styles nor inline scripts: style lives in static/style.css
// and the pages need no JavaScript, but for a passkey, which only the
// browser's WebAuthn API can use: those pages load static/webauthn.js by
// src. A test enforces this. The other exception is a third-party captcha, which cannot work without its
// provider's script: a page showing one loads it (and, for reCAPTCHA v3,
// static/recaptcha-v3.js) by src, and whoever renders that page widens
// its policy for the provider (captcha.Widget.ContentSecurityPolicy).
//
// It imports nothing from the project; the server mounts Static at /static/.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
)

//go:embed layout.html login.html consent.html error.html logged_out.html logout_confirm.html index.html password.html register.html verify_email.html forgot_password.html reset_password.html notice.html mfa_verify.html mfa_enroll.html mfa_recovery_codes.html mfa_account.html device.html devices.html
var pageFS embed.FS

//go:embed static
var staticFS embed.FS

// layoutFile is not a page of its own: every page is executed through it.
const layoutFile = "layout.html"

// App is the application a person is signing in to, as its registration
// names it. The pages show it so that a person can tell whom they are
// about to trust; every field but Name may be empty.
type App struct {
	Name      string
	LogoURI   string
	PolicyURI string
	TosURI    string
}

// LoginPage is the data of "login.html". App is nil when the sign-in is
// for no known application, and the page then just says "Sign in".
type LoginPage struct {
	Error    string
	Username string
	// Flow is the id of the login flow the form signs in to.
	Flow      string
	CSRFToken string
	App       *App
	// ForgotURL and RegisterURL, when set, are offered as "Forgot your
	// password?" and "Create an account".
	ForgotURL   string
	RegisterURL string
	// Captcha, when set, asks for a captcha answer beside the password.
	Captcha *CaptchaWidget
	// Passkey, when set, offers signing in with a passkey alone.
	Passkey *PasskeyCeremony
}

// CaptchaWidget is a captcha inside a form (the "captcha" template of
// layout.html): the built-in one when ChallengeID is set, else a
// third-party provider's widget. The captcha package fills it.
type CaptchaWidget struct {
	// ChallengeID is the built-in challenge, posted back as captcha_id.
	ChallengeID string
	// ImageURL and AudioURL are the built-in challenge's picture and its
	// recording, as data: URLs: the page carries them, so that the
	// digits exist nowhere in clear but in this response.
	ImageURL template.URL
	AudioURL template.URL
	// Digits is how many digits the picture shows, for its description.
	Digits int

	// ScriptURL is the provider's script, Class the class its script
	// looks for ("g-recaptcha", "h-captcha", "cf-turnstile"), SiteKey the
	// public key and Action what the answer is for ("login").
	ScriptURL string
	Class     string
	SiteKey   string
	Action    string
	// Invisible is reCAPTCHA v3, which shows nothing to solve: the
	// page's own script (static/recaptcha-v3.js) asks for a token when
	// the form is sent and puts it in the hidden g-recaptcha-response.
	Invisible bool

	// Error, when set, says why the last answer was refused; it is shown
	// beside the captcha and tied to its input.
	Error string
}

// Param is one request parameter carried through a confirmation form
// (consent, sign-out) as a hidden input.
type Param struct {
	Name, Value string
}

// ScopeInfo is one requested scope: Description says in plain words what it
// allows and is what a person reads; Name is the technical scope, shown
// beside it for those who look for it.
type ScopeInfo struct {
	Name, Description string
}

// ConsentPage is the data of "consent.html". App.Name may be empty, in
// which case the page names the client by ClientID.
type ConsentPage struct {
	ClientID  string
	App       App
	Username  string
	Scopes    []ScopeInfo
	CSRFToken string
	Params    []Param
}

// ErrorPage is the data of "error.html". Message says what happened and
// Advice what to do about it, both for the person in front of the page;
// Detail is for whoever they report it to, and is folded away with the
// request id.
type ErrorPage struct {
	Title     string
	Message   string
	Advice    string
	Detail    string
	RequestID string
}

// LogoutConfirmPage is the data of "logout_confirm.html", which asks before
// a sign-out that did not prove it came from the person's application. App
// is nil when no application is known. Params are the logout request's
// parameters, posted back with the confirmation.
type LogoutConfirmPage struct {
	App       *App
	Username  string
	CSRFToken string
	Params    []Param
}

// PasswordPage is the data of "password.html", the self-service password
// change. Success replaces the form with a confirmation; Error is shown
// above the form. MinLength is the shortest password accepted, for the
// hint and the browser's own check.
type PasswordPage struct {
	Username  string
	Error     string
	Success   string
	MinLength int
	CSRFToken string
	// Flow is set when a sign-in demands the change before it completes
	// (the password expired, no longer meets the policy, or an
	// administrator asked): the form then posts to the flow and does not
	// ask for the current password, which the sign-in just proved; Reason
	// says why the change is needed.
	Flow   string
	Reason string
}

// LoggedOutPage is the data of "logged_out.html".
type LoggedOutPage struct{}

// IndexPage is the data of "index.html". Username is empty when nobody is
// signed in.
type IndexPage struct {
	Username string
}

// Renderer executes the embedded pages. It is safe for concurrent use.
type Renderer struct {
	pages  map[string]*template.Template
	static fs.FS
}

// New parses every page once, each combined with the shared layout, so a
// broken template fails start-up rather than a request.
func New() (*Renderer, error) {
	layout, err := template.ParseFS(pageFS, layoutFile)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", layoutFile, err)
	}
	names, err := fs.Glob(pageFS, "*.html")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	pages := make(map[string]*template.Template, len(names))
	for _, name := range names {
		if name == layoutFile {
			continue
		}
		t, err := layout.Clone()
		if err != nil {
			return nil, fmt.Errorf("clone layout for %s: %w", name, err)
		}
		if _, err := t.ParseFS(pageFS, name); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		pages[name] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("open static assets: %w", err)
	}
	return &Renderer{pages: pages, static: static}, nil
}

// Render writes page name with data and the given status. The page is
// rendered into a buffer first: a template error must become a clean 500, not
// a 200 with half a page after it.
func (r *Renderer) Render(w http.ResponseWriter, status int, name string, data any) {
	t, ok := r.pages[name]
	if !ok {
		slog.Error("render page: unknown template", slog.String("template", name))
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, layoutFile, data); err != nil {
		slog.Error("render page", slog.String("template", name), slog.Any("error", err))
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages carry CSRF tokens and personal data; no cache may keep them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// faviconFile is the icon, inside static/.
const faviconFile = "favicon.svg"

// Favicon serves the icon for GET /favicon.ico: browsers ask for that path
// whatever the pages link, and every current one accepts an SVG there when
// the Content-Type says so.
func (r *Renderer) Favicon() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "image/svg+xml")
		// Browsers fetch the icon on every page view unless told to keep it;
		// it changes about never.
		h.Set("Cache-Control", "public, max-age=86400")
		http.ServeFileFS(w, req, r.static, faviconFile)
	})
}

// Static serves the embedded assets. It expects the full request path
// (/static/style.css), so mount it without stripping the prefix:
//
//	mux.Handle("GET /static/", renderer.Static())
//
// Directories are not listed.
func (r *Renderer) Static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, ok := strings.CutPrefix(path.Clean(req.URL.Path), "/static/")
		if !ok || !fs.ValidPath(name) {
			http.NotFound(w, req)
			return
		}
		st, err := fs.Stat(r.static, name)
		if err != nil || st.IsDir() {
			http.NotFound(w, req)
			return
		}
		// Asset names carry no content hash, so a short lifetime keeps a
		// deploy from being masked by stale caches for long.
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeFileFS(w, req, r.static, name)
	})
}
