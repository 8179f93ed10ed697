package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// The signed-in person's second factors.
const (
	AccountMFAPath   = "/account/mfa"
	AccountTOTPPath  = "/account/mfa/totp"
	AccountPasskey   = "/account/mfa/passkey"
	AccountStepUpURL = "/account/mfa/verify"
)

// Messages of the account's second-factor pages.
const (
	msgFactorAdded    = "Added. Signing in now asks for it after your password."
	msgFactorRemoved  = "Removed."
	msgFactorRenamed  = "Renamed."
	msgStepUpDone     = "Confirmed. You can go ahead."
	msgMFAOff         = "Two-step verification is turned off for this service."
	msgNewCodes       = "Your new recovery codes are ready. The old ones no longer work."
	msgStepUpRemove   = "To remove a sign-in method, confirm it is you first."
	msgStepUpCodes    = "To make new recovery codes, confirm it is you first."
	msgStepUpEnrol    = "To add a sign-in method, confirm it is you first."
	msgStepUpPassword = "To change your password, confirm it is you first."
	msgFactorNotFound = "That sign-in method was not found. It may have been removed already."
)

// accountMFA serves the signed-in person's second factors: the list with
// rename and remove, enrolment of an authenticator app or a passkey, new
// recovery codes, and the step-up check that removal and new codes need
// (a second factor younger than session.reauth_max_age).
type accountMFA struct {
	pipeline *Pipeline
	factors  *SecondFactors
	sessions *Sessions
	csrf     *CSRF
	pages    *templates.Renderer
	policies PolicySource
	now      func() time.Time
	logger   *slog.Logger
}

// NewAccountMFA returns the handler of AccountMFAPath and the pages under
// it; mount it at AccountMFAPath and AccountMFAPath + "/".
func NewAccountMFA(p *Pipeline, factors *SecondFactors, s *Sessions, csrf *CSRF, r *templates.Renderer, policySource PolicySource,
	now func() time.Time, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	a := &accountMFA{pipeline: p, factors: factors, sessions: s, csrf: csrf, pages: r, policies: policySource, now: now, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AccountMFAPath, a.list)
	mux.HandleFunc("POST "+AccountMFAPath, a.change)
	mux.HandleFunc("GET "+AccountTOTPPath, a.enrolTOTP)
	mux.HandleFunc("POST "+AccountTOTPPath, a.enrolSubmit)
	mux.HandleFunc("GET "+AccountPasskey, a.enrolPasskey)
	mux.HandleFunc("POST "+AccountPasskey, a.enrolSubmit)
	mux.HandleFunc("GET "+AccountStepUpURL, a.stepUpPage)
	mux.HandleFunc("POST "+AccountStepUpURL, a.stepUpSubmit)
	return mux
}

// identity returns the signed-in person, sending anyone else to sign in
// and come back.
func (a *accountMFA) identity(w http.ResponseWriter, r *http.Request) (*Identity, bool) {
	id, err := a.sessions.Current(r)
	if err != nil {
		a.internalError(w, r, err)
		return nil, false
	}
	if id == nil {
		back := r.URL.Path
		if r.Method != http.MethodGet {
			back = AccountMFAPath
		}
		seeOther(w, "/login?"+url.Values{"return_to": {back}}.Encode())
		return nil, false
	}
	return id, true
}

func (a *accountMFA) policy() policies.MFA { return a.policies("").MFA }

func (a *accountMFA) list(w http.ResponseWriter, r *http.Request) {
	id, ok := a.identity(w, r)
	if ok {
		a.show(w, r, id, r.URL.Query().Get("done"), "")
	}
}

// doneMessage is what the list page reports after a redirect (?done=).
func doneMessage(done string) string {
	switch done {
	case "added":
		return msgFactorAdded
	case "removed":
		return msgFactorRemoved
	case "renamed":
		return msgFactorRenamed
	case "stepped_up":
		return msgStepUpDone
	}
	return ""
}

func (a *accountMFA) show(w http.ResponseWriter, r *http.Request, id *Identity, done, errMsg string) {
	ctx := r.Context()
	pol := a.policy()
	fs, err := a.factors.Enrolled(ctx, id.User.ID)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	page := templates.MFAAccountPage{Username: id.User.Username, CSRFToken: a.csrf.Token(w, r), Error: errMsg,
		Success: doneMessage(done), Requirement: pol.Requirement}
	for _, f := range fs {
		v := templates.MFAFactorView{ID: f.ID, Name: f.Name, Kind: factorKind(f.Type), Created: f.CreatedAt.UTC().Format("2 Jan 2006")}
		if f.LastUsedAt != nil {
			v.LastUsed = f.LastUsedAt.UTC().Format("2 Jan 2006 15:04 UTC")
		}
		page.Factors = append(page.Factors, v)
	}
	if len(fs) > 0 {
		if page.RecoveryLeft, err = a.factors.RecoveryCodesLeft(ctx, id.User.ID); err != nil {
			a.internalError(w, r, err)
			return
		}
		page.RecoveryCodes = true
	}
	if pol.Requirement == policies.MFAOff {
		page.Error = msgMFAOff
	} else {
		if pol.Allows(storage.FactorTOTP) {
			page.TOTPURL = AccountTOTPPath
		}
		if a.factors.Passkeys() && pol.Allows(storage.FactorWebAuthn) {
			page.PasskeyURL = AccountPasskey
		}
	}
	a.pages.Render(w, http.StatusOK, "mfa_account.html", page)
}

func factorKind(t string) string {
	if t == storage.FactorWebAuthn {
		return "Passkey or security key"
	}
	return "Authenticator app"
}

// steppedUp says the session of id passed a second factor recently
// enough for action; if not, it sends the browser to the step-up page.
func (a *accountMFA) steppedUp(w http.ResponseWriter, r *http.Request, id *Identity, action string) bool {
	ok, err := a.factors.SteppedUp(r.Context(), id, a.policies("").Session, action, a.now())
	if err != nil {
		a.internalError(w, r, err)
		return false
	}
	if !ok {
		seeOther(w, StepUpURL(action))
	}
	return ok
}

// StepUpURL is the step-up page for action.
func StepUpURL(action string) string {
	return AccountStepUpURL + "?" + url.Values{"action": {action}}.Encode()
}

// SteppedUp says whether the session of id may do action under pol at
// now: an account without a factor has only its password to offer, which
// the session proved; one with a factor needs a second-factor check
// younger than the policy allows for action.
func (s *SecondFactors) SteppedUp(ctx context.Context, id *Identity, pol policies.Session, action string, now time.Time) (bool, error) {
	fs, err := s.confirmed(ctx, id.User.ID)
	if err != nil {
		return false, err
	}
	if len(fs) == 0 {
		return true, nil
	}
	var last time.Time
	if id.Session.SecondFactorAt != nil {
		last = *id.Session.SecondFactorAt
	}
	return !pol.SecondFactorStale(action, last, now), nil
}

func (a *accountMFA) change(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxFactorBody, a.csrf, a.pages, a.logger, "mfa settings") {
		return
	}
	id, ok := a.identity(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	factorID := r.PostFormValue("factor_id")
	switch r.PostFormValue("op") {
	case "rename":
		err := a.factors.Rename(ctx, id.User.ID, factorID, r.PostFormValue("name"))
		if errors.Is(err, storage.ErrNotFound) {
			a.show(w, r, id, "", msgFactorNotFound)
			return
		}
		if err != nil {
			a.internalError(w, r, err)
			return
		}
		seeOther(w, AccountMFAPath+"?done=renamed")
	case "remove":
		if !a.steppedUp(w, r, id, policies.ActionMFARemoval) {
			return
		}
		err := a.factors.Remove(ctx, id.User.ID, factorID, Actor{ID: id.User.ID})
		if errors.Is(err, storage.ErrNotFound) {
			a.show(w, r, id, "", msgFactorNotFound)
			return
		}
		if err != nil {
			a.internalError(w, r, err)
			return
		}
		seeOther(w, AccountMFAPath+"?done=removed")
	case "recovery_codes":
		if !a.steppedUp(w, r, id, policies.ActionRecoveryCodes) {
			return
		}
		codes, err := a.factors.RegenerateRecoveryCodes(ctx, id.User.ID, Actor{ID: id.User.ID})
		if err != nil {
			a.internalError(w, r, err)
			return
		}
		showRecoveryCodes(a.pages, w, codes, msgNewCodes, AccountMFAPath)
	default:
		showError(a.pages, w, http.StatusBadRequest, "Bad request", "The form asked for something this page does not do.")
	}
}

// enrolAllowed answers the request itself and returns false when the
// policy turns MFA off or the session must step up first.
func (a *accountMFA) enrolAllowed(w http.ResponseWriter, r *http.Request, id *Identity) bool {
	if a.policy().Requirement == policies.MFAOff {
		a.show(w, r, id, "", msgMFAOff)
		return false
	}
	return a.steppedUp(w, r, id, policies.ActionMFAEnrollment)
}

func (a *accountMFA) enrolTOTP(w http.ResponseWriter, r *http.Request) {
	id, ok := a.identity(w, r)
	if ok && a.enrolAllowed(w, r, id) {
		a.showEnrol(w, r, id, false, "", "")
	}
}

func (a *accountMFA) enrolPasskey(w http.ResponseWriter, r *http.Request) {
	id, ok := a.identity(w, r)
	if ok && a.enrolAllowed(w, r, id) {
		a.showEnrol(w, r, id, true, "", "")
	}
}

func (a *accountMFA) showEnrol(w http.ResponseWriter, r *http.Request, id *Identity, passkey bool, factorID, errMsg string) {
	action := AccountTOTPPath
	if passkey {
		action = AccountPasskey
	}
	page := templates.MFAEnrollPage{Action: action, CSRFToken: a.csrf.Token(w, r), Username: id.User.Username, Error: errMsg,
		CancelURL: AccountMFAPath}
	if err := fillEnrolment(r.Context(), a.factors, &page, a.policy(), id.User, passkey, factorID, AccountTOTPPath); err != nil {
		a.internalError(w, r, err)
		return
	}
	// The two methods have their own pages here.
	if page.PasskeyURL != "" {
		page.PasskeyURL = AccountPasskey
	}
	a.pages.Render(w, http.StatusOK, "mfa_enroll.html", page)
}

func (a *accountMFA) enrolSubmit(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxFactorBody, a.csrf, a.pages, a.logger, "mfa enrolment") {
		return
	}
	id, ok := a.identity(w, r)
	if !ok || !a.enrolAllowed(w, r, id) {
		return
	}
	ctx := r.Context()
	actor := Actor{ID: id.User.ID}
	passkey := r.PostFormValue("method") == "passkey"
	var (
		res    *EnrolResult
		passed bool
		err    error
	)
	if passkey {
		res, passed, err = a.factors.FinishPasskeyRegistration(ctx, id.User, r.PostFormValue("ceremony"),
			[]byte(r.PostFormValue("webauthn_response")), r.PostFormValue("name"), actor)
	} else {
		res, passed, err = a.factors.ConfirmTOTP(ctx, id.User, r.PostFormValue("factor_id"), r.PostFormValue("code"), r.PostFormValue("name"), actor)
	}
	if errors.Is(err, ErrNoFactorEnrolled) {
		a.showEnrol(w, r, id, passkey, "", "This setup has expired. Scan the new QR code below.")
		return
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	if !passed {
		msg := msgEnrollBadCode
		if passkey {
			msg = msgEnrollPasskey
		}
		a.showEnrol(w, r, id, passkey, r.PostFormValue("factor_id"), msg)
		return
	}
	// Setting up the factor proved it, on this session.
	if err := a.factors.store.MarkSecondFactor(ctx, id.Session.ID, a.now()); err != nil {
		a.logger.WarnContext(ctx, "record second factor on session", slog.String("user_id", id.User.ID), slog.Any("error", err))
	}
	showRecoveryCodes(a.pages, w, res.RecoveryCodes, msgCodesFirst, AccountMFAPath+"?done=added")
}

// stepUpPurpose says, on the step-up page, what the check is for.
func stepUpPurpose(action string) string {
	switch action {
	case policies.ActionMFARemoval:
		return msgStepUpRemove
	case policies.ActionRecoveryCodes:
		return msgStepUpCodes
	case policies.ActionMFAEnrollment:
		return msgStepUpEnrol
	case policies.ActionPasswordChange:
		return msgStepUpPassword
	}
	return "Confirm it is you to continue."
}

func (a *accountMFA) stepUpPage(w http.ResponseWriter, r *http.Request) {
	id, ok := a.identity(w, r)
	if ok {
		a.showStepUp(w, r, id, r.URL.Query().Get("action"), r.URL.Query().Get("method") == "passkey", "")
	}
}

func (a *accountMFA) showStepUp(w http.ResponseWriter, r *http.Request, id *Identity, action string, passkey bool, errMsg string) {
	ctx := r.Context()
	here := AccountStepUpURL + "?" + url.Values{"action": {action}}.Encode()
	page := templates.MFAVerifyPage{Action: AccountStepUpURL, StepUpAction: action, Purpose: stepUpPurpose(action),
		CSRFToken: a.csrf.Token(w, r), Username: id.User.Username, Error: errMsg, CancelURL: AccountMFAPath}
	if err := a.factors.offerPasskey(ctx, &page, id.User, a.policy(), here, passkey); err != nil {
		a.internalError(w, r, err)
		return
	}
	a.pages.Render(w, http.StatusOK, "mfa_verify.html", page)
}

func (a *accountMFA) stepUpSubmit(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxFactorBody, a.csrf, a.pages, a.logger, "mfa step-up") {
		return
	}
	id, ok := a.identity(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	// The way back is always the account page, so nothing but the
	// action stepped up for comes with the form.
	action := r.PostFormValue("action")
	fa := FactorAttempt{UserID: id.User.ID, Action: action}
	passkey := factorAnswer(r, &fa)
	if fa.Action == "" {
		fa.Action = "step_up"
	}
	out, err := a.pipeline.SecondFactor(ctx, fa)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	if !out.OK {
		a.showStepUp(w, r, id, action, passkey, factorFailureMessage(out.Decision, passkey))
		return
	}
	if err := a.factors.store.MarkSecondFactor(ctx, id.Session.ID, a.now()); err != nil {
		a.internalError(w, r, err)
		return
	}
	if action == policies.ActionPasswordChange {
		seeOther(w, PasswordPath)
		return
	}
	seeOther(w, AccountMFAPath+"?done=stepped_up")
}

func (a *accountMFA) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), a.logger, "account mfa", err)
	if unavailableError(a.pages, w, err) {
		return
	}
	showError(a.pages, w, http.StatusInternalServerError, "Something went wrong",
		"Your sign-in methods could not be changed because of a problem on our side. Please try again later.")
}
