package mfa

// WebAuthn (security keys and passkeys) over github.com/go-webauthn/webauthn.
//
// The library keeps the state of a ceremony in a SessionData value that must
// reach the Finish step unchanged. A ceremony spans two HTTP requests that
// may land on different instances, so this layer hands the state out as
// opaque bytes for the caller to keep with its login flow, and takes them
// back; nothing is kept in memory between the two steps.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// ErrWebAuthnFailed is wrapped by every error that means the ceremony itself
// failed: a bad or missing signature, the wrong origin or relying party, a
// challenge from another ceremony, a credential the account does not own, a
// sign count that went backwards, a response that does not parse. Callers
// count it as a failed sign-in; any other error is an infrastructure failure
// (a corrupt stored session, a failed lookup) and is not the person's doing.
var ErrWebAuthnFailed = errors.New("mfa: webauthn verification failed")

// WebAuthnConfig describes the relying party: this server as browsers and
// authenticators see it.
type WebAuthnConfig struct {
	// RPID is the relying party id, a host name (never an IP address) equal
	// to or a registrable suffix of every origin's host. Credentials are
	// bound to it for good: changing it orphans every registered key.
	RPID string
	// RPDisplayName is the name authenticators show when registering.
	RPDisplayName string
	// Origins are the exact origins (scheme://host[:port]) the pages with a
	// ceremony are served from.
	Origins []string
}

// WebAuthn runs registration and sign-in ceremonies. It holds no state
// between calls and is safe for concurrent use.
type WebAuthn struct {
	rp *webauthn.WebAuthn
}

// NewWebAuthn checks cfg and returns a ready WebAuthn. Every problem found is
// reported at once, each naming its field.
func NewWebAuthn(cfg WebAuthnConfig) (*WebAuthn, error) {
	var problems []string
	if cfg.RPID == "" {
		problems = append(problems, "RPID: must be set")
	} else if err := protocol.ValidateRPID(cfg.RPID); err != nil {
		problems = append(problems, fmt.Sprintf("RPID: %q is not a host name: %v", cfg.RPID, err))
	}
	if strings.TrimSpace(cfg.RPDisplayName) == "" {
		problems = append(problems, "RPDisplayName: must be set")
	}
	if len(cfg.Origins) == 0 {
		problems = append(problems, "Origins: must list at least one origin")
	}
	for i, o := range cfg.Origins {
		if err := checkOrigin(o, cfg.RPID); err != nil {
			problems = append(problems, fmt.Sprintf("Origins[%d]: %v", i, err))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("mfa: webauthn config: %s", strings.Join(problems, "; "))
	}
	rp, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPDisplayName,
		RPOrigins:     slices.Clone(cfg.Origins),
		// Attestation would only matter with an allow-list of authenticator
		// models; without one it is personal data for nothing.
		AttestationPreference: protocol.PreferNoAttestation,
		// An extension output we never asked for is one we never read, so it
		// cannot change the outcome; rejecting it would lock out people
		// whose browser or password manager adds one.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
		// Timeouts are not enforced here: the library would use the wall
		// clock, and the caller's login flow already has an expiry on the
		// injected clock, which bounds the stored session.
	})
	if err != nil {
		return nil, fmt.Errorf("mfa: webauthn config: %w", err)
	}
	return &WebAuthn{rp: rp}, nil
}

// checkOrigin accepts scheme://host[:port] whose host is rpID or below it:
// a browser refuses a ceremony anywhere else, so a mismatch is better found
// at start-up than by the first person trying to register a key.
func checkOrigin(origin, rpID string) error {
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", origin, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin (scheme://host[:port])", origin)
	}
	host := strings.ToLower(u.Hostname())
	rpID = strings.ToLower(rpID)
	if rpID != "" && host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return fmt.Errorf("host of %q is not %q or a subdomain of it", origin, rpID)
	}
	return nil
}

// Account is the user as WebAuthn sees it. ID is the user handle: the
// account id's bytes, at most 64, never the username, since authenticators
// hand it to anyone who asks on this site.
type Account struct {
	ID          []byte
	Name        string
	DisplayName string
	Credentials []webauthn.Credential
}

// webauthnUser adapts an Account to the library's User interface.
type webauthnUser Account

func (u webauthnUser) WebAuthnID() []byte                         { return u.ID }
func (u webauthnUser) WebAuthnName() string                       { return u.Name }
func (u webauthnUser) WebAuthnDisplayName() string                { return u.DisplayName }
func (u webauthnUser) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

func checkAccount(a Account) error {
	if len(a.ID) == 0 || len(a.ID) > 64 {
		return fmt.Errorf("mfa: webauthn account id must be 1 to 64 bytes, got %d", len(a.ID))
	}
	if a.Name == "" {
		return errors.New("mfa: webauthn account name must be set")
	}
	return nil
}

// The ceremony a stored session was begun for. A session handed to the
// wrong Finish is a programming error, caught before any verification.
const (
	webauthnRegistration = "registration"
	webauthnLogin        = "login"
	webauthnDiscoverable = "discoverable"
)

// webauthnSession is the stored form of a ceremony's state.
type webauthnSession struct {
	Ceremony string               `json:"ceremony"`
	Data     webauthn.SessionData `json:"data"`
}

func sealSession(ceremony string, sd *webauthn.SessionData) ([]byte, error) {
	b, err := json.Marshal(webauthnSession{Ceremony: ceremony, Data: *sd})
	if err != nil {
		return nil, fmt.Errorf("mfa: encode webauthn session: %w", err)
	}
	return b, nil
}

// openSession decodes stored state. Its errors are not ErrWebAuthnFailed:
// the bytes came from our own storage, not from the browser.
func openSession(b []byte, ceremony string) (webauthn.SessionData, error) {
	var s webauthnSession
	if err := json.Unmarshal(b, &s); err != nil {
		return webauthn.SessionData{}, fmt.Errorf("mfa: decode webauthn session: %w", err)
	}
	if s.Ceremony != ceremony {
		return webauthn.SessionData{}, fmt.Errorf("mfa: webauthn session is for %q, not %q", s.Ceremony, ceremony)
	}
	if s.Data.Challenge == "" {
		return webauthn.SessionData{}, errors.New("mfa: webauthn session has no challenge")
	}
	return s.Data, nil
}

// webauthnFailed marks err as a failed ceremony. The library's errors say
// what went wrong in DevInfo, which its Error method leaves out; it belongs
// in the log line.
func webauthnFailed(err error) error {
	var perr *protocol.Error
	if errors.As(err, &perr) && perr.DevInfo != "" {
		// Some DevInfo spans lines; a log line should not.
		return fmt.Errorf("%w: %w (%s)", ErrWebAuthnFailed, err, strings.Join(strings.Fields(perr.DevInfo), " "))
	}
	return fmt.Errorf("%w: %w", ErrWebAuthnFailed, err)
}

// freshCredentials copies creds with the clone warning cleared, so that a
// warning in the result is about this assertion, not a stored leftover.
func freshCredentials(creds []webauthn.Credential) []webauthn.Credential {
	out := slices.Clone(creds)
	for i := range out {
		out[i].Authenticator.CloneWarning = false
	}
	return out
}

// checkSignCount turns the library's clone warning into a failure: a
// counter that did not move forward means the key was copied or the
// response replayed, and the library only reports it.
func checkSignCount(c *webauthn.Credential) error {
	if c.Authenticator.CloneWarning {
		return fmt.Errorf("%w: sign count did not increase past %d (cloned authenticator or replayed response)", ErrWebAuthnFailed, c.Authenticator.SignCount)
	}
	return nil
}

// BeginRegistration starts adding a credential to a. discoverable asks for
// a resident key (a passkey, usable without a username) with user
// verification preferred; otherwise a plain second-factor key with no
// resident key and no PIN prompt. The account's credentials are excluded,
// so one authenticator is not registered twice.
//
// options is the JSON of protocol.CredentialCreation for the page (the
// data-webauthn-options attribute of webauthn.js); session is for the
// caller to store and give to FinishRegistration.
func (w *WebAuthn) BeginRegistration(a Account, discoverable bool) (options, session []byte, err error) {
	if err := checkAccount(a); err != nil {
		return nil, nil, err
	}
	sel := protocol.AuthenticatorSelection{
		ResidentKey:        protocol.ResidentKeyRequirementDiscouraged,
		RequireResidentKey: protocol.ResidentKeyNotRequired(),
		// Second factor after a password: possession is what is asked for.
		UserVerification: protocol.VerificationDiscouraged,
	}
	if discoverable {
		sel = protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationPreferred,
		}
	}
	creation, sd, err := w.rp.BeginRegistration(webauthnUser(a),
		webauthn.WithAuthenticatorSelection(sel),
		webauthn.WithExclusions(webauthn.Credentials(a.Credentials).CredentialDescriptors()),
		// credProps tells whether the key really became discoverable
		// (Credential.Extensions.RK), for the account page to say so.
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: begin webauthn registration: %w", err)
	}
	return encodeBegin(creation, webauthnRegistration, sd)
}

// FinishRegistration verifies the browser's response (the JSON webauthn.js
// writes into webauthn_response) against session and returns the new
// credential, for the caller to store with a. Credential ids must be unique
// across accounts; that is the store's constraint to keep.
func (w *WebAuthn) FinishRegistration(a Account, session, response []byte) (*webauthn.Credential, error) {
	sd, err := openSession(session, webauthnRegistration)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(sd.UserID, a.ID) {
		return nil, errors.New("mfa: webauthn registration session was begun for another account")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	cred, err := w.rp.CreateCredential(webauthnUser(a), sd, parsed)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	// excludeCredentials is only advice to the browser.
	for _, c := range a.Credentials {
		if bytes.Equal(c.ID, cred.ID) {
			return nil, fmt.Errorf("%w: credential is already registered for this account", ErrWebAuthnFailed)
		}
	}
	return cred, nil
}

// BeginLogin starts a second-factor check for a, who is already known:
// allowCredentials lists the account's credentials. a must have at least
// one.
func (w *WebAuthn) BeginLogin(a Account) (options, session []byte, err error) {
	if err := checkAccount(a); err != nil {
		return nil, nil, err
	}
	if len(a.Credentials) == 0 {
		return nil, nil, errors.New("mfa: webauthn login for an account with no credentials")
	}
	assertion, sd, err := w.rp.BeginLogin(webauthnUser(a),
		// As at registration: the password was the first factor, the key
		// is the second; a PIN prompt on top adds friction, not a factor.
		webauthn.WithUserVerification(protocol.VerificationDiscouraged),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: begin webauthn login: %w", err)
	}
	return encodeBegin(assertion, webauthnLogin, sd)
}

// FinishLogin verifies the browser's response for a against session and
// returns the credential used, with its sign count and flags updated, for
// the caller to store back. A sign count that did not increase fails.
func (w *WebAuthn) FinishLogin(a Account, session, response []byte) (*webauthn.Credential, error) {
	sd, err := openSession(session, webauthnLogin)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(sd.UserID, a.ID) {
		return nil, errors.New("mfa: webauthn login session was begun for another account")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	a.Credentials = freshCredentials(a.Credentials)
	cred, err := w.rp.ValidateLogin(webauthnUser(a), sd, parsed)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	if err := checkSignCount(cred); err != nil {
		return nil, err
	}
	return cred, nil
}

// BeginDiscoverableLogin starts a passwordless sign-in with a passkey: no
// account is known yet, so allowCredentials is empty and the authenticator
// offers what it holds for this site. User verification is required, as
// the passkey is then the only factor.
func (w *WebAuthn) BeginDiscoverableLogin() (options, session []byte, err error) {
	assertion, sd, err := w.rp.BeginDiscoverableLogin(
		webauthn.WithUserVerification(protocol.VerificationRequired),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: begin webauthn passkey login: %w", err)
	}
	return encodeBegin(assertion, webauthnDiscoverable, sd)
}

// FinishDiscoverableLogin verifies a passkey sign-in and returns whose it
// is. lookup finds the account owning the credential rawID, given the user
// handle the authenticator returned; the account's id must equal that
// handle and its credentials must include rawID, or the ceremony fails.
//
// lookup reports an unknown credential by returning a zero Account (nil
// ID) and a nil error, or an error wrapping ErrWebAuthnFailed; any other
// error from it is an infrastructure failure and comes back wrapped as is.
func (w *WebAuthn) FinishDiscoverableLogin(session, response []byte, lookup func(rawID, userHandle []byte) (Account, error)) (Account, *webauthn.Credential, error) {
	sd, err := openSession(session, webauthnDiscoverable)
	if err != nil {
		return Account{}, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Account{}, nil, webauthnFailed(err)
	}
	var (
		owner     Account
		lookupErr error
	)
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		a, err := lookup(rawID, userHandle)
		if err != nil {
			lookupErr = err
			return nil, err
		}
		if len(a.ID) == 0 {
			return nil, errors.New("no account has this credential")
		}
		a.Credentials = freshCredentials(a.Credentials)
		owner = a
		return webauthnUser(a), nil
	}
	_, cred, err := w.rp.ValidatePasskeyLogin(handler, sd, parsed)
	if err != nil {
		if lookupErr != nil && !errors.Is(lookupErr, ErrWebAuthnFailed) {
			return Account{}, nil, fmt.Errorf("mfa: look up passkey owner: %w", lookupErr)
		}
		return Account{}, nil, webauthnFailed(err)
	}
	if err := checkSignCount(cred); err != nil {
		return Account{}, nil, err
	}
	return owner, cred, nil
}

// encodeBegin renders a Begin step's two outputs.
func encodeBegin(options any, ceremony string, sd *webauthn.SessionData) ([]byte, []byte, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: encode webauthn options: %w", err)
	}
	session, err := sealSession(ceremony, sd)
	if err != nil {
		return nil, nil, err
	}
	return opts, session, nil
}

// MarshalCredential encodes a credential for storage. The encoding is the
// library's JSON form, which it keeps readable across versions.
func MarshalCredential(c *webauthn.Credential) ([]byte, error) {
	if c == nil || len(c.ID) == 0 || len(c.PublicKey) == 0 {
		return nil, errors.New("mfa: marshal webauthn credential: no id or public key")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("mfa: marshal webauthn credential: %w", err)
	}
	return b, nil
}

// UnmarshalCredential decodes what MarshalCredential produced.
func UnmarshalCredential(b []byte) (webauthn.Credential, error) {
	var c webauthn.Credential
	if err := json.Unmarshal(b, &c); err != nil {
		return webauthn.Credential{}, fmt.Errorf("mfa: unmarshal webauthn credential: %w", err)
	}
	if len(c.ID) == 0 || len(c.PublicKey) == 0 {
		return webauthn.Credential{}, errors.New("mfa: unmarshal webauthn credential: no id or public key")
	}
	return c, nil
}
