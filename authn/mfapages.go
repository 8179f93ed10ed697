package authn

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// Pages of the second factor.
const (
	// SecondFactorPath is the second-factor step of a login flow
	// (Challenge{second_factor}).
	SecondFactorPath = "/login/mfa"
	// MFAEnrollPath is the enrolment step of a login flow whose mfa policy
	// requires a factor the account does not have yet.
	MFAEnrollPath = "/login/mfa/enroll"
	// maxFactorBody bounds a second-factor form: a code, or a WebAuthn
	// answer (a few kilobytes of base64url), and the hidden fields.
	maxFactorBody = 64 << 10
)

// Messages of the second-factor pages. The password is proven by then, so
// they may say what was wrong.
const (
	msgBadCode        = "That code is not right, or it was used already. Enter the newest code your app shows, or one of your recovery codes."
	msgBadPasskey     = "That passkey could not be verified. Try again, or use a code instead."
	msgMFAThrottled   = "Too many codes were tried. Wait a few minutes, then try again."
	msgEnrollBadCode  = "That code does not match. Check that the app shows the account you just added, and enter its newest code."
	msgEnrollPasskey  = "The passkey could not be added. Try again, or use an authenticator app instead."
	msgEnrollRequired = "Your organisation requires a second step when you sign in. Set one up to continue."
	msgEnrollGrace    = "Your organisation will soon require a second step when you sign in. Set one up now, or skip it for the time being."
	msgCodesFirst     = "Two-step verification is on."
	msgCodeSpent      = "You signed in with a recovery code. You have %d left."
	msgCodesRunOut    = " Make new ones from your account page before you run out."
)

// mfaPages serves the second-factor and enrolment steps of login flows.
type mfaPages struct {
	pipeline *Pipeline
	factors  *SecondFactors
	flows    *Flows
	sessions *Sessions
	users    UserReader
	csrf     *CSRF
	pages    *templates.Renderer
	policies PolicySource
	logger   *slog.Logger
}

// NewMFAPages returns the handlers of SecondFactorPath and MFAEnrollPath.
func NewMFAPages(p *Pipeline, factors *SecondFactors, flows *Flows, s *Sessions, users UserReader, csrf *CSRF,
	r *templates.Renderer, policySource PolicySource, logger *slog.Logger) (secondFactor, enroll http.Handler) {
	if logger == nil {
		logger = slog.Default()
	}
	m := &mfaPages{pipeline: p, factors: factors, flows: flows, sessions: s, users: users, csrf: csrf, pages: r,
		policies: policySource, logger: logger}
	return http.HandlerFunc(m.serveSecondFactor), http.HandlerFunc(m.serveEnroll)
}

// staged loads a flow waiting on stage and its account, answering the
// request itself otherwise.
func (m *mfaPages) staged(w http.ResponseWriter, r *http.Request, id, stage string) (*storage.LoginFlow, *storage.User, bool) {
	fl, err := m.flows.Pending(r, id)
	if err != nil {
		m.flowError(w, r, err)
		return nil, nil, false
	}
	if fl.Stage != stage {
		seeOther(w, stageURL(fl))
		return nil, nil, false
	}
	u, err := m.users.User(r.Context(), fl.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		m.flowError(w, r, ErrFlowNotFound)
		return nil, nil, false
	}
	if err != nil {
		m.internalError(w, r, err)
		return nil, nil, false
	}
	return fl, u, true
}

func (m *mfaPages) serveSecondFactor(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fl, u, ok := m.staged(w, r, r.URL.Query().Get("flow"), storage.FlowStageSecondFactor)
		if ok {
			m.showVerify(w, r, fl, u, r.URL.Query().Get("method") == "passkey", "")
		}
	case http.MethodPost:
		m.submitSecondFactor(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(m.pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

// offerPasskey fills what a second-factor page offers u under pol:
// whether there is an authenticator app to take a code from, a link to
// use a passkey instead when u has one the policy accepts, and with
// passkey, the ceremony itself. here is the
// page's URL, the way back to the code.
func (s *SecondFactors) offerPasskey(ctx context.Context, page *templates.MFAVerifyPage, u *storage.User, pol policies.MFA, here string, passkey bool) error {
	fs, err := s.confirmed(ctx, u.ID)
	if err != nil {
		return err
	}
	page.HasApp = pol.Allows(storage.FactorTOTP) &&
		slices.ContainsFunc(fs, func(f storage.MFAFactor) bool { return f.Type == storage.FactorTOTP })
	if !s.Passkeys() || !pol.Allows(storage.FactorWebAuthn) ||
		!slices.ContainsFunc(fs, func(f storage.MFAFactor) bool { return f.Type == storage.FactorWebAuthn }) {
		return nil
	}
	page.PasskeyURL = here + "&method=passkey"
	if !passkey {
		return nil
	}
	options, ceremony, err := s.BeginPasskey(ctx, u)
	if err != nil {
		return err
	}
	page.Passkey = &templates.PasskeyCeremony{Mode: "get", Options: string(options), Ceremony: ceremony, Button: "Use passkey"}
	page.CodeURL = here
	return nil
}

// factorAnswer reads what a second-factor form sent into a: a code, or a
// passkey's answer to the ceremony it names.
func factorAnswer(r *http.Request, a *FactorAttempt) (passkey bool) {
	a.Code = r.PostFormValue("code")
	if resp := r.PostFormValue("webauthn_response"); resp != "" {
		a.Ceremony, a.Response = r.PostFormValue("ceremony"), []byte(resp)
		return true
	}
	return false
}

func (m *mfaPages) showVerify(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, u *storage.User, passkey bool, errMsg string) {
	here := SecondFactorPath + "?" + url.Values{"flow": {fl.ID}}.Encode()
	page := templates.MFAVerifyPage{Action: SecondFactorPath, Flow: fl.ID, CSRFToken: m.csrf.Token(w, r), Username: u.Username, Error: errMsg}
	if err := m.factors.offerPasskey(r.Context(), &page, u, m.policies(fl.ClientID).MFA, here, passkey); err != nil {
		m.internalError(w, r, err)
		return
	}
	m.pages.Render(w, http.StatusOK, "mfa_verify.html", page)
}

func (m *mfaPages) submitSecondFactor(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxFactorBody, m.csrf, m.pages, m.logger, "second factor") {
		return
	}
	ctx := r.Context()
	fl, u, ok := m.staged(w, r, r.PostFormValue("flow"), storage.FlowStageSecondFactor)
	if !ok {
		return
	}
	a := FactorAttempt{UserID: u.ID, ClientID: fl.ClientID}
	passkey := factorAnswer(r, &a)
	out, err := m.pipeline.SecondFactor(ctx, a)
	if err != nil {
		m.internalError(w, r, err)
		return
	}
	if !out.OK {
		m.showVerify(w, r, fl, u, passkey, factorFailureMessage(out.Decision, passkey))
		return
	}
	// The flow started at this step for a signed-in person stepping up
	// had its password proven by the session it came from.
	proof := SecondFactorProof(fl.ClientID, out.Factor, true)
	if err := m.finish(w, r, fl, u, proof); err != nil {
		return
	}
	if out.Factor == FactorRecoveryCode {
		msg := fmt.Sprintf(msgCodeSpent, out.RecoveryCodesLeft)
		if out.RecoveryCodesLeft <= 3 {
			msg += msgCodesRunOut
		}
		m.pages.Render(w, http.StatusOK, "notice.html", templates.NoticePage{Title: "Signed in", Message: msg,
			LinkURL: nextURL(fl), LinkText: "Continue"})
		return
	}
	seeOther(w, nextURL(fl))
}

// factorFailureMessage is what a person is told of a refused factor: a
// lock as FailureMessage says it, else what was wrong with the code.
func factorFailureMessage(d Decision, passkey bool) string {
	switch d.Reason {
	case ReasonBadSecondFactor:
		if passkey {
			return msgBadPasskey
		}
		return msgBadCode
	case ReasonMFAThrottled:
		return msgMFAThrottled
	}
	return FailureMessage(d)
}

// finish completes fl for u and starts its session, answering the
// request itself when that fails (the error is then returned).
func (m *mfaPages) finish(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, u *storage.User, proof Proof) error {
	err := m.flows.finish(w, r, m.sessions, fl, u, proof)
	if errors.Is(err, ErrTooManySessions) {
		showError(m.pages, w, http.StatusConflict, "Signed in on too many devices", tooManySessionsMessage)
	} else if err != nil {
		m.flowError(w, r, err)
	}
	return err
}

func (m *mfaPages) serveEnroll(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fl, u, ok := m.staged(w, r, r.URL.Query().Get("flow"), storage.FlowStageMFAEnrollment)
		if !ok {
			return
		}
		step, done := m.enrolStep(w, r, fl, u)
		if done {
			return
		}
		m.showEnroll(w, r, fl, u, step, r.URL.Query().Get("method") == "passkey", "", "")
	case http.MethodPost:
		m.submitEnroll(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(m.pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

// enrolStep decides again what the policy asks of u: the account's
// standing may have changed, or an administrator relaxed the rule. done
// says the request was answered (refused, or the flow moved on).
func (m *mfaPages) enrolStep(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, u *storage.User) (policies.MFAStep, bool) {
	ctx := r.Context()
	if d, err := m.pipeline.Standing(ctx, u, fl.ClientID); err != nil {
		m.internalError(w, r, err)
		return 0, true
	} else if d.Verdict == Deny {
		showError(m.pages, w, http.StatusForbidden, "You cannot sign in right now", FailureMessage(d))
		return 0, true
	}
	step, err := m.pipeline.MFAStep(ctx, u, fl.ClientID, wantsMFA(fl))
	if err != nil {
		m.internalError(w, r, err)
		return 0, true
	}
	switch step {
	case policies.MFAEnrollOptional, policies.MFAEnrollRequired:
		return step, false
	case policies.MFAVerify:
		// A factor was enrolled meanwhile (another tab): use it.
		if err := m.flows.advance(ctx, fl, storage.FlowStageSecondFactor); err != nil {
			m.flowError(w, r, err)
			return 0, true
		}
		seeOther(w, stageURL(fl))
		return 0, true
	}
	if err := m.finish(w, r, fl, u, Proof{ClientID: fl.ClientID, AMR: []string{AMRPassword}, ACR: policies.ACRPassword}); err == nil {
		seeOther(w, nextURL(fl))
	}
	return 0, true
}

func (m *mfaPages) showEnroll(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, u *storage.User, step policies.MFAStep, passkey bool, factorID, errMsg string) {
	ctx := r.Context()
	pol := m.policies(fl.ClientID).MFA
	here := MFAEnrollPath + "?" + url.Values{"flow": {fl.ID}}.Encode()
	page := templates.MFAEnrollPage{Action: MFAEnrollPath, Flow: fl.ID, CSRFToken: m.csrf.Token(w, r), Username: u.Username,
		Error: errMsg, Intro: msgEnrollRequired}
	if step == policies.MFAEnrollOptional {
		page.CanSkip, page.Intro = true, msgEnrollGrace
		if start, err := m.factors.store.MFAGraceStart(ctx, u.ID, m.pipeline.now()); err == nil && pol.GracePeriod > 0 {
			page.SkipUntil = start.Add(pol.GracePeriod.D()).UTC().Format("2 January 2006 at 15:04 UTC")
		}
	}
	if err := fillEnrolment(ctx, m.factors, &page, pol, u, passkey, factorID, here); err != nil {
		m.internalError(w, r, err)
		return
	}
	m.pages.Render(w, http.StatusOK, "mfa_enroll.html", page)
}

// fillEnrolment puts the enrolment of the chosen method on page: the
// passkey ceremony, or the TOTP setup (factorID's again after a wrong
// code, a new one otherwise), with a link to the other method where the
// policy allows both.
func fillEnrolment(ctx context.Context, factors *SecondFactors, page *templates.MFAEnrollPage, pol policies.MFA, u *storage.User, passkey bool, factorID, here string) error {
	passkeys := factors.Passkeys() && pol.Allows(storage.FactorWebAuthn)
	totp := pol.Allows(storage.FactorTOTP)
	if passkey && passkeys || !totp && passkeys {
		options, ceremony, err := factors.BeginPasskeyRegistration(ctx, u, true)
		if err != nil {
			return err
		}
		page.Passkey = &templates.PasskeyCeremony{Mode: "create", Options: string(options), Ceremony: ceremony, Button: "Create passkey"}
		if totp {
			page.TOTPURL = here
		}
		return nil
	}
	if !totp {
		return fmt.Errorf("enrol second factor of user %s: no factor the policy allows can be enrolled here", u.ID)
	}
	var (
		en  *TOTPEnrolment
		err error
	)
	if factorID != "" {
		en, err = factors.PendingTOTP(ctx, u, factorID)
	}
	if factorID == "" || errors.Is(err, ErrNoFactorEnrolled) {
		en, err = factors.StartTOTP(ctx, u)
	}
	if err != nil {
		return err
	}
	page.TOTP = &templates.TOTPSetup{FactorID: en.FactorID, Secret: en.Secret, URI: en.URI, QRCode: template.URL(en.QRCode)}
	if passkeys {
		page.PasskeyURL = here + "&method=passkey"
	}
	return nil
}

func (m *mfaPages) submitEnroll(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxFactorBody, m.csrf, m.pages, m.logger, "mfa enrolment") {
		return
	}
	ctx := r.Context()
	fl, u, ok := m.staged(w, r, r.PostFormValue("flow"), storage.FlowStageMFAEnrollment)
	if !ok {
		return
	}
	step, done := m.enrolStep(w, r, fl, u)
	if done {
		return
	}
	actor := Actor{ID: u.ID}
	var (
		res    *EnrolResult
		passed bool
		err    error
	)
	method := r.PostFormValue("method")
	switch method {
	case "skip":
		if step != policies.MFAEnrollOptional {
			m.showEnroll(w, r, fl, u, step, false, "", msgEnrollRequired)
			return
		}
		m.logger.InfoContext(ctx, "mfa enrolment skipped inside the grace period", slog.String("user_id", u.ID))
		if err := m.finish(w, r, fl, u, Proof{ClientID: fl.ClientID, AMR: []string{AMRPassword}, ACR: policies.ACRPassword}); err == nil {
			seeOther(w, nextURL(fl))
		}
		return
	case "passkey":
		res, passed, err = m.factors.FinishPasskeyRegistration(ctx, u, r.PostFormValue("ceremony"),
			[]byte(r.PostFormValue("webauthn_response")), r.PostFormValue("name"), actor)
	default:
		method = "totp"
		res, passed, err = m.factors.ConfirmTOTP(ctx, u, r.PostFormValue("factor_id"), r.PostFormValue("code"), r.PostFormValue("name"), actor)
	}
	if errors.Is(err, ErrNoFactorEnrolled) {
		m.showEnroll(w, r, fl, u, step, false, "", "This setup has expired. Scan the new QR code below.")
		return
	}
	if err != nil {
		m.internalError(w, r, err)
		return
	}
	if !passed {
		msg := msgEnrollBadCode
		if method == "passkey" {
			msg = msgEnrollPasskey
		}
		m.showEnroll(w, r, fl, u, step, method == "passkey", r.PostFormValue("factor_id"), msg)
		return
	}
	// Setting the factor up proved it: the sign-in has both.
	if err := m.finish(w, r, fl, u, SecondFactorProof(fl.ClientID, res.Factor.Type, true)); err != nil {
		return
	}
	showRecoveryCodes(m.pages, w, res.RecoveryCodes, msgCodesFirst, nextURL(fl))
}

// showRecoveryCodes shows new recovery codes once, or goes straight on
// when there are none to show.
func showRecoveryCodes(pages *templates.Renderer, w http.ResponseWriter, codes []string, intro, next string) {
	if len(codes) == 0 {
		seeOther(w, next)
		return
	}
	pages.Render(w, http.StatusOK, "mfa_recovery_codes.html", templates.RecoveryCodesPage{Intro: intro, Codes: codes, ContinueURL: next})
}

func (m *mfaPages) flowError(w http.ResponseWriter, r *http.Request, err error) {
	lh := &loginHandler{pages: m.pages, logger: m.logger}
	lh.flowError(w, r, err)
}

func (m *mfaPages) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), m.logger, "second factor", err)
	if unavailableError(m.pages, w, err) {
		return
	}
	showError(m.pages, w, http.StatusInternalServerError, "Something went wrong",
		"Signing in failed because of a problem on our side. Please try again later.")
}
