package oauth

import (
	"context"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

// The resource owner password credentials grant (RFC 6749 4.3).
//
// RFC 9700 2.4 says this grant MUST NOT be used: the client sees the
// password, and the grant can carry no second factor, captcha or consent.
// It is served for one purpose, mobile apps migrating from systems that
// had it, and only to clients whose registration lists it.
//
// Public clients may use it. A mobile app is a public client (RFC 8252):
// a secret shipped inside it is readable by anyone who downloads it, so
// requiring one would add the look of client authentication without the
// substance. What stands between a guesser and an account is the sign-in
// pipeline, which judges a password sent here exactly as one typed into
// the login form: IP rules, lockout of the device, the account and the
// address, the same counters and the same audit events. A step this grant
// cannot carry (a captcha, a second factor, a password change) refuses the
// grant and sends the person to the browser, so no defence is skipped.
// A confidential client authenticates as at every grant.
//
// Users are never asked for consent here: giving an application one's
// password is all the consent this grant has, which is one more reason to
// enable it for first-party apps only.
//
// fosite's own handler (oauth2.ResourceOwnerPasswordCredentialsGrantHandler)
// is not used: its storage hook, Authenticate(ctx, username, password),
// sees neither the client (whose policy judges the attempt) nor anything
// but success or failure, so a locked account, a challenge or an outage
// could not get their own answers; it issues refresh tokens to clients
// without the refresh_token grant, and no ID token at all.

// PasswordAuthenticator checks a resource owner's password for the
// password grant. The server implements it over authn's sign-in pipeline;
// it is declared here so that oauth does not import authn. The request's
// address and device are in ctx (reqinfo). A refused attempt is a result,
// not an error: the error is for infrastructure failures, and wraps
// storage.ErrUnavailable or hashing.ErrBusy when trying again shortly may
// succeed.
type PasswordAuthenticator interface {
	PasswordGrant(ctx context.Context, username, password, clientID string) (PasswordGrantResult, error)
}

// PasswordGrantResult is how a password grant's sign-in ended.
type PasswordGrantResult struct {
	// User is the account signed in to; nil when the attempt was refused.
	User *storage.User
	// AMR and ACR are what the sign-in proved, for the ID token, as a
	// browser sign-in records them in its session.
	AMR []string
	ACR string
	// Refusal is why an attempt was refused, as far as the client may be
	// told; Until is when a lock or block ends (zero: not a matter of time).
	Refusal PasswordRefusal
	Until   time.Time
}

// PasswordRefusal is why the password grant refused a sign-in, in the
// terms the token endpoint answers in. The pipeline's own reason (which
// may tell whether an account exists) stays in its log and audit event.
type PasswordRefusal int

const (
	// RefusedCredentials is a wrong username or password, or an account
	// that may not sign in (disabled): one answer for all, so the grant
	// does not tell which accounts exist. It is the zero value, so that a
	// refusal nobody classified gets the answer that tells least.
	RefusedCredentials PasswordRefusal = iota
	// RefusedAccountLocked: the account is locked, until Until.
	RefusedAccountLocked
	// RefusedDeviceLocked: this device is locked for the account.
	RefusedDeviceLocked
	// RefusedAddressBlocked: too many failed sign-ins from the client's
	// address, until Until.
	RefusedAddressBlocked
	// RefusedAddressRule: an IP allow or block list refuses the address.
	RefusedAddressRule
	// RefusedBrowserRequired: the sign-in needs a step this grant cannot
	// carry (a captcha, a second factor, a password change).
	RefusedBrowserRequired
)

// Descriptions of the password grant's refusals.
const (
	passwordWrongDescription   = "The username or password is wrong."
	browserRequiredDescription = "Sign in through the browser to continue."
	adminUnlock                = "until an administrator unlocks it"
)

// passwordRefusalError is the token endpoint's answer to a refused
// attempt. Every refusal is invalid_grant (RFC 6749 5.2: the resource
// owner credentials cannot be used), address refusals too: they are about
// where the credentials come from, not about the client, so
// unauthorized_client, which a client reads as its own registration being
// wrong, would mislead it; access_denied is not a token endpoint error.
// The description is the one thing that differs, and only for refusals
// that tell nothing about the password: a lock is decided before the
// password is checked.
func passwordRefusalError(res PasswordGrantResult) *fosite.RFC6749Error {
	var d string
	switch res.Refusal {
	case RefusedAccountLocked:
		d = "The account is locked " + untilText(res.Until, adminUnlock) + "."
	case RefusedDeviceLocked:
		d = "The account is locked on this device " + untilText(res.Until, adminUnlock) + "."
	case RefusedAddressBlocked:
		d = "Too many failed sign-ins from this network; sign-in from it is blocked " + untilText(res.Until, "for now") + "."
	case RefusedAddressRule:
		d = "Sign-in from this network is not allowed."
	case RefusedBrowserRequired:
		d = browserRequiredDescription
	default:
		d = passwordWrongDescription
	}
	return fosite.ErrInvalidGrant.WithDescription(d)
}

// untilText says when a lock ends: an RFC 3339 UTC time, which a client
// can parse and a person can read, or otherwise when zero.
func untilText(until time.Time, otherwise string) string {
	if until.IsZero() {
		return otherwise
	}
	return "until " + until.UTC().Format(time.RFC3339)
}

// passwordGrantHandler is the token endpoint handler of the password
// grant. Its config is the clock-aware one, like every handler's.
type passwordGrantHandler struct {
	p       *Provider
	auth    PasswordAuthenticator
	store   Store
	tokens  *oauth2.HandleHelper
	refresh oauth2.RefreshTokenStrategy
	idToken *openid.IDTokenHandleHelper
	config  interface {
		fosite.ScopeStrategyProvider
		fosite.AudienceStrategyProvider
		fosite.RefreshTokenScopesProvider
		fosite.AccessTokenLifespanProvider
		fosite.IDTokenLifespanProvider
	}
}

var _ fosite.TokenEndpointHandler = (*passwordGrantHandler)(nil)

func (h *passwordGrantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantPassword)
}

// CanSkipClientAuth is false: a confidential client authenticates, and a
// public one names itself (method none), as at every grant.
func (h *passwordGrantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// HandleTokenEndpointRequest checks the request, then runs the sign-in.
// Everything that can be refused without the password is refused first,
// so that a request that could never succeed is neither counted as a
// failed sign-in nor paid for with a password hash.
func (h *passwordGrantHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	form := r.GetRequestForm()
	username, password := form.Get("username"), form.Get("password")
	// The password must go no further than the authenticator: the form
	// is kept with the request, and ends up in storage.
	form.Del("password")
	if h.auth == nil {
		return fosite.ErrUnsupportedGrantType.WithHint("The password grant is not enabled on this server.")
	}
	client := r.GetClient()
	if !client.GetGrantTypes().Has(GrantPassword) {
		return fosite.ErrUnauthorizedClient.WithHint("This client is not registered for the password grant.")
	}
	strategy := h.config.GetScopeStrategy(ctx)
	for _, s := range r.GetRequestedScopes() {
		if !strategy(client.GetScopes(), s) {
			return fosite.ErrInvalidScope.WithHintf("The client may not request the scope %q.", s)
		}
	}
	if err := h.config.GetAudienceStrategy(ctx)(client.GetAudience(), r.GetRequestedAudience()); err != nil {
		return err
	}
	if username == "" || password == "" {
		return fosite.ErrInvalidRequest.WithHint("The username and password parameters are required.")
	}
	// The token endpoint has put a valid device_id into the request's
	// identity; a malformed one is refused rather than dropped, since the
	// device is what the lockout of this device keys on.
	if form.Has(reqinfo.DeviceIDParam) && !reqinfo.ValidDeviceID(form.Get(reqinfo.DeviceIDParam)) {
		return fosite.ErrInvalidRequest.WithHintf("device_id must be 1 to %d characters of A-Z a-z 0-9 . _ ~ -.", reqinfo.MaxDeviceIDLen)
	}
	res, err := h.auth.PasswordGrant(ctx, username, password, client.GetID())
	if err != nil {
		if unavailable(err) {
			return fmt.Errorf("password grant: %w", err) // 503 with Retry-After, in tokenError
		}
		return fosite.ErrServerError.WithWrap(err).WithDebugf("password grant: %s", err)
	}
	if res.User == nil {
		return passwordRefusalError(res)
	}
	sess := h.p.userSession(res.User, nil, client.GetID(), "")
	// The grant is its own sign-in: auth_time is now, as userSession sets
	// it without a browser session, and amr and acr are what it proved.
	sess.Claims.AuthenticationMethodsReferences = res.AMR
	sess.Claims.AuthenticationContextClassReference = res.ACR
	r.SetSession(sess)
	for _, s := range grantableScopes(r.GetRequestedScopes(), res.User) {
		r.GrantScope(s)
	}
	for _, a := range r.GetRequestedAudience() {
		r.GrantAudience(a)
	}
	return nil
}

// PopulateTokenEndpointResponse issues the access token, a refresh token
// when offline access was granted to a client that may refresh, and an ID
// token when openid was granted. Lifetimes were stamped on the session by
// the token endpoint from the client's policy.
func (h *passwordGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.issueTokens(ctx, r, resp)
}

// issueTokens issues what a grant acting for a user gives (the device
// grant's too): the access token, a refresh token when offline access was
// granted to a client that may refresh, and an ID token for openid.
func (h *passwordGrantHandler) issueTokens(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	var refresh, refreshSig string
	if h.canRefresh(ctx, r) {
		var err error
		if refresh, refreshSig, err = h.refresh.GenerateRefreshToken(ctx, r); err != nil {
			return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
	}
	if err := h.storeTokens(ctx, r, resp, refreshSig); err != nil {
		return err
	}
	if refresh != "" {
		resp.SetExtra("refresh_token", refresh)
	}
	if !r.GetGrantedScopes().Has("openid") {
		return nil
	}
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	sess.Claims.AccessTokenHash = h.idToken.GetAccessTokenHash(ctx, r, resp)
	return h.idToken.IssueExplicitIDToken(ctx, h.config.GetIDTokenLifespan(ctx), r, resp)
}

// storeTokens issues the access token and stores it with the refresh
// token signed refreshSig (none when ""), together or not at all.
func (h *passwordGrantHandler) storeTokens(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder, refreshSig string) (err error) {
	if ctx, err = fositestorage.MaybeBeginTx(ctx, h.store); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	defer func() {
		if err == nil {
			return
		}
		if rerr := fositestorage.MaybeRollbackTx(ctx, h.store); rerr != nil {
			h.p.cfg.Logger.ErrorContext(ctx, "password grant: roll back", "err", rerr.Error())
		}
	}()
	accessSig, err := h.tokens.IssueAccessToken(ctx, h.config.GetAccessTokenLifespan(ctx), r, resp)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	if refreshSig != "" {
		if err = h.store.CreateRefreshTokenSession(ctx, refreshSig, accessSig, r.Sanitize(nil)); err != nil {
			return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
	}
	if err = fositestorage.MaybeCommitTx(ctx, h.store); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return nil
}

// canRefresh is the authorization code grant's rule: a refresh token
// needs one of the refresh scopes granted and the refresh_token grant
// registered.
func (h *passwordGrantHandler) canRefresh(ctx context.Context, r fosite.AccessRequester) bool {
	scopes := h.config.GetRefreshTokenScopes(ctx)
	if len(scopes) > 0 && !r.GetGrantedScopes().HasOneOf(scopes...) {
		return false
	}
	return r.GetClient().GetGrantTypes().Has(GrantRefreshToken)
}
