package oauth

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

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
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
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
	form := oauthParams(ar.GetRequestForm())
	prompt := strings.Fields(form.Get("prompt"))

	user, bs, err := p.cfg.Browser.Current(r)
	if err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	if user == nil || slices.Contains(prompt, "login") {
		if slices.Contains(prompt, "none") {
			p.authorizeError(w, r, ar, fosite.ErrLoginRequired)
			return
		}
		p.redirectToLogin(w, r, form, prompt)
		return
	}

	client, ok := ar.GetClient().(*storage.Client)
	if !ok {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithDebug("unexpected client type"))
		return
	}
	scopes := grantableScopes(ar.GetRequestedScopes(), user)

	if r.Method == http.MethodPost && r.PostForm.Has(consentField) {
		if !p.cfg.CSRF.Verify(r) {
			p.formExpired(w, r)
			return
		}
		switch r.PostForm.Get(consentField) {
		case "allow":
			if err := p.cfg.Store.GrantConsent(ctx, user.ID, client.ID, scopes); err != nil {
				p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
				return
			}
		default:
			p.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The resource owner denied the request."))
			return
		}
	} else {
		need, err := p.needsConsent(r, client, user, scopes, prompt)
		if err != nil {
			p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
		if need {
			if slices.Contains(prompt, "none") {
				p.authorizeError(w, r, ar, fosite.ErrConsentRequired)
				return
			}
			p.renderConsent(w, r, client, user, scopes, form)
			return
		}
	}

	for _, s := range scopes {
		ar.GrantScope(s)
	}
	for _, a := range ar.GetRequestedAudience() {
		ar.GrantAudience(a)
	}
	session := p.userSession(user, bs, client.ID, ar.GetRequestForm().Get("nonce"))
	now := p.cfg.Now()
	pol := p.cfg.Policies.For(client.ID)
	facts := grantFacts(session, now)
	if ended, _ := pol.FamilyEnded(now, facts); ended {
		// The login is older than this application's absolute session
		// limit: authenticate again.
		p.redirectToLogin(w, r, form, prompt)
		return
	}
	resp, err := p.f.NewAuthorizeResponse(withLifetimes(ctx, pol.Lifetimes(now, facts)), ar, session)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	p.f.WriteAuthorizeResponse(ctx, w, ar, resp)
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

// redirectToLogin sends the browser to the login page, to come back to this
// authorization request. Coming back, the user has just authenticated: drop
// prompt=login so the request does not loop.
func (p *Provider) redirectToLogin(w http.ResponseWriter, r *http.Request, form url.Values, prompt []string) {
	back := cloneValues(form)
	if slices.Contains(prompt, "login") {
		rest := slices.DeleteFunc(slices.Clone(prompt), func(s string) bool { return s == "login" })
		if len(rest) == 0 {
			back.Del("prompt")
		} else {
			back.Set("prompt", strings.Join(rest, " "))
		}
	}
	q := url.Values{"return_to": {authorizePath(back)}}
	http.Redirect(w, r, "/login?"+q.Encode(), http.StatusSeeOther)
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

func (p *Provider) needsConsent(r *http.Request, c *storage.Client, u *storage.User, scopes, prompt []string) (bool, error) {
	if c.SkipConsent {
		return false, nil
	}
	if slices.Contains(prompt, "consent") {
		return true, nil
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
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
