package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
)

// The device authorization grant (RFC 8628), for devices that cannot
// show a browser or take typing well: a TV, a CLI, a mobile app that signs
// in elsewhere. The device asks POST /oauth2/device/auth for a device code
// and a short user code; the person opens /device on another screen, signs
// in through the ordinary login flow (so IP rules, lockout, captcha and
// MFA apply under the device client's policy), sees which application asks
// for what, and approves or denies; meanwhile the device polls the token
// endpoint with grant type GrantDeviceCode.
//
// fosite v0.49 has no device grant, so this is one more token endpoint
// handler on our storage, beside the password grant, sharing its token
// issuance. Both codes are stored hashed: the device code (256 random
// bits) with SHA-256, the user code (about 34 bits, typed by a person)
// with an HMAC keyed from the system secret, so a copy of the database
// does not hand out codes to approve.

// GrantDeviceCode is the device authorization grant's grant type.
const GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// Paths of the device grant.
const (
	DeviceAuthorizationPath = "/oauth2/device/auth"
	DeviceVerificationPath  = "/device"
)

const (
	// userCodeAlphabet has twenty consonants: no vowels (no words), no
	// letters read as digits (O, I) or as each other (Y/V).
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLength   = 8
	// slowDownStep is what RFC 8628 3.5 adds to the interval of a client
	// that polls too fast; storage applies it.
	slowDownStep = 5
)

// RFC 8628 3.5 token endpoint errors.
var (
	errAuthorizationPending = &fosite.RFC6749Error{ErrorField: "authorization_pending", CodeField: http.StatusBadRequest,
		DescriptionField: "The user has not yet approved or denied the request on the verification page."}
	errSlowDown = &fosite.RFC6749Error{ErrorField: "slow_down", CodeField: http.StatusBadRequest,
		DescriptionField: "The device polls too often; it must wait 5 seconds more between requests."}
	errExpiredToken = &fosite.RFC6749Error{ErrorField: "expired_token", CodeField: http.StatusBadRequest,
		DescriptionField: "The device code has expired; start again with a new one."}
)

// DeviceStore keeps device codes and the verification page's attempt
// budget; *storage.Store has it.
type DeviceStore interface {
	CreateDeviceCode(ctx context.Context, d *storage.DeviceCode) error
	PollDeviceCode(ctx context.Context, deviceCodeHash, clientID string, now time.Time) (*storage.DeviceCode, bool, error)
	RedeemDeviceCode(ctx context.Context, deviceCodeHash string, at time.Time) error
	DeviceCodeByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.DeviceCode, error)
	DecideDeviceCode(ctx context.Context, userCodeHash string, approve bool, userID string, authTime time.Time, amr []string, acr string, at time.Time) error
	TakeRateBudget(ctx context.Context, key string, window time.Duration, limit int64) (bool, int64, error)
}

var _ DeviceStore = (*storage.Store)(nil)

// AccountStanding says whether an account may still be given tokens for
// a client: not locked, disabled or expired since it approved a device.
// The server implements it over authn's pipeline (Pipeline.Standing).
type AccountStanding interface {
	MayReceiveTokens(ctx context.Context, userID, clientID string) (bool, error)
}

// hashDeviceCode is how a device code is stored and looked up.
func hashDeviceCode(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// hashUserCode is how a user code is stored and looked up: an HMAC of its
// normalized form, so that case and dash variants are one code.
func (p *Provider) hashUserCode(normalized string) string {
	mac := hmac.New(sha256.New, p.userCodeKey)
	mac.Write([]byte(normalized))
	return hex.EncodeToString(mac.Sum(nil))
}

// newUserCode draws a user code, XXXX-XXXX, uniformly from the alphabet.
func newUserCode() string {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < userCodeLength+1 {
		if b.Len() == userCodeLength/2 {
			b.WriteByte('-')
			continue
		}
		_, _ = rand.Read(buf)
		// 240 is the largest multiple of 20 within a byte: rejecting the
		// rest keeps every letter equally likely.
		if buf[0] >= 240 {
			continue
		}
		b.WriteByte(userCodeAlphabet[int(buf[0])%len(userCodeAlphabet)])
	}
	return b.String()
}

// NormalizeUserCode reads a user code as typed: case, spaces and dashes
// do not matter. ok is false for anything that cannot be a user code.
func NormalizeUserCode(typed string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ':
		case r < 0x80 && strings.IndexByte(userCodeAlphabet, byte(r)) >= 0:
			b.WriteRune(r)
		default:
			return "", false
		}
		if b.Len() > userCodeLength {
			return "", false
		}
	}
	if b.Len() != userCodeLength {
		return "", false
	}
	return b.String(), true
}

// FormatUserCode shows a normalized user code as XXXX-XXXX.
func FormatUserCode(normalized string) string {
	if len(normalized) != userCodeLength {
		return normalized
	}
	return normalized[:userCodeLength/2] + "-" + normalized[userCodeLength/2:]
}

// deviceAuthorization is POST /oauth2/device/auth (RFC 8628 3.1): a
// client registered for the device grant gets a device code to poll with
// and a user code for the person.
func (p *Provider) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseOAuthForm(w, r); err != nil {
		writeOAuthError(w, err)
		return
	}
	if p.cfg.Devices == nil {
		writeOAuthError(w, fosite.ErrUnsupportedGrantType.WithHint("The device authorization grant is not enabled on this server."))
		return
	}
	c, err := p.authenticateClient(ctx, r, r.PostForm)
	if err != nil {
		writeOAuthError(w, err)
		return
	}
	if !c.GetGrantTypes().Has(GrantDeviceCode) {
		writeOAuthError(w, fosite.ErrUnauthorizedClient.WithHint("This client is not registered for the device authorization grant."))
		return
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	strategy := p.fc.GetScopeStrategy(ctx)
	for _, s := range scopes {
		if !strategy(c.GetScopes(), s) {
			writeOAuthError(w, fosite.ErrInvalidScope.WithHintf("The client may not request the scope %q.", s))
			return
		}
	}
	pol := p.cfg.Policies.For(c.GetID()).DeviceFlow
	now := p.cfg.Now().UTC()
	deviceCode := make([]byte, 32)
	_, _ = rand.Read(deviceCode)
	d := &storage.DeviceCode{
		ClientID: c.GetID(), Scopes: scopes, Audience: []string{}, Status: storage.DeviceCodePending,
		Interval: pol.IntervalSeconds(), CreatedAt: now, ExpiresAt: pol.Expiry(now),
	}
	device := base64.RawURLEncoding.EncodeToString(deviceCode)
	d.DeviceCodeHash = hashDeviceCode(device)
	var user string
	// A user code colliding with a stored one (live, or expired and not
	// yet purged) is drawn again; at 20^8 codes that is rare, and three
	// draws in a row rarer still.
	for range 3 {
		user = newUserCode()
		normalized, _ := NormalizeUserCode(user)
		d.UserCodeHash = p.hashUserCode(normalized)
		if err = p.cfg.Devices.CreateDeviceCode(ctx, d); !errors.Is(err, storage.ErrConflict) {
			break
		}
	}
	if err != nil {
		if unavailable(err) {
			writeUnavailable(w, err)
			return
		}
		p.cfg.Logger.ErrorContext(ctx, "device authorization", "err", err.Error())
		writeOAuthError(w, fosite.ErrServerError.WithWrap(err))
		return
	}
	p.record(ctx, audit.Event{Type: audit.TypeDeviceCodeIssued, ClientID: c.GetID(), Outcome: audit.OutcomeSuccess,
		Details: map[string]any{"scope": strings.Join(scopes, " "), "expires_at": d.ExpiresAt.Format(time.RFC3339)}})
	verification := p.cfg.Issuer + DeviceVerificationPath
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"device_code":               device,
		"user_code":                 user,
		"verification_uri":          verification,
		"verification_uri_complete": verification + "?user_code=" + user,
		"expires_in":                int(d.ExpiresAt.Sub(now) / time.Second),
		"interval":                  d.Interval,
	})
}

// deviceGrantHandler is the token endpoint handler of GrantDeviceCode.
type deviceGrantHandler struct {
	p *Provider
	// issue issues the tokens, as for the password grant.
	issue *passwordGrantHandler
}

var _ fosite.TokenEndpointHandler = (*deviceGrantHandler)(nil)

func (h *deviceGrantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantDeviceCode)
}

// CanSkipClientAuth is false: a confidential client authenticates and a
// public one (most devices) names itself, as at every grant.
func (h *deviceGrantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// HandleTokenEndpointRequest judges one poll. The poll is recorded
// first, under the code's row lock with the interval check, so a client polling
// too fast is told slow_down even when the answer would have been a
// token; then the code's state decides, and an approved code is redeemed
// once (of parallel polls one wins), after the account's standing is
// checked again: a lock or disablement since the approval gives no token.
func (h *deviceGrantHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	p := h.p
	if p.cfg.Devices == nil {
		return fosite.ErrUnsupportedGrantType.WithHint("The device authorization grant is not enabled on this server.")
	}
	client := r.GetClient()
	if !client.GetGrantTypes().Has(GrantDeviceCode) {
		return fosite.ErrUnauthorizedClient.WithHint("This client is not registered for the device authorization grant.")
	}
	code := r.GetRequestForm().Get("device_code")
	if code == "" {
		return fosite.ErrInvalidRequest.WithHint("The device_code parameter is required.")
	}
	now := p.cfg.Now().UTC()
	hash := hashDeviceCode(code)
	d, slowDown, err := p.cfg.Devices.PollDeviceCode(ctx, hash, client.GetID(), now)
	if errors.Is(err, storage.ErrNotFound) {
		return fosite.ErrInvalidGrant.WithHint("The device code is unknown, or was issued to another client.")
	}
	if err != nil {
		return storageFailure("poll device code", err)
	}
	switch {
	case !now.Before(d.ExpiresAt) && d.Status != storage.DeviceCodeRedeemed:
		return errExpiredToken
	case slowDown:
		return errSlowDown
	case d.Status == storage.DeviceCodePending:
		return errAuthorizationPending
	case d.Status == storage.DeviceCodeDenied:
		return fosite.ErrAccessDenied.WithHint("The user denied the request.")
	case d.Status != storage.DeviceCodeApproved:
		return fosite.ErrInvalidGrant.WithHint("The device code has already been used.")
	}
	ok, err := p.cfg.Standing.MayReceiveTokens(ctx, d.UserID, client.GetID())
	if err != nil {
		return storageFailure("check account standing", err)
	}
	if !ok {
		return fosite.ErrAccessDenied.WithHint("The account that approved the request cannot sign in now.")
	}
	if err := p.cfg.Devices.RedeemDeviceCode(ctx, hash, now); errors.Is(err, storage.ErrAlreadyUsed) {
		return fosite.ErrInvalidGrant.WithHint("The device code has already been used.")
	} else if err != nil {
		return storageFailure("redeem device code", err)
	}
	u, err := p.cfg.Store.User(ctx, d.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return fosite.ErrAccessDenied.WithHint("The account that approved the request no longer exists.")
	}
	if err != nil {
		return storageFailure("load user", err)
	}
	sess := p.userSession(u, nil, client.GetID(), "")
	// The sign-in was the approval's, on the verification page.
	if d.AuthTime != nil {
		sess.Claims.AuthTime = d.AuthTime.UTC().Truncate(time.Second)
	}
	sess.Claims.AuthenticationMethodsReferences = d.AMR
	sess.Claims.AuthenticationContextClassReference = d.ACR
	r.SetSession(sess)
	for _, s := range grantableScopes(d.Scopes, u) {
		r.GrantScope(s)
	}
	for _, a := range d.Audience {
		r.GrantAudience(a)
	}
	return nil
}

// PopulateTokenEndpointResponse issues the tokens of a redeemed code.
func (h *deviceGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.issue.issueTokens(ctx, r, resp)
}

// storageFailure is an infrastructure failure at the token endpoint:
// 503 when trying again shortly may succeed, else server_error.
func storageFailure(what string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fosite.ErrServerError.WithWrap(err).WithDebugf("%s: %s", what, err)
}
