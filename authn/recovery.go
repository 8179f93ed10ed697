package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// Bounds of the forgotten-password form. They are fixed rather than taken
// from registration.rate_limit: that section is about creating accounts,
// its max may be 0 (off), and a reset is something every account owner
// may need on a shared network (an office, a campus behind one address).
const (
	// resetPerAddress is how many reset requests one address may make in
	// resetWindow, whatever they name.
	resetPerAddress = 20
	// resetPerAccount is how many reset mails one account may be sent in
	// resetWindow, from any number of addresses: the form cannot be used
	// to flood someone's mailbox.
	resetPerAccount = 3
	resetWindow     = time.Hour
	// maxEmailMatches bounds the accounts one address may name. Every
	// account of the address is mailed (each mail names its username), so
	// a person who forgot which account they had gets a link for each.
	maxEmailMatches = 10
)

// Reasons of password.reset_requested events that sent nothing.
const (
	resetReasonUnknown     = "unknown_account"
	resetReasonNoEmail     = "no_email"
	resetReasonDisabled    = "disabled"
	resetReasonRateLimited = "rate_limited"
)

// AccountFinder finds the accounts a forgotten-password form names.
type AccountFinder interface {
	UserByUsername(ctx context.Context, username string) (*storage.User, error)
	UsersByEmail(ctx context.Context, email string, limit int) ([]storage.User, error)
}

var _ AccountFinder = (*storage.Store)(nil)

// RecoveryConfig configures Recovery.
type RecoveryConfig struct {
	Accounts *Accounts
	Links    *Links
	Users    AccountFinder
	Budget   RateBudget
	// Recorder receives password.reset_requested; nil records nothing.
	Recorder *audit.Recorder
	Logger   *slog.Logger
}

// Recovery is what the mailed links lead to: a forgotten password's reset
// request, and the pages the links open (reset, activation, email
// verification).
type Recovery struct {
	accounts *Accounts
	links    *Links
	users    AccountFinder
	budget   RateBudget
	recorder *audit.Recorder
	logger   *slog.Logger
}

// NewRecovery returns the recovery service.
func NewRecovery(cfg RecoveryConfig) *Recovery {
	r := &Recovery{accounts: cfg.Accounts, links: cfg.Links, users: cfg.Users, budget: cfg.Budget,
		recorder: cfg.Recorder, logger: cfg.Logger}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	return r
}

// RequestReset mails a reset link to each account identifier names (a
// username, or else an email address), within the budgets of the request's
// address and of each account, and records a password.reset_requested
// event per account, or one without a user when none matched. The caller
// answers the same whatever happened, so RequestReset reports nothing of
// it: its error is an infrastructure failure met before any account was
// looked up (which every request meets alike); later failures are logged.
//
// A reset link goes to the account's address whether or not it was ever
// verified: the link proves the mailbox, and using it marks the address
// verified (Accounts.SetPasswordWithLink). The cost is that whoever owns an
// address mistyped into an account can take that account over; refusing
// unverified addresses would instead strand every owner who forgot their
// password before confirming.
func (r *Recovery) RequestReset(ctx context.Context, clientID, identifier string) error {
	ip := reqinfo.From(ctx).IPString()
	allowed, count, err := r.budget.TakeRateBudget(ctx, "reset:ip:"+ip, resetWindow, resetPerAddress)
	if err != nil {
		return fmt.Errorf("request password reset: %w", err)
	}
	if !allowed {
		if count == resetPerAddress+1 {
			// Once per window: a flood must not flood the log too.
			r.logger.WarnContext(ctx, "password reset requests refused: address over its budget", slog.String("ip", ip))
		}
		return nil
	}
	identifier = strings.TrimSpace(identifier)
	users, matchedBy, err := r.find(ctx, identifier)
	if err != nil {
		logFailure(ctx, r.logger, "password reset: look up account", err)
		return nil
	}
	if len(users) == 0 {
		r.recordRequest(ctx, audit.Event{ClientID: clientID, Outcome: audit.OutcomeFailure, Reason: resetReasonUnknown,
			Details: map[string]any{"identifier": truncateUTF8(identifier, maxLoggedUsername)}})
		return nil
	}
	for i := range users {
		r.resetOne(ctx, clientID, &users[i], matchedBy)
	}
	return nil
}

// find returns the accounts identifier names and how ("username",
// "email").
func (r *Recovery) find(ctx context.Context, identifier string) ([]storage.User, string, error) {
	if identifier == "" {
		return nil, "", nil
	}
	u, err := r.users.UserByUsername(ctx, identifier)
	if err == nil {
		return []storage.User{*u}, "username", nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, "", err
	}
	if !strings.Contains(identifier, "@") {
		return nil, "", nil
	}
	users, err := r.users.UsersByEmail(ctx, identifier, maxEmailMatches)
	return users, "email", err
}

// resetOne mails u a reset link if u may have one now, and records the
// request either way.
func (r *Recovery) resetOne(ctx context.Context, clientID string, u *storage.User, matchedBy string) {
	e := audit.Event{UserID: u.ID, ClientID: clientID, Outcome: audit.OutcomeFailure, Details: map[string]any{"matched_by": matchedBy}}
	switch {
	case u.Disabled:
		e.Reason = resetReasonDisabled
	case u.Email == "":
		e.Reason = resetReasonNoEmail
	default:
		allowed, _, err := r.budget.TakeRateBudget(ctx, "reset:user:"+u.ID, resetWindow, resetPerAccount)
		if err != nil {
			logFailure(ctx, r.logger, "password reset: account budget", err)
			return
		}
		if !allowed {
			e.Reason = resetReasonRateLimited
			break
		}
		sent, err := r.links.Send(ctx, u, LinkReset, Actor{ID: u.ID})
		if err != nil {
			logFailure(ctx, r.logger, "password reset: send link", err)
			return
		}
		e.Outcome = audit.OutcomeSuccess
		e.Details["link_sent"] = sent
	}
	r.recordRequest(ctx, e)
}

func (r *Recovery) recordRequest(ctx context.Context, e audit.Event) {
	e.Type = audit.TypePasswordResetRequested
	e.Actor = e.UserID
	if err := r.recorder.Record(ctx, e); err != nil {
		r.logger.ErrorContext(ctx, "password reset request not recorded", slog.Any("error", err))
	}
}

// Messages of the recovery pages.
const (
	msgForgotSentTitle = "Check your email"
	msgForgotSent      = "If an account matches what you typed, we have sent a link to its email address. Open it to choose a new password."
	msgForgotSentHint  = "The mail can take a few minutes to arrive; look in your spam folder too. No mail? Check what you typed and ask again."
	msgLinkGoneTitle   = "This link no longer works"
)

type forgotHandler struct {
	rec *Recovery
	pc  PageConfig
	log *slog.Logger
}

// NewForgotHandler serves ForgotPath: GET shows a form asking for a
// username or email address, POST mails a reset link (Recovery.RequestReset)
// and answers with the one page every request gets, with the same status,
// whether an account matched or not, had an address or not, was over its
// budget or not: the form must not tell who has an account. What it cannot
// hide is time: a match costs a few database writes more than none, which
// the per-address budget keeps from being measured at any scale. Without
// email the form is not offered. ?flow=ID names the sign-in to go back to.
func NewForgotHandler(rec *Recovery, pc PageConfig) http.Handler {
	return &forgotHandler{rec: rec, pc: pc, log: pc.logger()}
}

func (h *forgotHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fl, err := pendingFlow(r, h.pc.Flows, r.URL.Query().Get("flow"))
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		if !h.rec.links.CanMail() {
			h.pc.Pages.Render(w, http.StatusOK, "notice.html", templates.NoticePage{
				Title:   "Password reset is not available",
				Message: "This server cannot send email, so it cannot send you a link to choose a new password.",
				Advice:  "Ask your administrator to reset your password.",
				LinkURL: signInURL(fl), LinkText: "Back to sign in",
			})
			return
		}
		h.show(w, r, fl, templates.ForgotPasswordPage{}, "")
	case http.MethodPost:
		h.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pc.Pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

func (h *forgotHandler) show(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, page templates.ForgotPasswordPage, captchaError string) {
	page.CSRFToken = h.pc.CSRF.Token(w, r)
	page.SignInURL = signInURL(fl)
	if fl != nil {
		page.Flow = fl.ID
	}
	if captchaOn(h.pc, clientOf(fl), policies.CaptchaOnPasswordReset) {
		widget, err := drawCaptcha(r.Context(), w, h.pc.Captcha, h.pc.Policies(clientOf(fl)).Captcha, policies.CaptchaOnPasswordReset, captchaError)
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		page.Captcha = widget
	}
	h.pc.Pages.Render(w, http.StatusOK, "forgot_password.html", page)
}

func (h *forgotHandler) submit(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxAccountForm, h.pc.CSRF, h.pc.Pages, h.log, "forgotten password") {
		return
	}
	fl, err := pendingFlow(r, h.pc.Flows, r.PostFormValue("flow"))
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	identifier := r.PostFormValue("identifier")
	if captchaOn(h.pc, clientOf(fl), policies.CaptchaOnPasswordReset) {
		// Judged before any account is looked up: it tells nothing.
		msg, err := formCaptcha(r, h.pc, clientOf(fl), policies.CaptchaOnPasswordReset)
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		if msg != "" {
			h.show(w, r, fl, templates.ForgotPasswordPage{Identifier: identifier}, msg)
			return
		}
	}
	if err := h.rec.RequestReset(r.Context(), clientOf(fl), identifier); err != nil {
		h.internalError(w, r, err)
		return
	}
	h.pc.Pages.Render(w, http.StatusOK, "notice.html", templates.NoticePage{
		Title: msgForgotSentTitle, Message: msgForgotSent, Advice: msgForgotSentHint,
		LinkURL: signInURL(fl), LinkText: "Back to sign in",
	})
}

func (h *forgotHandler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), h.log, "forgotten password", err)
	if unavailableError(h.pc.Pages, w, err) {
		return
	}
	showError(h.pc.Pages, w, http.StatusInternalServerError, "Something went wrong",
		"We could not handle your request because of a problem on our side. Please try again later.")
}

type resetHandler struct {
	rec  *Recovery
	kind string
	pc   PageConfig
	log  *slog.Logger
}

// NewResetHandler serves the page a reset link (kind LinkReset, at
// ResetPasswordPath) or an activation link (LinkActivation, at
// ActivatePath) opens: GET ?token=… shows the new-password form when the
// link is live, without using it; POST sets the password through
// Accounts.SetPasswordWithLink, which uses the link in the same
// transaction, so of parallel submissions exactly one succeeds. A password
// the rules refuse shows the form again with every problem, the link still
// usable; a link that is unknown, used or expired gets one page saying so
// and how to get another.
func NewResetHandler(rec *Recovery, kind string, pc PageConfig) http.Handler {
	return &resetHandler{rec: rec, kind: kind, pc: pc, log: pc.logger()}
}

func (h *resetHandler) path() string { return pathOf(h.kind) }

func (h *resetHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		token := r.URL.Query().Get("token")
		_, u, err := h.rec.links.Peek(r.Context(), h.kind, token)
		if err != nil {
			h.linkError(w, r, err)
			return
		}
		h.show(w, r, token, u, nil)
	case http.MethodPost:
		h.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pc.Pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

func (h *resetHandler) show(w http.ResponseWriter, r *http.Request, token string, u *storage.User, errs templates.FieldErrors) {
	h.pc.Pages.Render(w, http.StatusOK, "reset_password.html", templates.ResetPasswordPage{
		Action: h.path(), Token: token, CSRFToken: h.pc.CSRF.Token(w, r), Activation: h.kind == LinkActivation,
		Username: u.Username, Errors: errs, MinLength: h.rec.accounts.PasswordPolicy().MinLength,
	})
}

func (h *resetHandler) submit(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxPasswordBody, h.pc.CSRF, h.pc.Pages, h.log, h.kind+" link") {
		return
	}
	ctx := r.Context()
	token, password := r.PostFormValue("token"), r.PostFormValue("password")
	_, u, err := h.rec.links.Peek(ctx, h.kind, token)
	if err != nil {
		h.linkError(w, r, err)
		return
	}
	if password != r.PostFormValue("confirm_password") {
		// Nothing is written; the password's own problems are told now
		// too, so that one more try is enough.
		fe := &fielderr.Error{}
		if err := h.rec.accounts.CheckPassword(ctx, "password", password, u); err != nil {
			pe, ok := fielderr.As(err)
			if !ok {
				h.internalError(w, r, err)
				return
			}
			fe.Fields = append(fe.Fields, pe.Fields...)
		}
		fe.Fields = append(fe.Fields, fielderr.Field{Field: "confirm_password", Code: CodeMismatch, Message: msgConfirmDiffers})
		h.show(w, r, token, u, passwordErrors(fe))
		return
	}
	changed, ended, err := h.rec.accounts.SetPasswordWithLink(ctx, h.rec.links, h.kind, token, password)
	if fe, ok := fielderr.As(err); ok {
		h.show(w, r, token, u, passwordErrors(fe))
		return
	}
	if err != nil {
		h.linkError(w, r, err)
		return
	}
	u = changed
	attrs := []slog.Attr{slog.String("user_id", u.ID), slog.String("kind", h.kind)}
	notice := templates.NoticePage{Success: true, LinkURL: "/login", LinkText: "Sign in"}
	if h.kind == LinkActivation {
		notice.Title = "Your password is set"
		notice.Message = "You can now sign in as " + u.Username + " with the password you chose."
	} else {
		notice.Title = "Your password is changed"
		notice.Message = "You can now sign in as " + u.Username + " with your new password."
		if ended != nil {
			notice.Advice = "For your safety, you have been signed out on every device and application."
			attrs = append(attrs, slog.Int("sessions_ended", len(ended.Sessions)), slog.Int64("tokens_revoked", ended.Tokens))
		}
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "password set with a link", attrs...)
	h.pc.Pages.Render(w, http.StatusOK, "notice.html", notice)
}

// passwordErrors turns the problems of a new password into a sentence per
// field of the form.
func passwordErrors(fe *fielderr.Error) templates.FieldErrors {
	return fieldSentences(fe, map[string]string{"password": "This password", "confirm_password": "This"})
}

func (h *resetHandler) linkError(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, ErrLinkInvalid) {
		h.internalError(w, r, err)
		return
	}
	page := templates.NoticePage{
		Title:   msgLinkGoneTitle,
		Message: "Links to choose a password work once and only for a limited time, and a newer mail replaces an older one. This one has been used, has expired, or was replaced.",
	}
	if h.rec.links.CanMail() {
		page.LinkURL, page.LinkText = ForgotPath, "Ask for a new link"
		page.Advice = "You can ask for a new link: you will need your username or email address."
		if h.kind == LinkActivation {
			page.Advice = "You can ask for a new link with your username or email address, or ask your administrator to send one."
		}
	} else {
		page.Advice = "Ask your administrator for a new link."
	}
	h.pc.Pages.Render(w, http.StatusBadRequest, "notice.html", page)
}

func (h *resetHandler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), h.log, h.kind+" link", err)
	if unavailableError(h.pc.Pages, w, err) {
		return
	}
	showError(h.pc.Pages, w, http.StatusInternalServerError, "Something went wrong",
		"Your password could not be set because of a problem on our side. Please try again later.")
}

type verifyEmailHandler struct {
	rec *Recovery
	pc  PageConfig
	log *slog.Logger
}

// NewVerifyEmailHandler serves VerifyEmailPath, where a verification link
// leads: GET ?token=… shows a button and uses nothing, since mail
// scanners and link previews open every link in a mail; POST uses the
// link (Links.VerifyEmail) and confirms the address. A link that cannot be
// used gets one page saying so: signing in again sends a new one.
func NewVerifyEmailHandler(rec *Recovery, pc PageConfig) http.Handler {
	return &verifyEmailHandler{rec: rec, pc: pc, log: pc.logger()}
}

func (h *verifyEmailHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		token := r.URL.Query().Get("token")
		link, _, err := h.rec.links.Peek(r.Context(), LinkVerifyEmail, token)
		if err != nil {
			h.linkError(w, r, err)
			return
		}
		h.pc.Pages.Render(w, http.StatusOK, "verify_email.html", templates.VerifyEmailPage{
			CSRFToken: h.pc.CSRF.Token(w, r), Token: token, Email: link.Email,
		})
	case http.MethodPost:
		if !readForm(w, r, maxPasswordBody, h.pc.CSRF, h.pc.Pages, h.log, "email verification") {
			return
		}
		u, err := h.rec.links.VerifyEmail(r.Context(), r.PostFormValue("token"), func(u *storage.User) Actor { return Actor{ID: u.ID} })
		if err != nil {
			h.linkError(w, r, err)
			return
		}
		h.log.InfoContext(r.Context(), "email address verified", slog.String("user_id", u.ID))
		h.pc.Pages.Render(w, http.StatusOK, "notice.html", templates.NoticePage{
			Title: "Your email address is confirmed", Success: true,
			Message: "Thank you: " + u.Email + " is confirmed as the email address of your account " + u.Username + ".",
			LinkURL: "/login", LinkText: "Sign in",
		})
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pc.Pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

func (h *verifyEmailHandler) linkError(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, ErrLinkInvalid) {
		logFailure(r.Context(), h.log, "email verification", err)
		if unavailableError(h.pc.Pages, w, err) {
			return
		}
		showError(h.pc.Pages, w, http.StatusInternalServerError, "Something went wrong",
			"Your email address could not be confirmed because of a problem on our side. Please try again later.")
		return
	}
	h.pc.Pages.Render(w, http.StatusBadRequest, "notice.html", templates.NoticePage{
		Title:   msgLinkGoneTitle,
		Message: "Links to confirm an email address work once and only for a limited time, and a newer mail replaces an older one. This one has been used, has expired, or was replaced.",
		Advice:  "If your address is not confirmed yet, sign in again: we will send you a new link.",
		LinkURL: "/login", LinkText: "Sign in",
	})
}
