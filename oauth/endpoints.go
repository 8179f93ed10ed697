package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// introspect is RFC 7662. A caller holding an access token (Bearer) is
// left to fosite; a client authenticates as at the token endpoint, by any
// method it registered — fosite itself knows only HTTP Basic here.
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseOAuthForm(w, r); err != nil {
		writeOAuthError(w, err)
		return
	}
	if strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
		ir, err := p.f.NewIntrospectionRequest(ctx, r, newSession())
		if unavailable(err) {
			p.outage(r, "introspect", err)
			writeUnavailable(w, err)
			return
		}
		if err != nil {
			p.f.WriteIntrospectionError(ctx, w, err)
			return
		}
		writeIntrospection(w, ir, p.cfg.Issuer)
		return
	}
	c, err := p.authenticateClient(ctx, r, r.PostForm)
	if unavailable(err) {
		p.outage(r, "introspect", err)
		writeUnavailable(w, err)
		return
	}
	if err == nil && c.IsPublic() {
		err = fosite.ErrInvalidClient.WithHint("A public client cannot introspect tokens.")
	}
	if err != nil {
		writeOAuthError(w, err)
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeOAuthError(w, fosite.ErrInvalidRequest.WithHint("token is missing."))
		return
	}
	tu, ar, err := p.f.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), newSession())
	// A client learns about its own tokens; only a resource server given
	// the introspect permission learns about other clients' (their
	// subject and username included). To anyone else a token that is not
	// theirs is as good as unknown.
	if unavailable(err) {
		p.outage(r, "introspect", err)
		writeUnavailable(w, err)
		return
	}
	if err != nil || !mayIntrospect(c, ar) {
		writeIntrospection(w, &fosite.IntrospectionResponse{Active: false}, p.cfg.Issuer)
		return
	}
	writeIntrospection(w, &fosite.IntrospectionResponse{Active: true, AccessRequester: ar, TokenUse: tu}, p.cfg.Issuer)
}

// outage logs an endpoint's database failure.
func (p *Provider) outage(r *http.Request, endpoint string, err error) {
	p.cfg.Logger.ErrorContext(r.Context(), endpoint+": temporarily unavailable", "err", err.Error())
}

// mayIntrospect reports whether client c may see token ar's details.
func mayIntrospect(c fosite.Client, ar fosite.AccessRequester) bool {
	if ar.GetClient().GetID() == c.GetID() {
		return true
	}
	sc, ok := c.(*storage.Client)
	return ok && sc.Introspect
}

// writeOAuthError writes an RFC 6749 5.2 error response.
func writeOAuthError(w http.ResponseWriter, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	desc := rfc.DescriptionField
	if rfc.HintField != "" {
		desc += " " + rfc.HintField
	}
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	if rfc.CodeField == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="portcullis"`)
	}
	w.WriteHeader(rfc.CodeField)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": rfc.ErrorField, "error_description": desc})
}

// writeIntrospection writes the RFC 7662 response. fosite's own writer
// reports the access token's expiry for every token (ory/fosite#801); here
// "exp" is the expiry of the token introspected, and "token_use" says
// which kind it is.
func writeIntrospection(w http.ResponseWriter, ir fosite.IntrospectionResponder, issuer string) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if !ir.IsActive() {
		_, _ = w.Write([]byte(`{"active":false}` + "\n"))
		return
	}
	ar := ir.GetAccessRequester()
	sess := ar.GetSession()
	use := ir.GetTokenUse()
	out := map[string]any{"active": true, "iss": issuer, "client_id": ar.GetClient().GetID()}
	switch use {
	case fosite.RefreshToken:
		out["token_use"] = "refresh_token"
	default:
		out["token_use"] = "access_token"
		out["token_type"] = "Bearer"
		use = fosite.AccessToken
	}
	if exp := sess.GetExpiresAt(use); !exp.IsZero() {
		out["exp"] = exp.Unix()
	}
	if scopes := ar.GetGrantedScopes(); len(scopes) > 0 {
		out["scope"] = strings.Join(scopes, " ")
	}
	if t := ar.GetRequestedAt(); !t.IsZero() {
		out["iat"] = t.Unix()
	}
	if sub := sess.GetSubject(); sub != "" {
		out["sub"] = sub
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = aud
	}
	if u := sess.GetUsername(); u != "" {
		out["username"] = u
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseOAuthForm(w, r); err != nil {
		p.formClientCORS(w, r)
		writeOAuthError(w, err)
		return
	}
	p.formClientCORS(w, r)
	err := p.f.NewRevocationRequest(ctx, r)
	// fosite reports a storage failure during revocation as its own
	// temporarily_unavailable, without the cause.
	if unavailable(err) || errors.Is(err, fosite.ErrTemporarilyUnavailable) {
		// RFC 7009 answers 200 for an unknown token, so an outage must not
		// look like one: the client would believe the token revoked.
		p.outage(r, "revoke", err)
		writeUnavailable(w, err)
		return
	}
	p.f.WriteRevocationResponse(ctx, w, err)
}

// userinfo returns the claims the granted scopes allow, read fresh from the
// user record so a changed email shows at once.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token := fosite.AccessTokenFromRequest(r)
	if token == "" {
		p.clientCORS(w, r, nil)
		bearerError(w, http.StatusUnauthorized, "", "")
		return
	}
	ar, err := p.accessToken(ctx, token)
	if unavailable(err) {
		p.clientCORS(w, r, nil)
		p.outage(r, "userinfo", err)
		w.Header().Set("Retry-After", retryAfter(err))
		bearerError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The server cannot check the token right now; try again shortly.")
		return
	}
	if err != nil {
		p.clientCORS(w, r, nil)
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is not active.")
		return
	}
	c, _ := ar.GetClient().(*storage.Client)
	if c == nil {
		c = &storage.Client{} // no origins: no CORS headers
	}
	p.clientCORS(w, r, c)
	if !ar.GetGrantedScopes().Has("openid") {
		bearerError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.")
		return
	}
	u, err := p.cfg.Store.User(ctx, ar.GetSession().GetSubject())
	if unavailable(err) {
		p.outage(r, "userinfo", err)
		w.Header().Set("Retry-After", retryAfter(err))
		bearerError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The server cannot read the account right now; try again shortly.")
		return
	}
	if err != nil || u.Disabled {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The token's subject no longer exists.")
		return
	}
	claims := map[string]any{"sub": u.ID}
	for k, v := range profileClaims(u, ar.GetGrantedScopes()) {
		claims[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(claims)
}

// profileClaims are the standard claims each granted scope releases (OIDC
// Core 5.4).
func profileClaims(u *storage.User, scopes fosite.Arguments) map[string]any {
	out := map[string]any{}
	if scopes.Has("profile") {
		out["preferred_username"] = u.Username
	}
	if scopes.Has("email") && u.Email != "" {
		out["email"] = u.Email
		out["email_verified"] = u.EmailVerified
	}
	return out
}

func bearerError(w http.ResponseWriter, status int, code, desc string) {
	v := "Bearer"
	if code != "" {
		v += ` error="` + code + `"`
		if desc != "" {
			v += `, error_description="` + desc + `"`
		}
	}
	w.Header().Set("WWW-Authenticate", v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if code == "" {
		code = "invalid_request"
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// logout is OpenID Connect RP-Initiated Logout 1.0. The user is sent to
// post_logout_redirect_uri only when it exactly matches one registered for
// the client the id_token_hint (or client_id) names — otherwise a page says
// they are signed out.
//
// A link from anywhere can reach this endpoint, so it only ends a session
// at once when the request proves it comes from the user's application: an
// id_token_hint issued here to the signed-in user. Otherwise the user is
// asked, and the session ends on the confirmation form's POST, which
// carries the CSRF token.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	}
	if err := r.ParseForm(); err != nil {
		p.logoutError(w, r, http.StatusBadRequest, "the logout request body could not be parsed: "+err.Error())
		return
	}
	var hint *josejwt.Claims
	clientID := r.Form.Get("client_id")
	redirect := r.Form.Get("post_logout_redirect_uri")
	if raw := r.Form.Get("id_token_hint"); raw != "" {
		claims, err := p.idTokenHint(raw)
		if err != nil {
			p.logoutError(w, r, http.StatusBadRequest, "id_token_hint is not a valid ID token issued by this server: "+err.Error())
			return
		}
		if clientID != "" && !slices.Contains(claims.Audience, clientID) {
			p.logoutError(w, r, http.StatusBadRequest, "client_id is not an audience of the id_token_hint")
			return
		}
		if clientID == "" && len(claims.Audience) > 0 {
			clientID = claims.Audience[0]
		}
		hint = claims
	}
	var target *url.URL
	if redirect != "" {
		if clientID == "" {
			p.logoutError(w, r, http.StatusBadRequest, "post_logout_redirect_uri needs id_token_hint or client_id")
			return
		}
		c, err := p.cfg.Store.GetClient(ctx, clientID)
		sc, ok := c.(*storage.Client)
		if err != nil || !ok || !slices.Contains(sc.PostLogoutRedirectURIs, redirect) {
			p.logoutError(w, r, http.StatusBadRequest, "post_logout_redirect_uri is not registered for client "+strconv.Quote(clientID))
			return
		}
		if target, err = url.Parse(redirect); err != nil {
			p.logoutError(w, r, http.StatusBadRequest, "post_logout_redirect_uri is not a valid URL")
			return
		}
	}
	user, _, err := p.cfg.Browser.Current(r)
	if err != nil {
		p.cfg.Logger.ErrorContext(ctx, "read browser session", "err", err.Error())
		p.logoutError(w, r, http.StatusInternalServerError, "")
		return
	}
	if user != nil {
		confirmed := r.Method == http.MethodPost && r.PostForm.Get("confirm") == "yes"
		if confirmed && !p.cfg.CSRF.Verify(r) {
			p.formExpired(w, r)
			return
		}
		if !confirmed && (hint == nil || hint.Subject != user.ID) {
			p.renderLogoutConfirm(w, r, user, clientID)
			return
		}
		if err := p.cfg.Browser.End(w, r); err != nil {
			p.cfg.Logger.ErrorContext(ctx, "end browser session", "err", err.Error())
			p.logoutError(w, r, http.StatusInternalServerError, "")
			return
		}
	}
	if target == nil {
		p.cfg.Templates.Render(w, http.StatusOK, "logged_out.html", templates.LoggedOutPage{})
		return
	}
	if st := r.Form.Get("state"); st != "" {
		q := target.Query()
		q.Set("state", st)
		target.RawQuery = q.Encode()
	}
	http.Redirect(w, r, target.String(), http.StatusSeeOther)
}

// logoutError is the page for a sign-out request that cannot be carried
// out. detail is for the application's developers.
func (p *Provider) logoutError(w http.ResponseWriter, r *http.Request, status int, detail string) {
	page := templates.ErrorPage{
		Title:   "We couldn't sign you out",
		Message: "The application asked to sign you out, but the request was not valid, so you are still signed in.",
		Advice:  "Close this page and sign out again from the application. To be sure, you can also close your browser.",
		Detail:  detail,
	}
	if status >= 500 {
		page.Message = "Something went wrong on our side while signing you out; you may still be signed in."
		page.Advice = "Wait a moment and try again."
	}
	p.errorPage(w, r, status, page)
}

// renderLogoutConfirm asks the user whether to sign out. The logout
// parameters ride along in the form, so that the POST ends where the
// request would have.
func (p *Provider) renderLogoutConfirm(w http.ResponseWriter, r *http.Request, u *storage.User, clientID string) {
	page := templates.LogoutConfirmPage{
		App:       p.app(r.Context(), clientID),
		Username:  u.Username,
		CSRFToken: p.cfg.CSRF.Token(w, r),
	}
	for _, k := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales"} {
		if v := r.Form.Get(k); v != "" {
			page.Params = append(page.Params, templates.Param{Name: k, Value: v})
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	p.cfg.Templates.Render(w, http.StatusOK, "logout_confirm.html", page)
}

// idTokenHint verifies an ID token this server signed (expired ones are
// accepted, as the spec allows) and returns its claims.
func (p *Provider) idTokenHint(raw string) (*josejwt.Claims, error) {
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		return nil, err
	}
	if len(tok.Headers) != 1 {
		return nil, errors.New("id_token_hint: one signature expected")
	}
	key, ok := p.cfg.Keys.PublicKey(tok.Headers[0].KeyID)
	if !ok {
		return nil, errors.New("id_token_hint: unknown key")
	}
	var claims josejwt.Claims
	if err := tok.Claims(key.Key, &claims); err != nil {
		return nil, err
	}
	if claims.Issuer != p.cfg.Issuer {
		return nil, errors.New("id_token_hint: wrong issuer")
	}
	// Expiry is deliberately not checked; the signature and issuer are.
	return &claims, nil
}
