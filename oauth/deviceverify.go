package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// Messages of the verification page.
const (
	msgUserCodeWrong     = "That code is not valid, or it has expired. Check the code your device shows and try again."
	msgUserCodeThrottled = "Too many codes were tried from your network. Wait a few minutes, then try again."
	msgDeviceDecided     = "This code has already been used. If you did not use it, start again on your device."
)

// freshSignIn is how recent a sign-in counts as the one the verification
// page just sent the person through.
const freshSignIn = 2 * time.Minute

// maxDeviceForm bounds the verification form: a code, a choice and a
// CSRF token.
const maxDeviceForm = 8 << 10

// deviceVerification is GET and POST /device: the person types the code
// their device shows (or arrives with it in verification_uri_complete),
// signs in through the ordinary login flow under the device client's
// policy, sees the application and what it asks for, and approves or
// denies. Every look-up of a code, right or wrong, spends the address's
// budget (device_flow.user_code_attempts, kept in the database), so codes
// cannot be guessed at any speed on any instance; a wrong one is an audit
// event.
func (p *Provider) deviceVerification(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	typed := r.URL.Query().Get("user_code")
	decision := ""
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxDeviceForm)
		if err := r.ParseForm(); err != nil {
			p.errorPage(w, r, http.StatusBadRequest, templates.ErrorPage{Title: "Bad request", Message: "The form could not be read."})
			return
		}
		if !p.cfg.CSRF.Verify(r) {
			p.errorPage(w, r, http.StatusForbidden, templates.ErrorPage{Title: "Form expired",
				Message: "This form has expired or was not sent from this site. Go back, reload the page and try again."})
			return
		}
		typed, decision = r.PostFormValue("user_code"), r.PostFormValue("decision")
	}
	page := templates.DevicePage{CSRFToken: p.cfg.CSRF.Token(w, r), UserCode: strings.TrimSpace(typed)}
	if typed == "" {
		p.cfg.Templates.Render(w, http.StatusOK, "device.html", page)
		return
	}
	d, normalized, msg, err := p.lookUpUserCode(r, typed)
	if err != nil {
		p.deviceError(w, r, err)
		return
	}
	if msg != "" {
		page.Error = msg
		p.cfg.Templates.Render(w, http.StatusOK, "device.html", page)
		return
	}
	page.UserCode = FormatUserCode(normalized)
	client, err := p.cfg.Store.GetClient(ctx, d.ClientID)
	if err != nil {
		p.deviceError(w, r, err)
		return
	}
	c, ok := client.(*storage.Client)
	if !ok {
		p.deviceError(w, r, errors.New("unexpected client type"))
		return
	}
	user, bs, err := p.cfg.Browser.Current(r)
	if err != nil {
		p.deviceError(w, r, err)
		return
	}
	if !p.deviceSessionGood(r, c.ID, user, bs) {
		// Signing in is the device client's: its policy, its MFA rule.
		loginURL, err := p.cfg.Flows.StartReturn(ctx, w, r, c.ID,
			DeviceVerificationPath+"?"+url.Values{"user_code": {page.UserCode}}.Encode())
		if err != nil {
			p.deviceError(w, r, err)
			return
		}
		http.Redirect(w, r, loginURL, http.StatusSeeOther)
		return
	}
	if decision != "approve" && decision != "deny" {
		page.Confirm, page.App, page.ClientID = true, appOf(c), c.ID
		page.Username = user.Username
		page.Scopes = p.scopeInfo(grantableScopes(d.Scopes, user))
		p.cfg.Templates.Render(w, http.StatusOK, "device.html", page)
		return
	}
	approve := decision == "approve"
	err = p.cfg.Devices.DecideDeviceCode(ctx, p.hashUserCode(normalized), approve, user.ID, bs.AuthTime, bs.AMR, bs.ACR, p.cfg.Now())
	if errors.Is(err, storage.ErrAlreadyUsed) || errors.Is(err, storage.ErrNotFound) {
		page.Error = msgDeviceDecided
		p.cfg.Templates.Render(w, http.StatusOK, "device.html", page)
		return
	}
	if err != nil {
		p.deviceError(w, r, err)
		return
	}
	typ := audit.TypeDeviceCodeApproved
	if !approve {
		typ = audit.TypeDeviceCodeDenied
	}
	p.record(ctx, audit.Event{Type: typ, Actor: user.ID, UserID: user.ID, ClientID: c.ID, Outcome: audit.OutcomeSuccess,
		Details: map[string]any{"scope": strings.Join(d.Scopes, " ")}})
	page.Done, page.Approved, page.App = true, approve, appOf(c)
	p.cfg.Templates.Render(w, http.StatusOK, "device.html", page)
}

// lookUpUserCode spends one attempt of the address's budget and finds
// the pending code typed names. msg is what to tell the person when there
// is none.
func (p *Provider) lookUpUserCode(r *http.Request, typed string) (*storage.DeviceCode, string, string, error) {
	ctx := r.Context()
	ip := reqinfo.From(ctx).IPString()
	pol := p.cfg.Policies.For("").DeviceFlow
	ok, _, err := p.cfg.Devices.TakeRateBudget(ctx, "device_code:ip:"+ip, pol.UserCodeAttempts.Period.D(), int64(pol.UserCodeAttempts.Max))
	if err != nil {
		return nil, "", "", err
	}
	refuse := func(reason, msg string) (*storage.DeviceCode, string, string, error) {
		p.record(ctx, audit.Event{Type: audit.TypeDeviceCodeRefused, Outcome: audit.OutcomeFailure, Reason: reason})
		return nil, "", msg, nil
	}
	if !ok {
		return refuse("throttled", msgUserCodeThrottled)
	}
	normalized, shaped := NormalizeUserCode(typed)
	if !shaped {
		return refuse("malformed", msgUserCodeWrong)
	}
	d, err := p.cfg.Devices.DeviceCodeByUserCode(ctx, p.hashUserCode(normalized), p.cfg.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return refuse("unknown", msgUserCodeWrong)
	}
	if err != nil {
		return nil, "", "", err
	}
	return d, normalized, "", nil
}

// deviceSessionGood says the browser's session may approve a device for
// clientID: it exists, is within the client's session limits, and reached
// a second factor when the client's mfa policy requires one.
func (p *Provider) deviceSessionGood(r *http.Request, clientID string, u *storage.User, bs *storage.BrowserSession) bool {
	if u == nil || bs == nil {
		return false
	}
	pol := p.cfg.Policies.For(clientID)
	now := p.cfg.Now()
	// A session started for another application may have skipped this
	// one's second factor; a sign-in just now was this client's, through
	// its policy (an account inside its enrolment grace may have none).
	req := policies.AuthRequest{Reauthenticated: now.Sub(bs.AuthTime) < freshSignIn}
	if pol.MFA.Requirement == policies.MFARequired && !req.Reauthenticated {
		req.ACRValues = []string{policies.ACRMultiFactor}
	}
	return pol.SessionSatisfies(now, req, sessionState(u, bs)).Outcome == policies.SessionOK
}

func (p *Provider) deviceError(w http.ResponseWriter, r *http.Request, err error) {
	p.cfg.Logger.ErrorContext(r.Context(), "device verification", "err", err.Error())
	if unavailable(err) {
		w.Header().Set("Retry-After", "5")
		p.errorPage(w, r, http.StatusServiceUnavailable, templates.ErrorPage{Title: "Temporarily unavailable",
			Message: "We cannot check device codes for a moment. Wait a few seconds, then try again."})
		return
	}
	p.errorPage(w, r, http.StatusInternalServerError, templates.ErrorPage{Title: "Something went wrong",
		Message: "The code could not be checked because of a problem on our side. Please try again later."})
}
