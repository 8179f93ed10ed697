package oauth

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// Form fields the consent page adds to the authorize request; they are not
// OAuth parameters and are dropped before anything is echoed back.
const (
	consentField = "consent"
	csrfField    = "csrf_token"
)

// ScopeAdmin grants the admin API. A user only receives it when they are an
// administrator, whatever the client may request.
const ScopeAdmin = "admin"

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseOAuthForm(w, r); err != nil {
		// Which parameter to trust is the question, so the redirect URI
		// is not: the error is shown, never redirected.
		p.authorizeError(w, r, nil, err)
		return
	}
	// Back from the login page: the request comes from the login flow,
	// not from the browser, and the person has just signed in for it.
	reauthenticated := false
	if id := r.URL.Query().Get(loginFlowParam); id != "" && r.Method == http.MethodGet {
		if !p.resumeLogin(w, r, id) {
			return
		}
		reauthenticated = true
	}
	ar, err := p.f.NewAuthorizeRequest(ctx, r)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if m := ar.GetResponseMode(); m != fosite.ResponseModeDefault && m != fosite.ResponseModeQuery {
		p.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHint("Only response_mode=query is supported."))
		return
	}
	if err := checkAuthorizable(ar); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	client, ok := ar.GetClient().(*storage.Client)
	if !ok {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithDebug("unexpected client type"))
		return
	}
	form := oauthParams(ar.GetRequestForm())
	req, err := authRequestOf(form)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	req.Reauthenticated = reauthenticated

	user, bs, err := p.cfg.Browser.Current(r)
	if err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	var scopes []string
	consented := false
	if user != nil {
		scopes = grantableScopes(ar.GetRequestedScopes(), user)
		if r.Method == http.MethodPost && r.PostForm.Has(consentField) {
			if !p.cfg.CSRF.Verify(r) {
				p.formExpired(w, r)
				return
			}
			if r.PostForm.Get(consentField) != "allow" {
				p.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The resource owner denied the request."))
				return
			}
			if err := p.cfg.Store.GrantConsent(ctx, user.ID, client.ID, scopes); err != nil {
				p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
				return
			}
			// The consent page was shown only once the session satisfied
			// the request's prompt=login; asking again would loop.
			consented = true
			req.Prompt = slices.DeleteFunc(req.Prompt, func(s string) bool { return s != "none" && s != "consent" })
		} else if req.NeedsConsent, err = p.needsConsent(r, client, user, scopes); err != nil {
			p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
	}

	now := p.cfg.Now()
	pol := p.cfg.Policies.For(client.ID)
	d := pol.SessionSatisfies(now, req, sessionState(user, bs))
	if d.Outcome == policies.SessionStepUp {
		stepURL, ok, err := p.cfg.Flows.StartStepUp(ctx, w, r, client.ID, form, user.ID)
		if err != nil {
			p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
		if ok {
			http.Redirect(w, r, stepURL, http.StatusSeeOther)
			return
		}
		// acr_values are voluntary and the account has no second factor
		// to step up with: the request goes on, and the ID token's acr
		// says what the session reached, for the client to judge.
		p.cfg.Logger.InfoContext(ctx, "requested acr not reached", "client_id", client.ID, "acr", d.ACR)
		req.ACRValues = nil
		d = pol.SessionSatisfies(now, req, sessionState(user, bs))
	}
	if consented && d.Outcome == policies.SessionConsent {
		d.Outcome = policies.SessionOK
	}
	switch d.Outcome {
	case policies.SessionError:
		p.authorizeError(w, r, ar, promptError(d.Error))
		return
	case policies.SessionLogin:
		p.startLogin(w, r, ar, client.ID, form)
		return
	case policies.SessionConsent:
		p.renderConsent(w, r, client, user, scopes, form)
		return
	}

	for _, s := range scopes {
		ar.GrantScope(s)
	}
	for _, a := range ar.GetRequestedAudience() {
		ar.GrantAudience(a)
	}
	session := p.userSession(user, bs, client.ID, ar.GetRequestForm().Get("nonce"))
	facts := grantFacts(session, now)
	if ended, _ := pol.FamilyEnded(now, facts); ended {
		// The login is older than this application's absolute session
		// limit: authenticate again.
		p.startLogin(w, r, ar, client.ID, form)
		return
	}
	resp, err := p.f.NewAuthorizeResponse(withLifetimes(ctx, pol.Lifetimes(now, facts)), ar, session)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	p.f.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// loginFlowParam names the completed login flow an authorization request
// resumes.
const loginFlowParam = "login_flow"

// resumeLogin replaces r's query with the authorization request the login
// flow id was started for. It answers r itself and reports false when the
// flow cannot be resumed: used before, from another browser, expired.
func (p *Provider) resumeLogin(w http.ResponseWriter, r *http.Request, id string) bool {
	_, q, err := p.cfg.Flows.Resume(r.Context(), r, id)
	if err != nil {
		p.cfg.Logger.WarnContext(r.Context(), "login flow not resumed", "err", err.Error())
		p.errorPage(w, r, http.StatusBadRequest, templates.ErrorPage{
			Title:   "This sign-in link has already been used",
			Message: "For your security, each sign-in works once, in the browser that started it, for a short while.",
			Advice:  "Go back to the application and sign in again.",
			Detail:  "login flow cannot be resumed: " + err.Error(),
		})
		return false
	}
	// The person has just signed in: fosite must not refuse the request
	// for prompt=login, whose auth_time check predates the login.
	if prompt := strings.Fields(q.Get("prompt")); len(prompt) > 0 {
		rest := slices.DeleteFunc(prompt, func(s string) bool { return s == "login" || s == "select_account" })
		if len(rest) == 0 {
			q.Del("prompt")
		} else {
			q.Set("prompt", strings.Join(rest, " "))
		}
	}
	r.URL.RawQuery = q.Encode()
	r.Form, r.PostForm = nil, nil
	return true
}

// startLogin sends the browser to the login page with a new login flow
// for this authorization request.
func (p *Provider) startLogin(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, clientID string, form url.Values) {
	loginURL, err := p.cfg.Flows.StartAuthorize(r.Context(), w, r, clientID, form, form.Get("login_hint"))
	if err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	http.Redirect(w, r, loginURL, http.StatusSeeOther)
}

// authRequestOf reads what the session decision needs from the request.
func authRequestOf(form url.Values) (policies.AuthRequest, error) {
	req := policies.AuthRequest{Prompt: strings.Fields(form.Get("prompt")), ACRValues: strings.Fields(form.Get("acr_values"))}
	if raw := form.Get("max_age"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(time.Second) {
			return req, fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative number of seconds.")
		}
		req.MaxAge, req.HasMaxAge = time.Duration(n)*time.Second, true
	}
	return req, nil
}

func sessionState(u *storage.User, bs *storage.BrowserSession) policies.SessionState {
	if u == nil || bs == nil {
		return policies.SessionState{}
	}
	return policies.SessionState{Present: true, AuthTime: bs.AuthTime, LastSeen: bs.LastSeenAt, ACR: bs.ACR, AMR: bs.AMR}
}

// promptError is the OAuth error for a decision answered without a page.
func promptError(code string) error {
	switch code {
	case "login_required":
		return fosite.ErrLoginRequired
	case "consent_required":
		return fosite.ErrConsentRequired
	case "interaction_required":
		return fosite.ErrInteractionRequired
	default:
		return fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other prompt values.")
	}
}

// checkAuthorizable refuses, before anyone is asked for a password, what
// fosite would only refuse after the login: its PKCE and response-type
// handlers run when the response is built. (Unknown scopes and response
// types the client lacks fosite refuses in NewAuthorizeRequest.)
func checkAuthorizable(ar fosite.AuthorizeRequester) error {
	if !ar.GetResponseTypes().ExactOne("code") {
		return fosite.ErrUnsupportedResponseType.WithHint("Only response_type=code is supported.")
	}
	form := ar.GetRequestForm()
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method was given without code_challenge.")
	case challenge == "" && ar.GetClient().IsPublic():
		return fosite.ErrInvalidRequest.WithHint("This client must use PKCE: code_challenge is missing.")
	case challenge != "" && method != "S256":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method must be S256.")
	}
	return nil
}

// grantableScopes is what the user can grant of what was asked (fosite has
// already checked it against the client's allowed scopes).
func grantableScopes(requested []string, u *storage.User) []string {
	out := make([]string, 0, len(requested))
	for _, s := range requested {
		if s == ScopeAdmin && !u.Admin {
			continue
		}
		out = append(out, s)
	}
	return out
}

// needsConsent reports whether u has yet to grant c these scopes
// (prompt=consent is the session decision's to honour).
func (p *Provider) needsConsent(r *http.Request, c *storage.Client, u *storage.User, scopes []string) (bool, error) {
	if c.SkipConsent {
		return false, nil
	}
	granted, err := p.cfg.Store.Consent(r.Context(), u.ID, c.ID)
	if isNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	for _, s := range scopes {
		if !slices.Contains(granted.Scopes, s) {
			return true, nil
		}
	}
	return false, nil
}

func (p *Provider) renderConsent(w http.ResponseWriter, r *http.Request, c *storage.Client, u *storage.User, scopes []string, form url.Values) {
	page := templates.ConsentPage{
		ClientID:  c.ID,
		App:       appOf(c),
		Username:  u.Username,
		Scopes:    p.scopeInfo(scopes),
		CSRFToken: p.cfg.CSRF.Token(w, r),
	}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range form[k] {
			page.Params = append(page.Params, templates.Param{Name: k, Value: v})
		}
	}
	p.cfg.Templates.Render(w, http.StatusOK, "consent.html", page)
}

// userSession builds the fosite session for a signed-in user: the ID token
// claims and what userinfo and JWT access tokens need.
func (p *Provider) userSession(u *storage.User, bs *storage.BrowserSession, clientID, nonce string) *Session {
	now := p.cfg.Now().UTC()
	s := newSession()
	s.Subject = u.ID
	s.Username = u.Username
	s.ClientID = clientID
	s.Admin = u.Admin
	s.Claims.Subject = u.ID
	s.Claims.Issuer = p.cfg.Issuer
	s.Claims.RequestedAt = now
	s.Claims.IssuedAt = now
	s.Claims.Nonce = nonce
	if bs != nil {
		s.BrowserSessionID = bs.ID
		s.Claims.AuthTime = bs.AuthTime.UTC().Truncate(time.Second)
		s.Claims.AuthenticationMethodsReferences = bs.AMR
		s.Claims.AuthenticationContextClassReference = bs.ACR
	} else {
		s.Claims.AuthTime = now.Truncate(time.Second)
	}
	return s
}

// authorizeError shows an error page when the redirect URI is not proven
// (never redirect to an unregistered URI), else redirects the error to the
// client as RFC 6749 4.1.2.1 says.
func (p *Provider) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		p.cfg.Logger.ErrorContext(r.Context(), "authorize", "err", err.Error(), "debug", rfc.DebugField)
	}
	if ar == nil || !ar.IsRedirectURIValid() {
		detail := rfc.ErrorField + ": " + rfc.DescriptionField
		if rfc.HintField != "" {
			detail += " " + rfc.HintField
		}
		page := templates.ErrorPage{
			Title:   "This sign-in link doesn't work",
			Message: "The application that sent you here made a sign-in request that this server cannot accept, so it cannot safely send you back to it.",
			Advice:  "Go back to the application and try again. If it keeps happening, let the application's support team know and give them the technical details below.",
			Detail:  detail,
		}
		if rfc.CodeField >= 500 {
			page.Title = "Something went wrong"
			page.Message = "Something went wrong on our side while signing you in."
			page.Advice = "Wait a moment, then go back to the application and try again."
		}
		p.errorPage(w, r, rfc.CodeField, page)
		return
	}
	p.f.WriteAuthorizeError(r.Context(), w, ar, err)
}

// formExpired is the page for a form posted without a valid CSRF token:
// most often a page left open too long, or a form posted from elsewhere.
func (p *Provider) formExpired(w http.ResponseWriter, r *http.Request) {
	p.errorPage(w, r, http.StatusForbidden, templates.ErrorPage{
		Title:   "This page has expired",
		Message: "For your security, the form you sent could not be accepted. This happens when a page is left open for a long time or was opened from another site.",
		Advice:  "Go back, reload the page and try again.",
		Detail:  "missing or invalid CSRF token, or a cross-origin form post",
	})
}

// errorPage renders page with the response's request id, so that a person
// reporting it gives support what finds the log line.
func (p *Provider) errorPage(w http.ResponseWriter, r *http.Request, status int, page templates.ErrorPage) {
	if status < 400 {
		status = http.StatusBadRequest
	}
	page.RequestID = w.Header().Get("X-Request-Id")
	w.Header().Set("Cache-Control", "no-store")
	p.cfg.Templates.Render(w, status, "error.html", page)
}

// oauthParams drops the consent page's own fields from the request form.
func oauthParams(form url.Values) url.Values {
	out := cloneValues(form)
	out.Del(consentField)
	out.Del(csrfField)
	out.Del(loginFlowParam)
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
