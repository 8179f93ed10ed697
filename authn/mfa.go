package authn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/mfa"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// RFC 8176 authentication methods the second factors add.
const (
	AMROTP = "otp" // a TOTP code or a recovery code
	AMRHWK = "hwk" // a WebAuthn authenticator's key
	AMRMFA = "mfa" // more than one factor
	// AMRUser: the authenticator verified the person (PIN, biometrics),
	// as a passkey used without a password must.
	AMRUser = "user"
)

// Factor kinds as an attempt names them; the stored ones are
// storage.FactorTOTP and storage.FactorWebAuthn.
const FactorRecoveryCode = "recovery_code"

// Second-factor outcome reasons.
const (
	ReasonSecondFactorRequired = "second_factor_required" // the password is right; a second factor is next
	ReasonMFAEnrollment        = "mfa_enrollment"         // the password is right; the account must enrol a factor first
	ReasonBadSecondFactor      = "bad_second_factor"      // a wrong or reused code, a failed passkey assertion
	ReasonMFAThrottled         = "mfa_throttled"          // mfa.totp.max_attempts within attempt_window
)

// Ceremony kinds kept in storage between a page and its answer.
const (
	ceremonyPasskeyLogin    = "webauthn_login"
	ceremonyPasskeyRegister = "webauthn_register"
	ceremonyPasswordless    = "webauthn_passwordless"
	// ceremonyTTL is how long a page may wait for the authenticator.
	ceremonyTTL = 5 * time.Minute
	// maxFactorName bounds the name a person gives a factor.
	maxFactorName = 64
)

// ErrNoFactorEnrolled says an account has no factor of the kind asked for.
var ErrNoFactorEnrolled = errors.New("no such second factor enrolled")

// MFAStore is what SecondFactors needs from storage.
type MFAStore interface {
	MFAFactors(ctx context.Context, userID string) ([]storage.MFAFactor, error)
	MFAFactor(ctx context.Context, userID, id string) (*storage.MFAFactor, error)
	MFAFactorByCredentialID(ctx context.Context, credentialID []byte) (*storage.MFAFactor, error)
	CreateMFAFactor(ctx context.Context, f *storage.MFAFactor, totpSecret []byte) error
	ConfirmMFAFactor(ctx context.Context, userID, id string, step int64, at time.Time) error
	RenameMFAFactor(ctx context.Context, userID, id, name string) error
	DeleteMFAFactor(ctx context.Context, userID, id string) error
	DeleteMFAFactors(ctx context.Context, userID string) (int64, error)
	TOTPSecret(ctx context.Context, f *storage.MFAFactor) ([]byte, error)
	UseTOTPStep(ctx context.Context, userID, factorID string, step int64, at time.Time) (bool, error)
	UpdateWebAuthnCredential(ctx context.Context, userID, id string, credential []byte, at time.Time) error
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, at time.Time) error
	UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) (bool, int, error)
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
	RememberMFADevice(ctx context.Context, userID, deviceID string, at time.Time) error
	MFADeviceRememberedAt(ctx context.Context, userID, deviceID string) (time.Time, error)
	MFAGraceStart(ctx context.Context, userID string, now time.Time) (time.Time, error)
	PutMFAChallenge(ctx context.Context, c storage.MFAChallenge) error
	TakeMFAChallenge(ctx context.Context, id, kind string, now time.Time) (*storage.MFAChallenge, error)
	MarkSecondFactor(ctx context.Context, sessionID string, at time.Time) error
	RateBudget
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

var _ MFAStore = (*storage.Store)(nil)

// SecondFactors owns the second factors of accounts: TOTP authenticators,
// WebAuthn passkeys and security keys, and recovery codes. It enrols and
// removes them, decides whether a sign-in needs one (the pipeline's mfa
// gate) and verifies them for the pipeline's second-factor step.
type SecondFactors struct {
	store    MFAStore
	webauthn *mfa.WebAuthn // nil: passkeys unavailable
	issuer   string        // what authenticator apps show above the code
	recorder *audit.Recorder
	logger   *slog.Logger
	now      func() time.Time
}

// NewSecondFactors returns the service. webauthn may be nil (passkeys are
// then not offered); issuer names the service in authenticator apps.
func NewSecondFactors(store MFAStore, webauthn *mfa.WebAuthn, issuer string, recorder *audit.Recorder, logger *slog.Logger, now func() time.Time) *SecondFactors {
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	if issuer == "" {
		issuer = "Portcullis"
	}
	return &SecondFactors{store: store, webauthn: webauthn, issuer: issuer, recorder: recorder, logger: logger, now: now}
}

// Passkeys reports whether WebAuthn is configured.
func (s *SecondFactors) Passkeys() bool { return s != nil && s.webauthn != nil }

// Factor is an enrolled factor as pages and the admin API show it.
type Factor struct {
	ID         string
	Type       string // storage.FactorTOTP or storage.FactorWebAuthn
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// Enrolled lists the account's confirmed factors, oldest first.
func (s *SecondFactors) Enrolled(ctx context.Context, userID string) ([]Factor, error) {
	fs, err := s.confirmed(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Factor, 0, len(fs))
	for _, f := range fs {
		out = append(out, Factor{ID: f.ID, Type: f.Type, Name: f.Name, CreatedAt: f.CreatedAt, LastUsedAt: f.LastUsedAt})
	}
	return out, nil
}

func (s *SecondFactors) confirmed(ctx context.Context, userID string) ([]storage.MFAFactor, error) {
	fs, err := s.store.MFAFactors(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list second factors of user %s: %w", userID, err)
	}
	return slices.DeleteFunc(fs, func(f storage.MFAFactor) bool { return f.ConfirmedAt == nil }), nil
}

// kinds is the set of factor types among fs.
func kinds(fs []storage.MFAFactor) []string {
	var out []string
	for _, f := range fs {
		if !slices.Contains(out, f.Type) {
			out = append(out, f.Type)
		}
	}
	return out
}

// Next decides what a sign-in of u, whose password was just proven, needs
// before it completes under pol: nothing, a second factor, or enrolment.
// Under a required policy the account's grace period starts at the first
// sign-in that finds it without a factor.
func (s *SecondFactors) Next(ctx context.Context, pol policies.MFA, u *storage.User, deviceID string, wantMFA bool, now time.Time) (policies.MFAStep, error) {
	fs, err := s.confirmed(ctx, u.ID)
	if err != nil {
		return policies.MFANone, err
	}
	facts := policies.MFAFacts{Factors: kinds(fs), WantMFA: wantMFA}
	if len(pol.Usable(facts.Factors)) > 0 && pol.RememberDevice > 0 && deviceID != "" {
		if facts.RememberedAt, err = s.store.MFADeviceRememberedAt(ctx, u.ID, deviceID); err != nil {
			return policies.MFANone, fmt.Errorf("read remembered device of user %s: %w", u.ID, err)
		}
	}
	if len(pol.Usable(facts.Factors)) == 0 && pol.Requirement == policies.MFARequired {
		if facts.GraceStart, err = s.store.MFAGraceStart(ctx, u.ID, now); err != nil {
			return policies.MFANone, fmt.Errorf("read mfa grace of user %s: %w", u.ID, err)
		}
	}
	return pol.Next(now, facts), nil
}

// FactorAttempt is one try at a second factor, for a sign-in whose
// password was proven, or for a signed-in person stepping up before a
// sensitive action.
type FactorAttempt struct {
	UserID   string
	ClientID string
	// Action is the sensitive action stepped up for; empty for a sign-in.
	Action string
	// Code is a TOTP code or a recovery code.
	Code string
	// Ceremony and Response are a passkey assertion: the ceremony id the
	// page was given and the authenticator's answer.
	Ceremony string
	Response []byte
}

// verified is what a successful factor check proved.
type verified struct {
	factor       string // storage.FactorTOTP, storage.FactorWebAuthn, FactorRecoveryCode
	recoveryLeft int
}

// verify checks the factor of a; a wrong one is a Deny, never an error.
// Codes spend the account's attempt budget first, so that six digits
// cannot be ground through below the lockout threshold.
func (s *SecondFactors) verify(ctx context.Context, c *Check, a FactorAttempt) (Decision, verified, error) {
	pol := c.Policy.MFA
	u := c.User
	if a.Response != nil {
		return s.verifyPasskey(ctx, c, a)
	}
	ok, _, err := s.store.TakeRateBudget(ctx, "mfa:user:"+u.ID, pol.TOTP.AttemptWindow.D(), int64(pol.TOTP.MaxAttempts))
	if err != nil {
		return Decision{}, verified{}, fmt.Errorf("take second-factor budget of user %s: %w", u.ID, err)
	}
	if !ok {
		return Denied(ReasonMFAThrottled, time.Time{}), verified{}, nil
	}
	if mfa.IsTOTPShaped(a.Code) {
		return s.verifyTOTP(ctx, c, a.Code)
	}
	code, shaped := mfa.NormalizeRecoveryCode(a.Code)
	if !shaped {
		return Denied(ReasonBadSecondFactor, time.Time{}), verified{}, nil
	}
	used, left, err := s.store.UseRecoveryCode(ctx, u.ID, mfa.HashRecoveryCode(code), c.Now)
	if err != nil {
		return Decision{}, verified{}, fmt.Errorf("use recovery code of user %s: %w", u.ID, err)
	}
	if !used {
		return Denied(ReasonBadSecondFactor, time.Time{}), verified{}, nil
	}
	return Proceed(), verified{factor: FactorRecoveryCode, recoveryLeft: left}, nil
}

func (s *SecondFactors) verifyTOTP(ctx context.Context, c *Check, code string) (Decision, verified, error) {
	pol := c.Policy.MFA
	if !pol.Allows(storage.FactorTOTP) {
		return Denied(ReasonBadSecondFactor, time.Time{}), verified{}, nil
	}
	fs, err := s.confirmed(ctx, c.User.ID)
	if err != nil {
		return Decision{}, verified{}, err
	}
	for i := range fs {
		f := &fs[i]
		if f.Type != storage.FactorTOTP {
			continue
		}
		secret, err := s.store.TOTPSecret(ctx, f)
		if err != nil {
			return Decision{}, verified{}, fmt.Errorf("open totp secret of user %s: %w", c.User.ID, err)
		}
		step, ok := mfa.MatchTOTP(secret, code, c.Now, uint(pol.TOTP.Skew))
		if !ok {
			continue
		}
		// One conditional update: of parallel submissions of one code
		// exactly one consumes its time step; a reused code fails.
		used, err := s.store.UseTOTPStep(ctx, c.User.ID, f.ID, step, c.Now)
		if err != nil {
			return Decision{}, verified{}, fmt.Errorf("use totp step of user %s: %w", c.User.ID, err)
		}
		if used {
			return Proceed(), verified{factor: storage.FactorTOTP}, nil
		}
	}
	return Denied(ReasonBadSecondFactor, time.Time{}), verified{}, nil
}

func (s *SecondFactors) verifyPasskey(ctx context.Context, c *Check, a FactorAttempt) (Decision, verified, error) {
	if s.webauthn == nil || !c.Policy.MFA.Allows(storage.FactorWebAuthn) {
		return Denied(ReasonBadSecondFactor, time.Time{}), verified{}, nil
	}
	ch, err := s.store.TakeMFAChallenge(ctx, a.Ceremony, ceremonyPasskeyLogin, c.Now)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && ch.UserID != c.User.ID) {
		return Denied(ReasonBadSecondFactor, time.Time{}), verified{}, nil
	}
	if err != nil {
		return Decision{}, verified{}, fmt.Errorf("take passkey ceremony: %w", err)
	}
	acct, fs, err := s.account(ctx, c.User)
	if err != nil {
		return Decision{}, verified{}, err
	}
	cred, err := s.webauthn.FinishLogin(acct, ch.Data, a.Response)
	if errors.Is(err, mfa.ErrWebAuthnFailed) {
		s.logger.InfoContext(ctx, "passkey assertion refused", slog.String("user_id", c.User.ID), slog.Any("error", err))
		return Denied(ReasonBadSecondFactor, time.Time{}), verified{}, nil
	}
	if err != nil {
		return Decision{}, verified{}, fmt.Errorf("verify passkey of user %s: %w", c.User.ID, err)
	}
	if err := s.saveCredential(ctx, c.User.ID, fs, cred, c.Now); err != nil {
		return Decision{}, verified{}, err
	}
	return Proceed(), verified{factor: storage.FactorWebAuthn}, nil
}

// account is u as WebAuthn sees it, with its confirmed passkeys.
func (s *SecondFactors) account(ctx context.Context, u *storage.User) (mfa.Account, []storage.MFAFactor, error) {
	fs, err := s.confirmed(ctx, u.ID)
	if err != nil {
		return mfa.Account{}, nil, err
	}
	acct := mfa.Account{ID: []byte(u.ID), Name: u.Username, DisplayName: u.Username}
	var keys []storage.MFAFactor
	for _, f := range fs {
		if f.Type != storage.FactorWebAuthn {
			continue
		}
		cred, err := mfa.UnmarshalCredential(f.Credential)
		if err != nil {
			return mfa.Account{}, nil, fmt.Errorf("read passkey %s of user %s: %w", f.ID, u.ID, err)
		}
		acct.Credentials = append(acct.Credentials, cred)
		keys = append(keys, f)
	}
	return acct, keys, nil
}

// saveCredential stores the credential after a use (its signature count).
func (s *SecondFactors) saveCredential(ctx context.Context, userID string, fs []storage.MFAFactor, cred *webauthn.Credential, now time.Time) error {
	for _, f := range fs {
		if string(f.CredentialID) != string(cred.ID) {
			continue
		}
		b, err := mfa.MarshalCredential(cred)
		if err != nil {
			return err
		}
		if err := s.store.UpdateWebAuthnCredential(ctx, userID, f.ID, b, now); err != nil {
			return fmt.Errorf("save passkey use of user %s: %w", userID, err)
		}
		return nil
	}
	return fmt.Errorf("passkey of user %s: used credential not among the account's", userID)
}

// BeginPasskey starts a second-factor passkey ceremony for u: the options
// for the page's script, and the ceremony id the answer must name.
func (s *SecondFactors) BeginPasskey(ctx context.Context, u *storage.User) (options []byte, ceremony string, err error) {
	if s.webauthn == nil {
		return nil, "", ErrNoFactorEnrolled
	}
	acct, _, err := s.account(ctx, u)
	if err != nil {
		return nil, "", err
	}
	if len(acct.Credentials) == 0 {
		return nil, "", ErrNoFactorEnrolled
	}
	options, session, err := s.webauthn.BeginLogin(acct)
	if err != nil {
		return nil, "", fmt.Errorf("begin passkey sign-in of user %s: %w", u.ID, err)
	}
	id, err := s.putCeremony(ctx, u.ID, ceremonyPasskeyLogin, session)
	return options, id, err
}

func (s *SecondFactors) putCeremony(ctx context.Context, userID, kind string, data []byte) (string, error) {
	id := randomSecret()
	err := s.store.PutMFAChallenge(ctx, storage.MFAChallenge{ID: id, UserID: userID, Kind: kind, Data: data,
		ExpiresAt: s.now().UTC().Add(ceremonyTTL)})
	if err != nil {
		return "", fmt.Errorf("store %s ceremony: %w", kind, err)
	}
	return id, nil
}

// TOTPEnrolment is an authenticator app being set up: what the page shows
// (the secret as text and as a QR code of its otpauth URI) and the id of
// the pending factor that a right code confirms.
type TOTPEnrolment struct {
	FactorID string
	Secret   string // base32, as typed into an app
	URI      string // otpauth://totp/…
	QRCode   string // data: URL of a PNG of URI
}

// StartTOTP creates a pending TOTP factor for u, replacing any earlier
// pending one, and returns what the enrolment page shows.
func (s *SecondFactors) StartTOTP(ctx context.Context, u *storage.User) (*TOTPEnrolment, error) {
	fs, err := s.store.MFAFactors(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("start totp enrolment of user %s: %w", u.ID, err)
	}
	for _, f := range fs {
		if f.ConfirmedAt == nil && f.Type == storage.FactorTOTP {
			if err := s.store.DeleteMFAFactor(ctx, u.ID, f.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("start totp enrolment of user %s: drop pending: %w", u.ID, err)
			}
		}
	}
	key, err := mfa.NewTOTPKey(s.issuer, u.Username)
	if err != nil {
		return nil, fmt.Errorf("start totp enrolment of user %s: %w", u.ID, err)
	}
	secret, err := mfa.TOTPSecretBytes(key.Secret())
	if err != nil {
		return nil, fmt.Errorf("start totp enrolment of user %s: %w", u.ID, err)
	}
	f := &storage.MFAFactor{ID: uuid.NewString(), UserID: u.ID, Type: storage.FactorTOTP,
		Name: "Authenticator app", CreatedAt: s.now().UTC()}
	if err := s.store.CreateMFAFactor(ctx, f, secret); err != nil {
		return nil, fmt.Errorf("start totp enrolment of user %s: %w", u.ID, err)
	}
	uri := mfa.TOTPURI(s.issuer, u.Username, secret)
	png, err := mfa.QRCodePNG(uri, 240)
	if err != nil {
		return nil, fmt.Errorf("start totp enrolment of user %s: qr code: %w", u.ID, err)
	}
	return &TOTPEnrolment{FactorID: f.ID, Secret: mfa.TOTPSecretBase32(secret), URI: uri,
		QRCode: "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)}, nil
}

// PendingTOTP returns the enrolment page of u's pending TOTP factor id
// again (a wrong code, a reload), or ErrNoFactorEnrolled.
func (s *SecondFactors) PendingTOTP(ctx context.Context, u *storage.User, id string) (*TOTPEnrolment, error) {
	f, err := s.store.MFAFactor(ctx, u.ID, id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (f.ConfirmedAt != nil || f.Type != storage.FactorTOTP)) {
		return nil, ErrNoFactorEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("read pending totp of user %s: %w", u.ID, err)
	}
	secret, err := s.store.TOTPSecret(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("open pending totp of user %s: %w", u.ID, err)
	}
	uri := mfa.TOTPURI(s.issuer, u.Username, secret)
	png, err := mfa.QRCodePNG(uri, 240)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	return &TOTPEnrolment{FactorID: f.ID, Secret: mfa.TOTPSecretBase32(secret), URI: uri,
		QRCode: "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)}, nil
}

// Enrolled factors: what confirming one hands back.
type EnrolResult struct {
	Factor Factor
	// RecoveryCodes are shown once, when this is the account's first
	// factor and it had no codes; nil otherwise.
	RecoveryCodes []string
}

// ConfirmTOTP completes the pending TOTP factor id of u when code is the
// app's current code: enrolment proves the app was set up right. ok is
// false for a wrong code.
func (s *SecondFactors) ConfirmTOTP(ctx context.Context, u *storage.User, id, code, name string, actor Actor) (*EnrolResult, bool, error) {
	f, err := s.store.MFAFactor(ctx, u.ID, id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (f.ConfirmedAt != nil || f.Type != storage.FactorTOTP)) {
		return nil, false, ErrNoFactorEnrolled
	}
	if err != nil {
		return nil, false, fmt.Errorf("confirm totp of user %s: %w", u.ID, err)
	}
	secret, err := s.store.TOTPSecret(ctx, f)
	if err != nil {
		return nil, false, fmt.Errorf("confirm totp of user %s: %w", u.ID, err)
	}
	now := s.now()
	step, ok := mfa.MatchTOTP(secret, code, now, 1)
	if !ok {
		return nil, false, nil
	}
	f.Name = factorName(name, "Authenticator app")
	res, err := s.enrolled(ctx, u, f, actor, func(ctx context.Context) error {
		if err := s.store.ConfirmMFAFactor(ctx, u.ID, f.ID, step, now); err != nil {
			if errors.Is(err, storage.ErrAlreadyUsed) {
				return ErrNoFactorEnrolled
			}
			return err
		}
		return s.store.RenameMFAFactor(ctx, u.ID, f.ID, f.Name)
	})
	return res, err == nil, err
}

// enrolled runs confirm, then issues the first recovery codes if the
// account has none, and records the enrolment, in one transaction.
func (s *SecondFactors) enrolled(ctx context.Context, u *storage.User, f *storage.MFAFactor, actor Actor, confirm func(context.Context) error) (*EnrolResult, error) {
	res := &EnrolResult{}
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		res.RecoveryCodes = nil
		if err := confirm(ctx); err != nil {
			return err
		}
		left, err := s.store.RecoveryCodesLeft(ctx, u.ID)
		if err != nil {
			return err
		}
		if left == 0 {
			if res.RecoveryCodes, err = s.replaceRecoveryCodes(ctx, u.ID); err != nil {
				return err
			}
		}
		return s.record(ctx, audit.TypeMFAEnrolled, u.ID, actor, map[string]any{"factor_id": f.ID, "type": f.Type, "name": f.Name})
	})
	if err != nil {
		return nil, fmt.Errorf("enrol %s for user %s: %w", f.Type, u.ID, err)
	}
	now := s.now().UTC()
	res.Factor = Factor{ID: f.ID, Type: f.Type, Name: f.Name, CreatedAt: f.CreatedAt, LastUsedAt: &now}
	return res, nil
}

func (s *SecondFactors) replaceRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes, err := mfa.NewRecoveryCodes()
	if err != nil {
		return nil, err
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		n, _ := mfa.NormalizeRecoveryCode(c)
		hashes[i] = mfa.HashRecoveryCode(n)
	}
	if err := s.store.ReplaceRecoveryCodes(ctx, userID, hashes, s.now()); err != nil {
		return nil, err
	}
	return codes, nil
}

// RegenerateRecoveryCodes replaces u's recovery codes with new ones, shown
// once; the old ones stop working.
func (s *SecondFactors) RegenerateRecoveryCodes(ctx context.Context, userID string, actor Actor) ([]string, error) {
	var codes []string
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if codes, err = s.replaceRecoveryCodes(ctx, userID); err != nil {
			return err
		}
		return s.record(ctx, audit.TypeMFARecoveryCodes, userID, actor, map[string]any{"count": len(codes)})
	})
	if err != nil {
		return nil, fmt.Errorf("regenerate recovery codes of user %s: %w", userID, err)
	}
	return codes, nil
}

// RecoveryCodesLeft is how many unused recovery codes u has.
func (s *SecondFactors) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	n, err := s.store.RecoveryCodesLeft(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("count recovery codes of user %s: %w", userID, err)
	}
	return n, nil
}

// BeginPasskeyRegistration starts adding a passkey or security key to u.
func (s *SecondFactors) BeginPasskeyRegistration(ctx context.Context, u *storage.User, discoverable bool) (options []byte, ceremony string, err error) {
	if s.webauthn == nil {
		return nil, "", ErrNoFactorEnrolled
	}
	acct, _, err := s.account(ctx, u)
	if err != nil {
		return nil, "", err
	}
	options, session, err := s.webauthn.BeginRegistration(acct, discoverable)
	if err != nil {
		return nil, "", fmt.Errorf("begin passkey registration of user %s: %w", u.ID, err)
	}
	id, err := s.putCeremony(ctx, u.ID, ceremonyPasskeyRegister, session)
	return options, id, err
}

// FinishPasskeyRegistration verifies the authenticator's answer and adds
// the passkey. ok is false when the ceremony failed (cancelled, expired,
// refused by verification): nothing was added.
func (s *SecondFactors) FinishPasskeyRegistration(ctx context.Context, u *storage.User, ceremony string, response []byte, name string, actor Actor) (*EnrolResult, bool, error) {
	if s.webauthn == nil {
		return nil, false, ErrNoFactorEnrolled
	}
	now := s.now()
	ch, err := s.store.TakeMFAChallenge(ctx, ceremony, ceremonyPasskeyRegister, now)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && ch.UserID != u.ID) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("take passkey registration: %w", err)
	}
	acct, _, err := s.account(ctx, u)
	if err != nil {
		return nil, false, err
	}
	cred, err := s.webauthn.FinishRegistration(acct, ch.Data, response)
	if errors.Is(err, mfa.ErrWebAuthnFailed) {
		s.logger.InfoContext(ctx, "passkey registration refused", slog.String("user_id", u.ID), slog.Any("error", err))
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("finish passkey registration of user %s: %w", u.ID, err)
	}
	b, err := mfa.MarshalCredential(cred)
	if err != nil {
		return nil, false, err
	}
	f := &storage.MFAFactor{ID: uuid.NewString(), UserID: u.ID, Type: storage.FactorWebAuthn,
		Name: factorName(name, "Passkey"), CredentialID: cred.ID, Credential: b, CreatedAt: now.UTC()}
	res, err := s.enrolled(ctx, u, f, actor, func(ctx context.Context) error {
		if err := s.store.CreateMFAFactor(ctx, f, nil); err != nil {
			return err
		}
		return s.store.ConfirmMFAFactor(ctx, u.ID, f.ID, 0, now)
	})
	return res, err == nil, err
}

// BeginPasswordless starts a sign-in with a discoverable passkey, before
// anyone is known.
func (s *SecondFactors) BeginPasswordless(ctx context.Context) (options []byte, ceremony string, err error) {
	if s.webauthn == nil {
		return nil, "", ErrNoFactorEnrolled
	}
	options, session, err := s.webauthn.BeginDiscoverableLogin()
	if err != nil {
		return nil, "", fmt.Errorf("begin passwordless sign-in: %w", err)
	}
	id, err := s.putCeremony(ctx, "", ceremonyPasswordless, session)
	return options, id, err
}

// passwordless verifies a discoverable passkey's answer and names the
// account it belongs to; userID is empty when it proves nobody.
func (s *SecondFactors) passwordless(ctx context.Context, ceremony string, response []byte, users UserStore, now time.Time) (userID string, err error) {
	ch, err := s.store.TakeMFAChallenge(ctx, ceremony, ceremonyPasswordless, now)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("take passwordless ceremony: %w", err)
	}
	var keys []storage.MFAFactor
	lookup := func(rawID, userHandle []byte) (mfa.Account, error) {
		f, err := s.store.MFAFactorByCredentialID(ctx, rawID)
		if err != nil {
			return mfa.Account{}, err
		}
		if f.UserID != string(userHandle) {
			return mfa.Account{}, fmt.Errorf("passkey user handle does not match its account: %w", mfa.ErrWebAuthnFailed)
		}
		u, err := users.User(ctx, f.UserID)
		if err != nil {
			return mfa.Account{}, err
		}
		acct, fs, err := s.account(ctx, u)
		keys = fs
		return acct, err
	}
	acct, cred, err := s.webauthn.FinishDiscoverableLogin(ch.Data, response, lookup)
	if errors.Is(err, mfa.ErrWebAuthnFailed) || errors.Is(err, storage.ErrNotFound) {
		s.logger.InfoContext(ctx, "passwordless passkey refused", slog.Any("error", err))
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("verify passwordless passkey: %w", err)
	}
	if err := s.saveCredential(ctx, string(acct.ID), keys, cred, now); err != nil {
		return "", err
	}
	return string(acct.ID), nil
}

// Rename names factor id of userID.
func (s *SecondFactors) Rename(ctx context.Context, userID, id, name string) error {
	if err := s.store.RenameMFAFactor(ctx, userID, id, factorName(name, "")); err != nil {
		return fmt.Errorf("rename factor %s of user %s: %w", id, userID, err)
	}
	return nil
}

// Remove deletes factor id of userID. Removing the last factor also drops
// the recovery codes: they are a fallback for a factor, not one.
func (s *SecondFactors) Remove(ctx context.Context, userID, id string, actor Actor) error {
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		f, err := s.store.MFAFactor(ctx, userID, id)
		if err != nil {
			return err
		}
		if err := s.store.DeleteMFAFactor(ctx, userID, id); err != nil {
			return err
		}
		left, err := s.confirmed(ctx, userID)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			// Recovery codes and remembered devices stood for factors
			// that are gone; a factor enrolled later starts afresh.
			if _, err := s.store.DeleteMFAFactors(ctx, userID); err != nil {
				return err
			}
		}
		return s.record(ctx, audit.TypeMFARemoved, userID, actor, map[string]any{"factor_id": id, "type": f.Type, "name": f.Name})
	})
	if err != nil {
		return fmt.Errorf("remove factor %s of user %s: %w", id, userID, err)
	}
	return nil
}

// Reset removes every factor, recovery code and remembered device of
// userID: the account must enrol again where MFA is required.
func (s *SecondFactors) Reset(ctx context.Context, userID string, actor Actor) (int64, error) {
	var n int64
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if n, err = s.store.DeleteMFAFactors(ctx, userID); err != nil {
			return err
		}
		return s.record(ctx, audit.TypeMFAReset, userID, actor, map[string]any{"factors": n})
	})
	if err != nil {
		return 0, fmt.Errorf("reset factors of user %s: %w", userID, err)
	}
	return n, nil
}

// remember records that this device passed a second factor for userID,
// when the policy remembers devices.
func (s *SecondFactors) remember(ctx context.Context, pol policies.MFA, userID, deviceID string) {
	if pol.RememberDevice <= 0 || deviceID == "" {
		return
	}
	if err := s.store.RememberMFADevice(ctx, userID, deviceID, s.now()); err != nil {
		// The next sign-in asks for the factor again: annoying, not unsafe.
		s.logger.WarnContext(ctx, "remember mfa device", slog.String("user_id", userID), slog.Any("error", err))
	}
}

func (s *SecondFactors) record(ctx context.Context, typ, userID string, actor Actor, details map[string]any) error {
	for k, v := range actor.Details {
		details[k] = v
	}
	if err := s.recorder.Record(ctx, audit.Event{Type: typ, Actor: actor.ID, UserID: userID, Outcome: audit.OutcomeSuccess,
		Details: details}); err != nil {
		return fmt.Errorf("record %s: %w", typ, err)
	}
	return nil
}

// factorName cleans a name a person typed: trimmed, at most maxFactorName
// bytes, fallback when empty.
func factorName(name, fallback string) string {
	// Control and bidirectional-override characters would let a name
	// disguise itself in the admin API and the CLI.
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	name = truncateUTF8(strings.Join(strings.Fields(name), " "), maxFactorName)
	if name == "" {
		return fallback
	}
	return name
}

// SecondFactorProof is how a sign-in that ended with factor was made, for
// the session and the ID token (RFC 8176 amr; acr).
func SecondFactorProof(clientID, factor string, password bool) Proof {
	var amr []string
	if password {
		amr = append(amr, AMRPassword)
	}
	switch factor {
	case storage.FactorWebAuthn:
		amr = append(amr, AMRHWK)
		if !password {
			amr = append(amr, AMRUser)
		}
	default:
		amr = append(amr, AMROTP)
	}
	amr = append(amr, AMRMFA)
	return Proof{ClientID: clientID, AMR: amr, ACR: policies.ACRMultiFactor, SecondFactor: true}
}
