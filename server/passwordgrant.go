package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// passwordGrant runs the token endpoint's password grant through the one
// sign-in pipeline, so a password sent there meets every rule one typed
// into the login form does, and is counted and audited the same way: one
// pipeline, no side door. It translates the pipeline's outcome into what
// oauth may tell the client; the pipeline's own reason stays in its log and
// its login.failed event.
type passwordGrant struct{ pipeline *authn.Pipeline }

var _ oauth.PasswordAuthenticator = passwordGrant{}

// PasswordGrant leaves the address and the device empty in the attempt:
// the pipeline takes them from the request (reqinfo), where the middleware
// put the address and the token endpoint the device_id it was sent.
func (g passwordGrant) PasswordGrant(ctx context.Context, username, password, clientID string) (oauth.PasswordGrantResult, error) {
	out, err := g.pipeline.PasswordLogin(ctx, authn.Attempt{Username: username, Password: password, ClientID: clientID})
	if err != nil {
		return oauth.PasswordGrantResult{}, fmt.Errorf("password grant for client %s: %w", clientID, err)
	}
	if out.OK && out.User != nil {
		return oauth.PasswordGrantResult{User: out.User, AMR: []string{authn.AMRPassword}, ACR: policies.ACRPassword}, nil
	}
	return oauth.PasswordGrantResult{Refusal: passwordRefusal(out.Decision), Until: out.Decision.Until}, nil
}

// passwordRefusal classifies a refused attempt. Only refusals that reveal
// nothing a guesser can use are told apart; anything else, a reason added
// to the pipeline later included, gets the answer of a wrong password.
func passwordRefusal(d authn.Decision) oauth.PasswordRefusal {
	if d.Verdict == authn.Challenge {
		// Whatever is asked (captcha, second factor, password change), it
		// cannot be answered over this grant.
		return oauth.RefusedBrowserRequired
	}
	switch d.Reason {
	case authn.ReasonLocked:
		return oauth.RefusedAccountLocked
	case authn.ReasonDeviceLocked:
		return oauth.RefusedDeviceLocked
	case authn.ReasonIPBlocked:
		return oauth.RefusedAddressBlocked
	case authn.ReasonIPRule:
		return oauth.RefusedAddressRule
	case authn.ReasonCaptchaRequired, authn.ReasonCaptchaWrong:
		return oauth.RefusedBrowserRequired
	case authn.ReasonEmailUnverified, authn.ReasonPasswordInvalid:
		// Decided only once the password was proven, so telling it
		// reveals nothing to a guesser: the sign-in page mails the link
		// (verification, or a reset) that is the way forward.
		return oauth.RefusedBrowserRequired
	default:
		// ReasonBadPassword, ReasonUnknownUser, ReasonDisabled and the
		// unknown: one answer, so the grant does not enumerate accounts.
		return oauth.RefusedCredentials
	}
}

// deviceStanding re-checks, when a device redeems its code, the account
// that approved it, through the pipeline's account gates: a lock,
// disablement or expiry since the approval gives the device no token.
type deviceStanding struct {
	pipeline *authn.Pipeline
	users    authn.UserReader
}

var _ oauth.AccountStanding = deviceStanding{}

func (d deviceStanding) MayReceiveTokens(ctx context.Context, userID, clientID string) (bool, error) {
	u, err := d.users.User(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("device redemption: load user %s: %w", userID, err)
	}
	dec, err := d.pipeline.Standing(ctx, u, clientID)
	if err != nil {
		return false, fmt.Errorf("device redemption: standing of user %s: %w", userID, err)
	}
	return dec.Verdict != authn.Deny, nil
}
