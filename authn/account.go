package authn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

const (
	// PasswordPath is where the password change is served.
	PasswordPath = "/account/password"
	// passwordLoginPath sends a browser that is not signed in to sign in
	// and come back.
	passwordLoginPath = "/login?return_to=" + PasswordPath
	// maxPasswordBody bounds the form: three passwords of at most
	// MaxPasswordLength bytes each, percent-encoded, and a CSRF token.
	maxPasswordBody = 16 << 10
)

// Messages of the password form. The user is signed in and has just typed
// their own password, so they may be specific.
const (
	msgCurrentMissing   = "Enter your current password."
	msgCurrentWrong     = "Your current password is incorrect."
	msgConfirmChallenge = "There have been several failed sign-ins to this account. Sign out, then sign in again to continue."
	msgConfirmMismatch  = "The new password and its confirmation do not match."
	msgSameAsCurrent    = "The new password must differ from the current one."
	msgPasswordChanged  = "Your password has been changed."
	msgOthersSignedOut  = " You have been signed out on every other device and application."
	msgNewPasswordIntro = "The new password "
)

type passwordHandler struct {
	pipeline *Pipeline
	sessions *Sessions
	accounts *Accounts
	csrf     *CSRF
	pages    *templates.Renderer
	logger   *slog.Logger
	factors  *SecondFactors
	policies PolicySource
	now      func() time.Time
}

// PasswordOption configures the password change.
type PasswordOption func(*passwordHandler)

// WithPasswordStepUp makes an account with a second factor pass one
// recently before changing its password, when session.reauth_for lists
// password_change and session.reauth_max_age is set.
func WithPasswordStepUp(f *SecondFactors, policies PolicySource, now func() time.Time) PasswordOption {
	return func(h *passwordHandler) { h.factors, h.policies, h.now = f, policies, now }
}

// NewPasswordHandler serves the self-service password change at
// PasswordPath: GET shows the form to a signed-in browser, POST changes the
// password. A browser that is not signed in is sent to sign in first.
//
// The form always demands the current password, whatever
// session.reauth_max_age says: a session cookie alone (a stolen one, or a
// browser left unlocked) must never be enough to take the account over by
// changing its password (OWASP ASVS 2.1.6). That check runs through the
// pipeline like a sign-in, with its constant-time verification, audit
// event and any future lockout step, and it is as fresh as a credential
// check can be, so the reauth_for rule for password_change is met by
// construction rather than by a detour through the login page. A
// successful check also moves the session's auth_time, so that other
// sensitive actions within reauth_max_age need not ask again.
//
// The change itself is accounts' (Accounts.ChangePassword): the password
// rules, the hashing and, when the session policy's
// invalidate_on_password_change holds, the end of every other session and
// token family of the user; this browser stays signed in.
func NewPasswordHandler(p *Pipeline, s *Sessions, accounts *Accounts, csrf *CSRF, r *templates.Renderer, logger *slog.Logger, opts ...PasswordOption) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &passwordHandler{pipeline: p, sessions: s, accounts: accounts, csrf: csrf, pages: r, logger: logger}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *passwordHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		id, ok := h.identity(w, r)
		if !ok {
			return
		}
		h.show(w, r, id, "")
	case http.MethodPost:
		h.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

// identity returns the signed-in user, or answers the request itself
// (redirect to sign in, or an error page) and returns false.
func (h *passwordHandler) identity(w http.ResponseWriter, r *http.Request) (*Identity, bool) {
	id, err := h.sessions.Current(r)
	if err != nil {
		h.internalError(w, r, err)
		return nil, false
	}
	if id == nil {
		seeOther(w, passwordLoginPath)
		return nil, false
	}
	if h.factors != nil {
		ok, err := h.factors.SteppedUp(r.Context(), id, h.policies("").Session, policies.ActionPasswordChange, h.now())
		if err != nil {
			h.internalError(w, r, err)
			return nil, false
		}
		if !ok {
			seeOther(w, StepUpURL(policies.ActionPasswordChange))
			return nil, false
		}
	}
	return id, true
}

func (h *passwordHandler) show(w http.ResponseWriter, r *http.Request, id *Identity, errMsg string) {
	h.pages.Render(w, http.StatusOK, "password.html", templates.PasswordPage{
		Username:  id.User.Username,
		Error:     errMsg,
		MinLength: h.accounts.PasswordPolicy().MinLength,
		CSRFToken: h.csrf.Token(w, r),
	})
}

func (h *passwordHandler) submit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !readForm(w, r, maxPasswordBody, h.csrf, h.pages, h.logger, "password") {
		return
	}
	id, ok := h.identity(w, r)
	if !ok {
		return
	}
	current := r.PostFormValue("current_password")
	next := r.PostFormValue("new_password")
	// The cheap checks come first: a form that would fail anyway costs no
	// hashing and counts as no credential check.
	if msg := newPasswordProblem(h.accounts.PasswordPolicy(), id.User, current, next, r.PostFormValue("confirm_password")); msg != "" {
		h.show(w, r, id, msg)
		return
	}
	if current == "" {
		h.show(w, r, id, msgCurrentMissing)
		return
	}
	out, err := h.pipeline.PasswordLogin(ctx, Attempt{
		UserID: id.User.ID, Password: current, Action: policies.ActionPasswordChange,
	})
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if !out.OK {
		h.show(w, r, id, confirmFailureMessage(out.Decision))
		return
	}
	if err := h.sessions.reauthenticated(ctx, id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			// The session ended meanwhile (timeout, sign-out elsewhere).
			seeOther(w, passwordLoginPath)
			return
		}
		h.internalError(w, r, err)
		return
	}
	ended, err := h.accounts.ChangePassword(ctx, id.User.ID, next, Actor{ID: id.User.ID}, id.Session.ID)
	if fe, ok := fielderr.As(err); ok {
		// An embedder's rule refused it (the policy's passed above), or
		// the policy changed in between.
		h.show(w, r, id, fieldSentence(fe))
		return
	}
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	msg := msgPasswordChanged
	attrs := []slog.Attr{slog.String("user_id", id.User.ID)}
	if ended != nil {
		msg += msgOthersSignedOut
		attrs = append(attrs, slog.Int("sessions_ended", len(ended.Sessions)), slog.Int64("tokens_revoked", ended.Tokens))
	}
	h.logger.LogAttrs(ctx, slog.LevelInfo, "password changed", attrs...)
	h.pages.Render(w, http.StatusOK, "password.html", templates.PasswordPage{Username: id.User.Username, Success: msg})
}

// newPasswordProblem returns what is wrong with the new password that can
// be told without any costly work, as a sentence for the form, or "": the
// byte bound, so an oversized password is never hashed, and the password
// policy p (pure and cheap), so a person fixes every problem before
// typing the current password again. Accounts.ChangePassword runs every
// rule once more, the embedder's included, after the current password is
// verified.
func newPasswordProblem(p policies.Password, u *storage.User, current, next, confirm string) string {
	if len(next) > MaxPasswordLength {
		return newPasswordSentence([]string{fmt.Sprintf("must be at most %d bytes", MaxPasswordLength)})
	}
	// The rules judge the normalized form, as the change will store it; a
	// password that cannot be normalized is the change's to refuse.
	normalized, err := normalizePassword(next)
	if err != nil {
		normalized = next
	}
	if problems := p.Check(normalized, u.Username, u.Email); len(problems) > 0 {
		messages := make([]string, len(problems))
		for i, pr := range problems {
			messages[i] = pr.Message
		}
		return newPasswordSentence(messages)
	}
	switch {
	case next != confirm:
		return msgConfirmMismatch
	case next == current:
		return msgSameAsCurrent
	}
	return ""
}

// fieldSentence is newPasswordSentence of every problem in fe.
func fieldSentence(fe *fielderr.Error) string {
	messages := make([]string, len(fe.Fields))
	for i, f := range fe.Fields {
		messages[i] = f.Message
	}
	return newPasswordSentence(messages)
}

// newPasswordSentence joins the problems of a new password into one
// sentence for the form: "The new password must be at least 12
// characters, must contain a digit and must contain an uppercase letter."
func newPasswordSentence(messages []string) string {
	list := messages[0]
	if n := len(messages); n > 1 {
		list = strings.Join(messages[:n-1], ", ") + " and " + messages[n-1]
	}
	return msgNewPasswordIntro + list + "."
}

func (h *passwordHandler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), h.logger, "password change", err)
	if unavailableError(h.pages, w, err) {
		return
	}
	showError(h.pages, w, http.StatusInternalServerError, "Something went wrong",
		"Your password could not be changed because of a problem on our side. Please try again later.")
}

// seeOther redirects with 303, which turns a POST into a GET: a 307 would
// replay the form, passwords included, to the target.
func seeOther(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

// confirmFailureMessage is what the change page says when the current
// password is not accepted: the same pipeline judged it as a sign-in, so a
// lock, an address refusal or a demanded captcha is said as such, not as a
// wrong password.
func confirmFailureMessage(d Decision) string {
	if d.Verdict == Challenge {
		return msgConfirmChallenge
	}
	if m := FailureMessage(d); m != loginFailedMessage {
		return m
	}
	return msgCurrentWrong
}
