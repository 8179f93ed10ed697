package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// A login flow is one sign-in in progress, held on the server (like Hydra's
// login challenge) rather than carried through the browser: the entry
// point that needs a person to sign in (the authorization endpoint, a page
// that needs a session) starts one, the login page works on it by id
// (/login?flow=ID), and completing it hands back what was asked for.
//
// A flow is bound to the browser that started it by a cookie whose hash
// the flow stores, so a flow id that leaks (in a Referer, a log, a shared
// link) is useless elsewhere. It completes once: of parallel completions
// exactly one succeeds, and a completed flow cannot be signed in to again.

// FlowStore is what Flows needs from storage.
type FlowStore interface {
	CreateLoginFlow(ctx context.Context, f *storage.LoginFlow) error
	LoginFlow(ctx context.Context, id string) (*storage.LoginFlow, error)
	CompleteLoginFlow(ctx context.Context, id, userID string, amr []string, at time.Time) error
	ResumeLoginFlow(ctx context.Context, id string, at time.Time) error
	StageLoginFlow(ctx context.Context, id, userID, stage string) error
	AdvanceLoginFlow(ctx context.Context, id, userID, from, to string) error
}

var _ FlowStore = (*storage.Store)(nil)

// Flow errors. Each is something a person can run into by going back, by
// waiting, or by opening a link in another browser; the login page says
// so and offers to start again.
var (
	ErrFlowNotFound     = errors.New("login flow not found or expired")
	ErrFlowUsed         = errors.New("login flow already used")
	ErrFlowOtherBrowser = errors.New("login flow belongs to another browser")
)

const (
	// FlowTTL is how long a person has to finish signing in.
	FlowTTL = 30 * time.Minute
	// resumeWindow bounds the time between completing a flow and the
	// entry point taking it back: a redirect, not a pause.
	resumeWindow   = 5 * time.Minute
	flowCookieName = "portcullis_flow"
	// flowCookieSecure is the cookie's name on HTTPS: __Host- forbids a
	// Domain attribute, so a sibling subdomain cannot plant it.
	flowCookieSecure = "__Host-portcullis_flow"
)

// FlowSpec is what an entry point asks a sign-in for.
type FlowSpec struct {
	// ClientID is the application the sign-in is for; its policy judges
	// the attempt. Empty for a sign-in to Portcullis itself.
	ClientID string
	// Request is the authorization request to resume, or nil.
	Request url.Values
	// ReturnTo is the local path to go to afterwards when there is no
	// Request; unsafe values become "/".
	ReturnTo string
	// LoginHint prefills the username (OIDC login_hint).
	LoginHint string
	// stage and userID start a flow past the password, for a signed-in
	// person stepping up.
	stage, userID string
}

// Flows starts, finds and completes login flows.
type Flows struct {
	store    FlowStore
	secure   bool
	now      func() time.Time
	factors  *SecondFactors
	policies PolicySource
}

// NewFlows returns Flows. secure selects the __Host- cookie and its Secure
// attribute; now is the clock.
func NewFlows(store FlowStore, secure bool, now func() time.Time) *Flows {
	if now == nil {
		now = time.Now
	}
	return &Flows{store: store, secure: secure, now: now}
}

// CookieName is the name of the cookie that binds flows to a browser.
func (f *Flows) CookieName() string { return f.cookieName() }

func (f *Flows) cookieName() string {
	if f.secure {
		return flowCookieSecure
	}
	return flowCookieName
}

// Start records a new flow bound to this browser (setting the binding
// cookie when the browser has none) and returns the login page's URL.
func (f *Flows) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, spec FlowSpec) (string, error) {
	binding := ""
	if ck, err := r.Cookie(f.cookieName()); err == nil && validSecret(ck.Value) {
		binding = ck.Value
	} else {
		binding = randomSecret()
		http.SetCookie(w, &http.Cookie{
			Name: f.cookieName(), Value: binding, Path: "/",
			HttpOnly: true, Secure: f.secure, SameSite: http.SameSiteLaxMode,
		})
	}
	now := f.now().UTC()
	fl := &storage.LoginFlow{
		ID:             randomSecret(),
		BrowserBinding: sessionID(binding),
		ClientID:       spec.ClientID,
		LoginHint:      truncateUTF8(spec.LoginHint, maxLoggedUsername),
		CreatedAt:      now,
		ExpiresAt:      now.Add(FlowTTL),
		Stage:          spec.stage,
		UserID:         spec.userID,
	}
	if spec.Request != nil {
		fl.Request = spec.Request.Encode()
	} else {
		fl.ReturnTo = safeReturnTo(spec.ReturnTo)
	}
	if err := f.store.CreateLoginFlow(ctx, fl); err != nil {
		return "", fmt.Errorf("start login flow: %w", err)
	}
	return "/login?" + url.Values{"flow": {fl.ID}}.Encode(), nil
}

// StartAuthorize is Start for an authorization request.
func (f *Flows) StartAuthorize(ctx context.Context, w http.ResponseWriter, r *http.Request, clientID string, request url.Values, loginHint string) (string, error) {
	return f.Start(ctx, w, r, FlowSpec{ClientID: clientID, Request: request, LoginHint: loginHint})
}

// StartReturn is Start for a page of this server that needs a sign-in
// for clientID's policy and then comes back to returnTo.
func (f *Flows) StartReturn(ctx context.Context, w http.ResponseWriter, r *http.Request, clientID, returnTo string) (string, error) {
	return f.Start(ctx, w, r, FlowSpec{ClientID: clientID, ReturnTo: returnTo})
}

// Pending returns the flow id names if this browser may still sign in to it.
func (f *Flows) Pending(r *http.Request, id string) (*storage.LoginFlow, error) {
	fl, err := f.bound(r, id)
	if err != nil {
		return nil, err
	}
	if fl.CompletedAt != nil {
		return nil, ErrFlowUsed
	}
	return fl, nil
}

// complete marks the flow done by userID. Only one caller wins.
func (f *Flows) complete(ctx context.Context, fl *storage.LoginFlow, userID string, amr []string) error {
	err := f.store.CompleteLoginFlow(ctx, fl.ID, userID, amr, f.now())
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return ErrFlowUsed
	}
	if err != nil {
		return fmt.Errorf("complete login flow: %w", err)
	}
	return nil
}

// finish completes fl for u and starts u's session on s with proof. The
// flow is completed first: of parallel submissions of one flow only the
// winner goes on to start a session. The error is ErrTooManySessions, a
// flow error, or an infrastructure failure, for the caller to answer.
func (f *Flows) finish(w http.ResponseWriter, r *http.Request, s *Sessions, fl *storage.LoginFlow, u *storage.User, proof Proof) error {
	ctx := r.Context()
	if err := f.complete(ctx, fl, u.ID, proof.AMR); err != nil {
		return err
	}
	_, err := s.Start(ctx, w, r, u, proof)
	return err
}

// stage moves fl, whose password userID has just proved, to the step
// stage (storage.FlowStagePasswordChange). Only one caller wins.
func (f *Flows) stage(ctx context.Context, fl *storage.LoginFlow, userID, stage string) error {
	err := f.store.StageLoginFlow(ctx, fl.ID, userID, stage)
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return ErrFlowUsed
	}
	if err != nil {
		return fmt.Errorf("stage login flow: %w", err)
	}
	fl.Stage, fl.UserID = stage, userID
	return nil
}

// advance moves fl, staged for its account, from its stage to the next
// one (a password change done, a second factor next). Only one caller wins.
func (f *Flows) advance(ctx context.Context, fl *storage.LoginFlow, to string) error {
	err := f.store.AdvanceLoginFlow(ctx, fl.ID, fl.UserID, fl.Stage, to)
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return ErrFlowUsed
	}
	if err != nil {
		return fmt.Errorf("advance login flow: %w", err)
	}
	fl.Stage = to
	return nil
}

// StartStepUp sends a signed-in person whose session is below the
// assurance an authorization request asks for (acr_values) to a second
// factor: a flow that starts at that step, for userID, which completes
// with a new session at the higher level and resumes the request. ok is
// false when the account has no second factor the client's policy
// allows: acr_values are voluntary, so the request goes on as it is.
func (f *Flows) StartStepUp(ctx context.Context, w http.ResponseWriter, r *http.Request, clientID string, request url.Values, userID string) (string, bool, error) {
	if f.factors == nil {
		return "", false, nil
	}
	fs, err := f.factors.confirmed(ctx, userID)
	if err != nil {
		return "", false, err
	}
	if len(f.policies(clientID).MFA.Usable(kinds(fs))) == 0 {
		return "", false, nil
	}
	loginURL, err := f.Start(ctx, w, r, FlowSpec{ClientID: clientID, Request: request, stage: storage.FlowStageSecondFactor, userID: userID})
	if err != nil {
		return "", false, err
	}
	return strings.Replace(loginURL, "/login?", SecondFactorPath+"?", 1), true, nil
}

// WithSecondFactors lets StartStepUp ask for second factors under the
// mfa policy of each client.
func (f *Flows) WithSecondFactors(sf *SecondFactors, policies PolicySource) *Flows {
	f.factors, f.policies = sf, policies
	return f
}

// Resume takes back a completed flow from this browser, once, and returns
// the authorization request it was started for. The caller knows the
// person has just signed in for this request (prompt=login and max_age are
// satisfied).
func (f *Flows) Resume(ctx context.Context, r *http.Request, id string) (clientID string, request url.Values, err error) {
	fl, err := f.bound(r, id)
	if err != nil {
		return "", nil, err
	}
	if fl.CompletedAt == nil || fl.ResumedAt != nil || fl.Request == "" || f.now().Sub(*fl.CompletedAt) > resumeWindow {
		return "", nil, ErrFlowUsed
	}
	if err := f.store.ResumeLoginFlow(ctx, fl.ID, f.now()); errors.Is(err, storage.ErrAlreadyUsed) {
		return "", nil, ErrFlowUsed
	} else if err != nil {
		return "", nil, fmt.Errorf("resume login flow: %w", err)
	}
	q, err := url.ParseQuery(fl.Request)
	if err != nil {
		return "", nil, fmt.Errorf("resume login flow: stored request: %w", err)
	}
	return fl.ClientID, q, nil
}

// bound loads a live flow and checks it belongs to this browser.
func (f *Flows) bound(r *http.Request, id string) (*storage.LoginFlow, error) {
	if !validSecret(id) {
		return nil, ErrFlowNotFound
	}
	fl, err := f.store.LoginFlow(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrFlowNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load login flow: %w", err)
	}
	ck, err := r.Cookie(f.cookieName())
	if err != nil || !validSecret(ck.Value) ||
		subtle.ConstantTimeCompare([]byte(sessionID(ck.Value)), []byte(fl.BrowserBinding)) != 1 {
		return nil, ErrFlowOtherBrowser
	}
	return fl, nil
}

// ResumePath is where the browser goes once a flow that holds an
// authorization request completes; the endpoint there calls Resume.
const ResumePath = "/oauth2/auth"

// nextURL is where the browser goes once fl completed: back to the
// authorization endpoint to resume the request, or to the local path.
func nextURL(fl *storage.LoginFlow) string {
	if fl.Request != "" {
		return ResumePath + "?" + url.Values{"login_flow": {fl.ID}}.Encode()
	}
	return safeReturnTo(fl.ReturnTo)
}
