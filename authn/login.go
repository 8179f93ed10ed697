package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis/portcullis/templates"
)

const (
	// maxLoginBody bounds the login form: a username, a password and a
	// return path, with room to spare.
	maxLoginBody = 64 << 10
	// maxReturnTo bounds return_to; an authorization request URL fits well
	// within it.
	maxReturnTo = 8 << 10
	// loginFailedMessage is the one message for every failed sign-in: which
	// check failed would tell an attacker whether the account exists.
	loginFailedMessage = "Invalid username or password."
	// tooManySessionsMessage may be specific: it is shown only after the
	// password was verified, so it reveals nothing to a guesser.
	tooManySessionsMessage = "You are signed in on too many devices. Sign out elsewhere and try again."
	// requestIDHeader is set on the response by the server's request-id
	// middleware before any handler runs; reading it here avoids importing
	// the server package.
	requestIDHeader = "X-Request-Id"
)

// AppFinder names the application a sign-in is for, from the path the
// login form returns to (an authorization request, most often), so that the
// page can say whom the person is about to sign in to. It reports false
// when returnTo leads to no known application.
type AppFinder interface {
	AppForReturnTo(ctx context.Context, returnTo string) (*templates.App, bool)
}

type loginHandler struct {
	pipeline *Pipeline
	sessions *Sessions
	csrf     *CSRF
	pages    *templates.Renderer
	apps     AppFinder
	logger   *slog.Logger
}

// NewLoginHandler serves the sign-in form: GET /login shows it, POST /login
// runs the password through the pipeline and, on success, starts a session
// and sends the browser on to return_to (a local path, "/" by default).
// apps may be nil; the page then names no application.
func NewLoginHandler(p *Pipeline, s *Sessions, csrf *CSRF, r *templates.Renderer, apps AppFinder, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &loginHandler{pipeline: p, sessions: s, csrf: csrf, pages: r, apps: apps, logger: logger}
}

func (h *loginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.show(w, r, http.StatusOK, templates.LoginPage{ReturnTo: safeReturnTo(r.URL.Query().Get("return_to"))})
	case http.MethodPost:
		h.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

// show renders the form. The application is looked up on every showing,
// the one after a wrong password too, so the page keeps naming it.
func (h *loginHandler) show(w http.ResponseWriter, r *http.Request, status int, page templates.LoginPage) {
	page.CSRFToken = h.csrf.Token(w, r)
	if h.apps != nil {
		if app, ok := h.apps.AppForReturnTo(r.Context(), page.ReturnTo); ok {
			page.App = app
		}
	}
	h.pages.Render(w, status, "login.html", page)
}

func (h *loginHandler) submit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !readForm(w, r, maxLoginBody, h.csrf, h.pages, h.logger, "login") {
		return
	}
	username := r.PostFormValue("username")
	returnTo := safeReturnTo(r.PostFormValue("return_to"))
	out, err := h.pipeline.PasswordLogin(ctx, Attempt{
		Username: username,
		Password: r.PostFormValue("password"),
		IP:       h.sessions.cfg.ClientIP(r),
	})
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if !out.OK {
		h.show(w, r, http.StatusOK, templates.LoginPage{Error: loginFailedMessage, Username: username, ReturnTo: returnTo})
		return
	}
	if _, err := h.sessions.Start(ctx, w, r, out.User); err != nil {
		if errors.Is(err, ErrTooManySessions) {
			h.show(w, r, http.StatusOK, templates.LoginPage{Error: tooManySessionsMessage, Username: username, ReturnTo: returnTo})
			return
		}
		h.internalError(w, r, err)
		return
	}
	seeOther(w, returnTo)
}

func (h *loginHandler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	h.logger.ErrorContext(r.Context(), "login", slog.Any("error", err))
	showError(h.pages, w, http.StatusInternalServerError, "Something went wrong",
		"Signing in failed because of a problem on our side. Please try again later.")
}

// readForm parses a POSTed form of at most limit bytes and checks its CSRF
// token, answering the request itself when either fails; it reports whether
// the handler may go on.
func readForm(w http.ResponseWriter, r *http.Request, limit int64, csrf *CSRF, pages *templates.Renderer, logger *slog.Logger, form string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			showError(pages, w, http.StatusRequestEntityTooLarge, "Request too large", "The form you sent is too large.")
			return false
		}
		showError(pages, w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return false
	}
	if !csrf.Verify(r) {
		logger.WarnContext(r.Context(), form+" form refused: CSRF check failed", slog.String("origin", r.Header.Get("Origin")))
		showError(pages, w, http.StatusForbidden, "Form expired",
			"This form has expired or was not sent from this site. Go back, reload the page and try again.")
		return false
	}
	return true
}

// showError renders the error page, quoting the request id the server set
// so that a person can report it.
func showError(pages *templates.Renderer, w http.ResponseWriter, status int, title, message string) {
	pages.Render(w, status, "error.html", templates.ErrorPage{
		Title:     title,
		Message:   message,
		RequestID: w.Header().Get(requestIDHeader),
	})
}

// safeReturnTo returns raw when it is a path on this server and "/"
// otherwise, so the login form cannot be used as an open redirect. Besides
// parsing, it rejects what browsers read differently from url.Parse:
// "//host" and "/\host" are both network-path references to a browser, and
// tabs or newlines are silently dropped by it ("/\t/host" becomes "//host").
// Only printable ASCII is accepted, which also keeps the Location header
// clean; real return paths are percent-encoded.
func safeReturnTo(raw string) string {
	const fallback = "/"
	if len(raw) == 0 || len(raw) > maxReturnTo || raw[0] != '/' {
		return fallback
	}
	if strings.HasPrefix(raw, "//") || strings.ContainsRune(raw, '\\') {
		return fallback
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return fallback
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return fallback
	}
	return raw
}
