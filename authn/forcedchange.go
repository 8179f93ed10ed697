package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// ForcedChangePath is the step of a login flow that demands a new password
// before the sign-in completes (Challenge{password_change}).
const ForcedChangePath = "/login/password"

// Why a sign-in demands a new password, as the page says it.
const (
	msgForcedByAdmin = "An administrator has asked you to choose a new password."
	msgForcedExpired = "Your password has expired."
	msgForcedInvalid = "Your password no longer meets the password rules."
)

// UserReader loads an account by id.
type UserReader interface {
	User(ctx context.Context, id string) (*storage.User, error)
}

type forcedChangeHandler struct {
	pipeline *Pipeline
	flows    *Flows
	sessions *Sessions
	accounts *Accounts
	users    UserReader
	csrf     *CSRF
	pages    *templates.Renderer
	policies PolicySource
	now      func() time.Time
	logger   *slog.Logger
}

// NewForcedChangeHandler serves ForcedChangePath: GET shows the new-password
// form of a login flow whose password was proven but must be changed,
// POST changes it (every password rule, and never the same password
// again) and completes the sign-in where it was going. The flow holds the
// proof, so the current password is not asked again; a flow that has not
// reached this step is sent back to the sign-in form.
func NewForcedChangeHandler(p *Pipeline, flows *Flows, s *Sessions, accounts *Accounts, users UserReader, csrf *CSRF, r *templates.Renderer,
	policySource PolicySource, now func() time.Time, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &forcedChangeHandler{pipeline: p, flows: flows, sessions: s, accounts: accounts, users: users, csrf: csrf, pages: r,
		policies: policySource, now: now, logger: logger}
}

func (h *forcedChangeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fl, u, ok := h.staged(w, r, r.URL.Query().Get("flow"))
		if ok {
			h.show(w, r, fl, u, "")
		}
	case http.MethodPost:
		h.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

// staged loads the flow and its account if the flow waits on a password
// change, answering the request itself otherwise.
func (h *forcedChangeHandler) staged(w http.ResponseWriter, r *http.Request, id string) (*storage.LoginFlow, *storage.User, bool) {
	fl, err := h.flows.Pending(r, id)
	if err != nil {
		h.flowError(w, r, err)
		return nil, nil, false
	}
	if fl.Stage != storage.FlowStagePasswordChange {
		seeOther(w, "/login?"+url.Values{"flow": {fl.ID}}.Encode())
		return nil, nil, false
	}
	u, err := h.users.User(r.Context(), fl.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		h.flowError(w, r, ErrFlowNotFound) // deleted meanwhile
		return nil, nil, false
	}
	if err != nil {
		h.internalError(w, r, err)
		return nil, nil, false
	}
	return fl, u, true
}

func (h *forcedChangeHandler) show(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, u *storage.User, errMsg string) {
	w.Header().Set("Cache-Control", "no-store")
	h.pages.Render(w, http.StatusOK, "password.html", templates.PasswordPage{
		Username: u.Username, Error: errMsg, MinLength: h.accounts.PasswordPolicy().MinLength,
		CSRFToken: h.csrf.Token(w, r), Flow: fl.ID, Reason: h.reason(u),
	})
}

// reason says why the change is demanded, from the account as it is now.
func (h *forcedChangeHandler) reason(u *storage.User) string {
	pol := h.policies("").Password
	changed := u.CreatedAt
	if u.PasswordChangedAt != nil {
		changed = *u.PasswordChangedAt
	}
	switch {
	case u.PasswordMustChange:
		return msgForcedByAdmin
	case pol.Expired(changed, h.now()):
		return msgForcedExpired
	default:
		return msgForcedInvalid
	}
}

func (h *forcedChangeHandler) submit(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxPasswordBody, h.csrf, h.pages, h.logger, "forced password change") {
		return
	}
	ctx := r.Context()
	fl, u, ok := h.staged(w, r, r.PostFormValue("flow"))
	if !ok {
		return
	}
	// The account's standing may have changed since the password was
	// proven: what a sign-in refuses, this step refuses too.
	if d, err := h.pipeline.Standing(ctx, u, fl.ClientID); err != nil {
		h.internalError(w, r, err)
		return
	} else if d.Verdict == Deny {
		showError(h.pages, w, http.StatusForbidden, "You cannot sign in right now", FailureMessage(d))
		return
	}
	next := r.PostFormValue("new_password")
	if msg := newPasswordProblem(h.accounts.PasswordPolicy(), u, "", next, r.PostFormValue("confirm_password")); msg != "" {
		h.show(w, r, fl, u, msg)
		return
	}
	_, err := h.accounts.ForcedChange(ctx, u.ID, next)
	if fe, ok := fielderr.As(err); ok {
		h.show(w, r, fl, u, fieldSentence(fe))
		return
	}
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	// The new password is in place; a second factor or an enrolment
	// may still stand before the session.
	after, err := h.pipeline.AfterPassword(ctx, u, fl.ClientID, wantsMFA(fl))
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if stage := challengeStage(after); stage != "" {
		if err := h.flows.advance(ctx, fl, stage); err != nil {
			h.flowError(w, r, err)
			return
		}
		seeOther(w, stageURL(fl))
		return
	}
	proof := Proof{ClientID: fl.ClientID, AMR: []string{AMRPassword}, ACR: policies.ACRPassword}
	if err := h.flows.finish(w, r, h.sessions, fl, u, proof); errors.Is(err, ErrTooManySessions) {
		showError(h.pages, w, http.StatusConflict, "Password changed", "Your password has been changed, but "+
			"you are signed in on too many devices to sign in here. Sign out elsewhere and sign in again with your new password.")
		return
	} else if err != nil {
		h.flowError(w, r, err)
		return
	}
	h.logger.InfoContext(ctx, "forced password change completed the sign-in", slog.String("user_id", u.ID))
	seeOther(w, nextURL(fl))
}

func (h *forcedChangeHandler) flowError(w http.ResponseWriter, r *http.Request, err error) {
	lh := &loginHandler{pages: h.pages, logger: h.logger}
	lh.flowError(w, r, err)
}

func (h *forcedChangeHandler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), h.logger, "forced password change", err)
	if unavailableError(h.pages, w, err) {
		return
	}
	showError(h.pages, w, http.StatusInternalServerError, "Something went wrong",
		"Your password could not be changed because of a problem on our side. Please try again later.")
}
