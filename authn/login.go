package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portcullis/portcullis/captcha"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
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
	// challengeMessage answers an attempt a step wants more of than this
	// page can ask.
	challengeMessage = "Signing in needs an extra verification step that is not available here. Contact your administrator."
	// requestIDHeader is set on the response by the server's request-id
	// middleware before any handler runs; reading it here avoids importing
	// the server package.
	requestIDHeader = "X-Request-Id"
)

// AppFinder names the application a sign-in is for, so that the page can
// say whom the person is about to sign in to. It reports false for an
// unknown client.
type AppFinder interface {
	AppForClient(ctx context.Context, clientID string) (*templates.App, bool)
}

type loginHandler struct {
	pipeline *Pipeline
	sessions *Sessions
	flows    *Flows
	csrf     *CSRF
	pages    *templates.Renderer
	apps     AppFinder
	logger   *slog.Logger
	captcha  CaptchaChecker
	policies PolicySource
	links    *Links
	budget   RateBudget
	factors  *SecondFactors
}

// CaptchaChecker draws and judges captchas (captcha.Service).
type CaptchaChecker interface {
	Widget(ctx context.Context, p policies.Captcha, page string) (*captcha.Widget, error)
	Verify(ctx context.Context, p policies.Captcha, page string, form url.Values, remoteIP string) (bool, error)
}

// LoginOption configures the login handler.
type LoginOption func(*loginHandler)

// WithCaptcha makes the login form ask for a captcha when the captcha
// policy of the flow's client shows one on every sign-in, or when the
// lockout demands one for the account; without it such a sign-in is told
// it needs a step this page cannot offer.
func WithCaptcha(c CaptchaChecker, policyFor PolicySource) LoginOption {
	return func(h *loginHandler) { h.captcha, h.policies = c, policyFor }
}

// WithLinks lets the sign-in mail the links that unblock it: the
// verification link to an account whose address is still to verify, and
// a reset link when force_reset_if_invalid is "email". At most
// linksPerHour such mails go to one account, so repeated sign-ins cannot
// flood an inbox. The page then also offers "Forgot your password?" when
// links can be mailed, and "Create an account" when the flow's
// application allows registration.
func WithLinks(links *Links, budget RateBudget, policyFor PolicySource) LoginOption {
	return func(h *loginHandler) { h.links, h.budget, h.policies = links, budget, policyFor }
}

// WithPasskeys offers signing in with a passkey alone on the form, where
// the flow's mfa policy allows it (mfa.passwordless).
func WithPasskeys(f *SecondFactors, policyFor PolicySource) LoginOption {
	return func(h *loginHandler) { h.factors, h.policies = f, policyFor }
}

// linksPerHour bounds the mails a sign-in sends to one account.
const linksPerHour = 3

// NewLoginHandler serves the sign-in form of a login flow: GET
// /login?flow=ID shows it, POST /login runs the password through the
// pipeline under the flow's client policy and, on success, completes the
// flow, starts a session and sends the browser on. GET /login without a
// flow starts one that returns to return_to (a local path, "/" by
// default). apps may be nil; the page then names no application.
func NewLoginHandler(p *Pipeline, s *Sessions, flows *Flows, csrf *CSRF, r *templates.Renderer, apps AppFinder, logger *slog.Logger, opts ...LoginOption) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &loginHandler{pipeline: p, sessions: s, flows: flows, csrf: csrf, pages: r, apps: apps, logger: logger}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *loginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.get(w, r)
	case http.MethodPost:
		h.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

func (h *loginHandler) get(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("flow")
	if id == "" {
		loginURL, err := h.flows.Start(r.Context(), w, r, FlowSpec{ReturnTo: r.URL.Query().Get("return_to")})
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		seeOther(w, loginURL)
		return
	}
	fl, err := h.flows.Pending(r, id)
	if err != nil {
		h.flowError(w, r, err)
		return
	}
	if fl.Stage != "" {
		seeOther(w, stageURL(fl))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	page := templates.LoginPage{Username: fl.LoginHint}
	if h.captcha != nil && h.captchaPolicy(fl).Shows(policies.CaptchaOnLogin, false) {
		h.showCaptcha(w, r, fl, page, "")
		return
	}
	h.show(w, r, http.StatusOK, fl, page)
}

func (h *loginHandler) captchaPolicy(fl *storage.LoginFlow) policies.Captcha {
	return h.policies(fl.ClientID).Captcha
}

// Captcha messages.
const (
	captchaDemandedMessage = "There have been several failed sign-ins to this account. To continue, type the digits in the picture as well as your password."
	captchaWrongMessage    = "The digits did not match the picture. Type the ones in the new picture."
	captchaMissingMessage  = "Type the digits in the picture as well as your password."
)

// showCaptcha renders the form with a fresh captcha. The page's content
// security policy is widened for this page only, by what the captcha needs
// (data: audio for the built-in one, the provider's origins otherwise).
func (h *loginHandler) showCaptcha(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, page templates.LoginPage, captchaError string) {
	widget, err := drawCaptcha(r.Context(), w, h.captcha, h.captchaPolicy(fl), policies.CaptchaOnLogin, captchaError)
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	page.Captcha = widget
	h.show(w, r, http.StatusOK, fl, page)
}

// checkCaptcha judges the captcha answer the form carries, if any: solved
// says it was right, answered that there was one.
func (h *loginHandler) checkCaptcha(r *http.Request, fl *storage.LoginFlow) (solved, answered bool, err error) {
	if h.captcha == nil {
		return false, false, nil
	}
	return solveCaptcha(r, h.captcha, h.captchaPolicy(fl), policies.CaptchaOnLogin)
}

// show renders the form of flow fl. The application is looked up on every
// showing, the one after a wrong password too, so the page keeps naming it.
func (h *loginHandler) show(w http.ResponseWriter, r *http.Request, status int, fl *storage.LoginFlow, page templates.LoginPage) {
	page.CSRFToken = h.csrf.Token(w, r)
	page.Flow = fl.ID
	if h.links.CanMail() {
		page.ForgotURL = ForgotPath + "?" + url.Values{"flow": {fl.ID}}.Encode()
	}
	// Registration that must mail a verification link is offered only
	// when mail can go.
	if h.policies != nil {
		if reg := h.policies(fl.ClientID).Registration; reg.Enabled && (!reg.RequireEmailVerification || h.links.CanMail()) {
			page.RegisterURL = RegisterPath + "?" + url.Values{"flow": {fl.ID}}.Encode()
		}
	}
	if h.apps != nil && fl.ClientID != "" {
		if app, ok := h.apps.AppForClient(r.Context(), fl.ClientID); ok {
			page.App = app
		}
	}
	if h.passwordless(fl) {
		options, ceremony, err := h.factors.BeginPasswordless(r.Context())
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		page.Passkey = &templates.PasskeyCeremony{Mode: "get", Options: string(options), Ceremony: ceremony, Button: "Sign in with a passkey"}
	}
	h.pages.Render(w, status, "login.html", page)
}

// flowError answers a request for a flow that cannot go on. Each case is
// one a person reaches by going back, waiting, or switching browsers, so
// the page says what to do rather than what broke.
func (h *loginHandler) flowError(w http.ResponseWriter, r *http.Request, err error) {
	page := templates.ErrorPage{
		Title:     "This sign-in page has expired",
		Message:   "Sign-in pages stay valid for a short while, in the browser that opened them.",
		Advice:    "Go back to the application you were signing in to and start again.",
		RequestID: w.Header().Get(requestIDHeader),
	}
	switch {
	case errors.Is(err, ErrFlowUsed):
		page.Title = "This sign-in is already complete"
		page.Message = "This sign-in page has already been used. For your security, each one works only once."
		page.Detail = "login flow already completed"
	case errors.Is(err, ErrFlowOtherBrowser):
		page.Message = "This sign-in page was opened in another browser, so it cannot be used here."
		page.Detail = "login flow is bound to another browser"
	case errors.Is(err, ErrFlowNotFound):
		page.Detail = "login flow unknown or expired"
	default:
		h.internalError(w, r, err)
		return
	}
	h.logger.WarnContext(r.Context(), "login flow refused", slog.String("reason", page.Detail))
	h.pages.Render(w, http.StatusBadRequest, "error.html", page)
}

func (h *loginHandler) submit(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxLoginBody, h.csrf, h.pages, h.logger, "login") {
		return
	}
	// A native client posting the form names its device the way it does on
	// the token endpoint; the middleware cannot read a body.
	r = r.WithContext(reqinfo.WithDevice(r.Context(), r.PostFormValue(reqinfo.DeviceIDParam)))
	ctx := r.Context()
	fl, err := h.flows.Pending(r, r.PostFormValue("flow"))
	if err != nil {
		h.flowError(w, r, err)
		return
	}
	if fl.Stage != "" {
		// The password was proven already; what is left is that step.
		seeOther(w, stageURL(fl))
		return
	}
	if r.PostFormValue("webauthn_response") != "" && h.passwordless(fl) {
		h.submitPasskey(w, r, fl)
		return
	}
	username := r.PostFormValue("username")
	solved, answered, err := h.checkCaptcha(r, fl)
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	captchaError := ""
	if answered && !solved {
		captchaError = captchaWrongMessage
	}
	if h.captcha != nil && !solved && h.captchaPolicy(fl).Shows(policies.CaptchaOnLogin, false) {
		// Shown on every sign-in: no answer, no password check.
		if captchaError == "" {
			captchaError = captchaMissingMessage
		}
		h.showCaptcha(w, r, fl, templates.LoginPage{Username: username}, captchaError)
		return
	}
	out, err := h.pipeline.PasswordLogin(ctx, Attempt{
		Username:      username,
		Password:      r.PostFormValue("password"),
		ClientID:      fl.ClientID,
		CaptchaSolved: solved,
		WantMFA:       wantsMFA(fl),
	})
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if out.Decision.Verdict == Challenge && out.Decision.Challenge == ChallengeCaptcha && h.captcha != nil {
		// The lockout demands a captcha for this account, whatever the
		// captcha policy's show_on: it has no other way forward.
		if captchaError == "" {
			captchaError = captchaDemandedMessage
		}
		h.showCaptcha(w, r, fl, templates.LoginPage{Username: username}, captchaError)
		return
	}
	if stage := challengeStage(out.Decision); stage != "" && out.proven != nil {
		// The password is right and a step remains before the sign-in
		// completes (a password change, a second factor, an enrolment):
		// the flow keeps the proof, and that step is its next page.
		if err := h.flows.stage(ctx, fl, out.proven.ID, stage); err != nil {
			h.flowError(w, r, err)
			return
		}
		seeOther(w, stageURL(fl))
		return
	}
	if out.Decision.Verdict == Challenge {
		// No challenge (captcha, second factor) can be answered on this
		// page yet; saying so is better than a misleading "wrong password".
		h.show(w, r, http.StatusOK, fl, templates.LoginPage{Error: challengeMessage, Username: username})
		return
	}
	if !out.OK && out.proven != nil && h.links != nil {
		if msg, handled := h.mailToUnblock(w, r, out); handled {
			if msg != "" {
				h.show(w, r, http.StatusOK, fl, templates.LoginPage{Error: msg, Username: username})
			}
			return
		}
	}
	if !out.OK {
		h.show(w, r, http.StatusOK, fl, templates.LoginPage{Error: FailureMessage(out.Decision), Username: username})
		return
	}
	proof := Proof{ClientID: fl.ClientID, AMR: []string{AMRPassword}, ACR: policies.ACRPassword}
	if err := h.flows.finish(w, r, h.sessions, fl, out.User, proof); err != nil {
		if errors.Is(err, ErrTooManySessions) {
			h.retry(w, r, fl, templates.LoginPage{Error: tooManySessionsMessage, Username: username})
			return
		}
		h.flowError(w, r, err)
		return
	}
	seeOther(w, nextURL(fl))
}

// passwordless says the form of fl offers a passkey alone.
func (h *loginHandler) passwordless(fl *storage.LoginFlow) bool {
	if !h.factors.Passkeys() || h.policies == nil {
		return false
	}
	pol := h.policies(fl.ClientID).MFA
	return pol.Passwordless && pol.Allows(storage.FactorWebAuthn)
}

// msgPasskeyRefused answers a passkey that signs nobody in: the same for
// a passkey of no account and one that failed verification.
const msgPasskeyRefused = "That passkey could not sign you in. Try again, or sign in with your password."

// submitPasskey signs in with a discoverable passkey alone. A verified
// passkey with user verification is two factors in one (something held,
// and the PIN or biometrics that unlocked it).
func (h *loginHandler) submitPasskey(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow) {
	out, err := h.pipeline.Passwordless(r.Context(), fl.ClientID, r.PostFormValue("ceremony"), []byte(r.PostFormValue("webauthn_response")))
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if !out.OK {
		msg := msgPasskeyRefused
		if out.Decision.Reason != ReasonBadSecondFactor && out.Decision.Reason != ReasonUnknownUser {
			msg = FailureMessage(out.Decision)
		}
		h.show(w, r, http.StatusOK, fl, templates.LoginPage{Error: msg})
		return
	}
	if err := h.flows.finish(w, r, h.sessions, fl, out.User, SecondFactorProof(fl.ClientID, storage.FactorWebAuthn, false)); err != nil {
		if errors.Is(err, ErrTooManySessions) {
			h.retry(w, r, fl, templates.LoginPage{Error: tooManySessionsMessage})
			return
		}
		h.flowError(w, r, err)
		return
	}
	seeOther(w, nextURL(fl))
}

// challengeStage is the flow stage that answers a challenge the login
// page cannot (a captcha it can): "" for none.
func challengeStage(d Decision) string {
	if d.Verdict != Challenge {
		return ""
	}
	switch d.Challenge {
	case ChallengePasswordChange:
		return storage.FlowStagePasswordChange
	case ChallengeSecondFactor:
		return storage.FlowStageSecondFactor
	case ChallengeMFAEnrollment:
		return storage.FlowStageMFAEnrollment
	}
	return ""
}

// wantsMFA says the authorization request of fl asks for a second factor
// in acr_values.
func wantsMFA(fl *storage.LoginFlow) bool {
	if fl.Request == "" {
		return false
	}
	q, err := url.ParseQuery(fl.Request)
	if err != nil {
		return false
	}
	return slices.Contains(strings.Fields(q.Get("acr_values")), policies.ACRMultiFactor)
}

// Messages of a proven sign-in that a mailed link must unblock.
const (
	msgVerifySent     = "Confirm your email address to finish signing in: we have sent a link to %s. Follow it, then sign in again."
	msgResetSent      = "Your password no longer meets the password rules. We have sent a link to %s to choose a new one."
	msgVerifyNoMail   = "Your email address must be confirmed before you can sign in, and we cannot send the confirmation mail just now. Try again later or contact your administrator."
	msgResetNoMail    = "Your password no longer meets the password rules and must be reset. Contact your administrator."
	msgLinksThrottled = "We have already sent you a link several times in the last hour. Use the newest one, or try again later."
)

// mailToUnblock answers a sign-in whose password was right but which a
// mailed link must unblock (an address to verify, a password to reset by
// mail): it sends the link, at most linksPerHour an hour to one account,
// and returns the message to show. Saying where the mail went reveals
// nothing: the password was proven. handled is false for other refusals.
func (h *loginHandler) mailToUnblock(w http.ResponseWriter, r *http.Request, out Outcome) (string, bool) {
	kind, noMail, sent := "", "", ""
	switch out.Decision.Reason {
	case ReasonEmailUnverified:
		kind, noMail, sent = LinkVerifyEmail, msgVerifyNoMail, msgVerifySent
	case ReasonPasswordInvalid:
		kind, noMail, sent = LinkReset, msgResetNoMail, msgResetSent
	default:
		return "", false
	}
	u := out.proven
	if !h.links.CanMail() || u.Email == "" {
		return noMail, true
	}
	ctx := r.Context()
	ok, _, err := h.budget.TakeRateBudget(ctx, "links:user:"+u.ID, time.Hour, linksPerHour)
	if err != nil {
		h.internalError(w, r, err)
		return "", true
	}
	if !ok {
		return msgLinksThrottled, true
	}
	queued, err := h.links.Send(ctx, u, kind, Actor{ID: u.ID})
	if err != nil {
		h.internalError(w, r, err)
		return "", true
	}
	if !queued {
		return noMail, true
	}
	return fmt.Sprintf(sent, maskEmail(u.Email)), true
}

// maskEmail shows enough of an address for its owner to recognise it
// ("a•••@example.com") and not all of it to whoever looks at the screen.
func maskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 1 {
		return "your email address"
	}
	first, _ := utf8.DecodeRuneInString(email)
	return string(first) + "•••" + email[at:]
}

// stageURL is the page of the step fl waits on.
func stageURL(fl *storage.LoginFlow) string {
	path := "/login"
	switch fl.Stage {
	case storage.FlowStagePasswordChange:
		path = ForcedChangePath
	case storage.FlowStageSecondFactor:
		path = SecondFactorPath
	case storage.FlowStageMFAEnrollment:
		path = MFAEnrollPath
	}
	return path + "?" + url.Values{"flow": {fl.ID}}.Encode()
}

// retry shows the form again on a fresh flow for the same request, after
// a sign-in that completed fl but could not start a session.
func (h *loginHandler) retry(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, page templates.LoginPage) {
	spec := FlowSpec{ClientID: fl.ClientID, ReturnTo: fl.ReturnTo, LoginHint: fl.LoginHint}
	if fl.Request != "" {
		q, err := url.ParseQuery(fl.Request)
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		spec.Request = q
	}
	loginURL, err := h.flows.Start(r.Context(), w, r, spec)
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	next, _ := url.Parse(loginURL)
	h.show(w, r, http.StatusOK, &storage.LoginFlow{ID: next.Query().Get("flow"), ClientID: fl.ClientID}, page)
}

func (h *loginHandler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), h.logger, "login", err)
	if unavailableError(h.pages, w, err) {
		return
	}
	showError(h.pages, w, http.StatusInternalServerError, "Something went wrong",
		"Signing in failed because of a problem on our side. Please try again later.")
}

// logFailure logs an infrastructure failure. Full hashing memory is load,
// shed as designed, and comes in floods: a warning, not an error each.
func logFailure(ctx context.Context, logger *slog.Logger, msg string, err error) {
	level := slog.LevelError
	if errors.Is(err, hashing.ErrBusy) {
		level = slog.LevelWarn
	}
	logger.LogAttrs(ctx, level, msg, slog.Any("error", err))
}

// FailureMessage is what a person is told about a refused sign-in: the one
// "invalid username or password" for every wrong credential, unknown
// account or refusal that must not be explained, and for a lock what it
// is and until when, so they know to wait rather than guess again.
func FailureMessage(d Decision) string {
	until := "until an administrator unlocks it"
	if !d.Until.IsZero() {
		until = "until " + d.Until.UTC().Format("15:04 UTC on 2 January 2006")
	}
	switch d.Reason {
	case ReasonLocked:
		if d.Until.IsZero() {
			return "This account is locked after too many failed sign-ins. Ask an administrator to unlock it."
		}
		return "This account is locked after too many failed sign-ins, " + until + ". Try again then, or ask an administrator to unlock it."
	case ReasonDeviceLocked:
		return "Too many failed sign-ins to this account from this device: signing in here is blocked " + until + ". You can still sign in from another device."
	case ReasonIPBlocked:
		return "Too many failed sign-ins from your network: signing in from it is blocked " + until + "."
	case ReasonIPRule:
		// Decided before the account is looked up: saying so reveals
		// nothing, and spares a person resetting a right password.
		return "Signing in from your network is not allowed. Contact your administrator if you need access from here."
	}
	return loginFailedMessage
}

// unavailableError answers a request the server cannot handle right now
// (hashing memory full, database down) with 503 and Retry-After, and
// reports whether err was such; nothing was decided about the person's
// password, so the page must not say it was wrong.
func unavailableError(pages *templates.Renderer, w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, hashing.ErrBusy):
		w.Header().Set("Retry-After", "1")
		showError(pages, w, http.StatusServiceUnavailable, "Too busy right now",
			"Many people are signing in at this moment. Wait a few seconds, then send the form again.")
	case errors.Is(err, captcha.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		showError(pages, w, http.StatusServiceUnavailable, "Temporarily unavailable",
			"We cannot check the picture answer for a moment. Wait a few seconds, then send the form again.")
	case errors.Is(err, storage.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		showError(pages, w, http.StatusServiceUnavailable, "Temporarily unavailable",
			"We cannot check passwords for a moment. Wait a few seconds, then send the form again.")
	default:
		return false
	}
	return true
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
	// PostgreSQL refuses NUL and invalid UTF-8 in text; such input is the
	// sender's mistake on every backend, answered before it goes further.
	for name, vs := range r.PostForm {
		for _, v := range vs {
			if !storage.StorableText(v) {
				showError(pages, w, http.StatusBadRequest, "Bad request",
					"The form field "+strconv.Quote(strings.ToValidUTF8(name, "?"))+" holds characters that cannot be accepted.")
				return false
			}
		}
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
