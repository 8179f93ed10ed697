package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

// Attempt is one try at proving who someone is.
type Attempt struct {
	Username string
	Password string
	// IP is the client address and DeviceID the device the attempt comes
	// from. Left empty, PasswordLogin takes them from the request (reqinfo),
	// as the server resolved them, so every step sees the same values.
	IP       string
	DeviceID string
	// ClientID is the OAuth client the attempt is made for, when known; it
	// will select the per-application policy.
	ClientID string
	// UserID, when set, names the account and Username is ignored: a
	// signed-in user confirming their password before a sensitive action.
	UserID string
	// Action is that sensitive action (policies.ActionPasswordChange, …);
	// empty for a sign-in. It is recorded with the outcome.
	Action string
	// CaptchaSolved says the caller checked a captcha answer sent with the
	// attempt and it was right; a gate that demands a captcha lets only
	// such attempts through to the password check.
	CaptchaSolved bool
	// WantMFA says the request signed in for asks for a second factor
	// (acr_values naming policies.ACRMultiFactor): an account that has one
	// is asked for it whatever mfa.requirement says.
	WantMFA bool
}

// Outcome is how an Attempt ended. Reason is machine-readable, for audit
// and counters; a person must never be shown it, since it tells whether
// an account exists. User is set only when OK, so no caller can start a
// session from a failed attempt by mistake.
type Outcome struct {
	User   *storage.User
	OK     bool
	Reason string
	// Decision is the pipeline's verdict in full: Allow, Deny (with until
	// when it is known) or Challenge. It is what the person is told: for
	// the wrong password that locked the account, Reason stays
	// bad_password (it was counted) and Decision says locked, until when.
	Decision Decision

	// Factor is the second factor a successful second-factor attempt used
	// (storage.FactorTOTP, storage.FactorWebAuthn, FactorRecoveryCode),
	// and RecoveryCodesLeft how many recovery codes remain after one.
	Factor            string
	RecoveryCodesLeft int

	locked bool // this attempt's failure started a lock
	// proven is the account whose password this attempt proved when a
	// challenge still stands between it and a session (a password
	// change, a second factor): the login page works on, never a session
	// from it.
	proven *storage.User
}

// Outcome reasons.
const (
	ReasonOK          = "ok"
	ReasonUnknownUser = "unknown_user"
	ReasonBadPassword = "bad_password"
	ReasonDisabled    = "disabled"
	// Defence rules (lockout, IP rules, captcha).
	ReasonLocked          = "locked"           // the account is locked
	ReasonDeviceLocked    = "device_locked"    // this device is locked for the account
	ReasonIPBlocked       = "ip_blocked"       // too many failures from this address
	ReasonIPRule          = "ip_rule"          // an IP allow or block list refuses the address
	ReasonCaptchaRequired = "captcha_required" // a captcha must be solved first
	ReasonCaptchaWrong    = "captcha_wrong"    // the captcha answer was missing or wrong
	// Account lifecycle.
	ReasonAccountExpired     = "account_expired"      // the account's expiry date has passed
	ReasonPasswordExpired    = "password_expired"     // the password is older than password.expire_days
	ReasonPasswordInvalid    = "password_invalid"     // the password no longer meets the policy
	ReasonPasswordMustChange = "password_must_change" // an administrator asked for a new password
	ReasonEmailUnverified    = "email_unverified"     // the account's email address is still to be verified
)

// maxLoggedUsername bounds what an attacker can push into one log line.
const maxLoggedUsername = 128

// Verdict is the kind of a Decision.
type Verdict int

// Verdicts. Continue leaves the attempt to the next step.
const (
	Continue Verdict = iota
	Allow
	Deny
	Challenge
)

// Challenge kinds: what the person must do next before the attempt can
// succeed.
const (
	ChallengeCaptcha        = "captcha"
	ChallengeSecondFactor   = "second_factor"
	ChallengePasswordChange = "password_change"
	// ChallengeMFAEnrollment: the account must enrol a second factor (or,
	// inside its grace period, may skip it).
	ChallengeMFAEnrollment = "mfa_enrollment"
)

// Decision is what a step decides about an attempt. Expected outcomes are
// decisions, never errors; error is for infrastructure failures.
type Decision struct {
	Verdict Verdict
	// Reason is machine-readable, for audit and counters.
	Reason string
	// Until is when a denied attempt may succeed again (a lock's end);
	// zero when it is not known or not a matter of time.
	Until time.Time
	// Challenge names what is asked of the person (Challenge* constants).
	Challenge string
}

// Decision constructors, for steps.
func Proceed() Decision { return Decision{} }
func Denied(reason string, until time.Time) Decision {
	return Decision{Verdict: Deny, Reason: reason, Until: until}
}
func Challenged(kind, reason string) Decision {
	return Decision{Verdict: Challenge, Challenge: kind, Reason: reason}
}

// Phase orders the steps of an attempt.
type Phase int

// Phases, in the order they run.
const (
	// PhaseNetwork gates run first, before the account is even looked up:
	// IP allow and block lists, per-IP budgets. A denial here costs no
	// hashing, which is the point of a budget.
	PhaseNetwork Phase = iota
	// PhaseAccount gates run once the account is known (it may not be):
	// disabled, locked, expired. A denial here still costs the hashing
	// work of a real check, so timing does not tell accounts apart.
	PhaseAccount
	// PhaseVerify checks the credential itself: the password, a second
	// factor, a passkey.
	PhaseVerify
)

// Check is what a step sees of an attempt.
type Check struct {
	Attempt
	// User is the account, nil when the username matches none.
	User *storage.User
	// Policy is the effective policy of Attempt.ClientID, resolved once
	// for the whole attempt.
	Policy policies.Policy
	// Global is the global policy, resolved once too: the account's own
	// rules (expiry, password age and policy) follow it, since every
	// application shares the account.
	Global policies.Policy
	// Now is the attempt's time, from the injected clock.
	Now time.Time

	// matched is the form of Password that matched the stored hash, and
	// proven says one did.
	matched typedPassword
	proven  bool
	// lock is what the lockout gate read.
	lock lockState
	// factor is the second-factor attempt this check verifies, nil for a
	// password; passwordless marks a passkey that stands for both.
	factor       *FactorAttempt
	passwordless bool
	verified     verified
}

// Hook is a step an embedding program adds to every sign-in, in a phase of
// its choosing. Run returns Proceed to let the attempt go on.
type Hook struct {
	Name  string
	Phase Phase
	Run   func(ctx context.Context, c *Check) (Decision, error)
}

// PolicySource gives the effective policy of an application ("" for the
// global one).
type PolicySource func(clientID string) policies.Policy

// PipelineOption configures a Pipeline.
type PipelineOption func(*Pipeline)

// WithHooks adds steps to every attempt, after the built-in steps of
// their phase.
func WithHooks(hooks ...Hook) PipelineOption {
	return func(p *Pipeline) { p.hooks = append(p.hooks, hooks...) }
}

// WithPolicies sets where each attempt's policy comes from; without it
// every attempt runs under the built-in defaults.
func WithPolicies(src PolicySource) PipelineOption {
	return func(p *Pipeline) { p.policies = src }
}

// WithLimiter bounds the memory of the password hashes attempts run at
// once; hashing beyond it waits briefly, then the attempt fails with an
// error wrapping hashing.ErrBusy (the server answers 503).
func WithLimiter(l *hashing.Limiter) PipelineOption {
	return func(p *Pipeline) { p.limiter = l }
}

// WithClock sets the clock; time.Now by default.
func WithClock(now func() time.Time) PipelineOption {
	return func(p *Pipeline) { p.now = now }
}

// WithBreaches lets the sign-in judge the typed password against the
// breached list when the policy's force_reset_if_invalid asks whether it
// still meets the policy.
func WithBreaches(b BreachChecker) PipelineOption {
	return func(p *Pipeline) { p.breaches = b }
}

// WithSecondFactors turns on multi-factor authentication: after the
// password, the mfa policy of the attempt's client decides whether a
// second factor or an enrolment is next (a Challenge), and SecondFactor
// and Passwordless check factors through the same gates and record phase
// as passwords.
func WithSecondFactors(f *SecondFactors) PipelineOption {
	return func(p *Pipeline) { p.factors = f }
}

// WithTransactions makes the record phase of an attempt one database
// transaction: the audit event (and, as they arrive, the failure
// counters) are written together or not at all.
func WithTransactions(tx Transactor) PipelineOption {
	return func(p *Pipeline) { p.tx = tx }
}

// Transactor runs fn in one database transaction.
type Transactor interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Pipeline runs every sign-in through the same phases, so a rule added as
// a step (lockout, captcha, MFA) applies to every way of signing in:
//
//	resolve the policy of the attempt's client, once
//	network gates  → Deny, no hashing
//	identify the account (no hashing)
//	account gates  → Deny, with the hashing work of a real check
//	verify the credential (an unknown account costs the same)
//	record, always, success or failure, in one transaction
//	→ Outcome: Allow (the caller completes the sign-in), Deny or Challenge
type Pipeline struct {
	users    UserStore
	params   hashing.Argon2
	limiter  *hashing.Limiter
	hasher   *hashing.Hasher
	logger   *slog.Logger
	recorder *audit.Recorder
	policies PolicySource
	now      func() time.Time
	tx       Transactor
	hooks    []Hook
	lockout  *lockout
	breaches BreachChecker
	factors  *SecondFactors
}

// NewPipeline returns the login pipeline. params holds the current password
// hashing parameters: the cost of the dummy hash for unknown accounts, and
// the target that older hashes are upgraded to. recorder receives a
// login.success or login.failed event per attempt; nil records nothing.
func NewPipeline(users UserStore, params hashing.Argon2, logger *slog.Logger, recorder *audit.Recorder, opts ...PipelineOption) *Pipeline {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Pipeline{users: users, params: params, logger: logger, recorder: recorder, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	p.hasher = hashing.NewHasher(p.params, p.limiter)
	if p.policies == nil {
		defaults := policies.Defaults()
		p.policies = func(string) policies.Policy { return defaults }
	}
	return p
}

// PasswordLogin checks a username and password. Failures of the attempt are
// an Outcome with OK false; the error is only for infrastructure failures.
func (p *Pipeline) PasswordLogin(ctx context.Context, a Attempt) (Outcome, error) {
	if a.IP == "" || a.DeviceID == "" {
		info := reqinfo.From(ctx)
		if a.IP == "" {
			a.IP = info.IPString()
		}
		if a.DeviceID == "" {
			a.DeviceID = info.DeviceID
		}
	}
	c := &Check{Attempt: a, Policy: p.policies(a.ClientID), Global: p.policies(""), Now: p.now()}
	d, err := p.decide(ctx, c)
	if err != nil {
		level := slog.LevelError
		if errors.Is(err, hashing.ErrBusy) {
			level = slog.LevelWarn // load shed as designed, in floods
		}
		p.logger.LogAttrs(ctx, level, "password login failed", append(p.logAttrs(c), slog.Any("error", err))...)
		return Outcome{}, fmt.Errorf("password login: %w", err)
	}
	out := Outcome{Decision: d, Reason: d.Reason}
	if d.Verdict == Allow {
		out.OK, out.User = true, c.User
	} else if c.proven {
		out.proven = c.User
	}
	out, err = p.recordPhase(ctx, c, out)
	if err != nil {
		return Outcome{}, fmt.Errorf("password login: record: %w", err)
	}
	level := slog.LevelInfo
	if !out.OK {
		level = slog.LevelWarn
	}
	p.logger.LogAttrs(ctx, level, "password login", append(p.logAttrs(c),
		slog.String("reason", out.Reason), slog.String("decision", out.Decision.Reason))...)
	if out.OK {
		p.rehash(ctx, c)
	}
	return out, nil
}

// Standing runs the account gates again for u, whose credential was
// proven earlier in a flow that has not finished yet (a password change
// it demanded, later a second factor): a lock, disablement or expiry that
// came meanwhile refuses it. Nothing is counted or recorded; the decision
// is Proceed or a Deny to tell as FailureMessage says.
func (p *Pipeline) Standing(ctx context.Context, u *storage.User, clientID string) (Decision, error) {
	info := reqinfo.From(ctx)
	c := &Check{Attempt: Attempt{ClientID: clientID, IP: info.IPString(), DeviceID: info.DeviceID, UserID: u.ID},
		User: u, Policy: p.policies(clientID), Global: p.policies(""), Now: p.now()}
	if d := p.accountGates(c); d.Verdict == Deny {
		return d, nil
	}
	if p.lockout != nil {
		d, err := p.lockout.accountGate(ctx, c)
		if err != nil || d.Verdict == Deny {
			return d, err
		}
	}
	return Proceed(), nil
}

// decide runs the gates and the verification and returns the verdict.
func (p *Pipeline) decide(ctx context.Context, c *Check) (Decision, error) {
	if d, err := p.networkPhase(ctx, c); err != nil || d.Verdict != Continue {
		return d, err
	}
	if err := p.identify(ctx, c); err != nil {
		return Decision{}, err
	}
	d, err := p.accountPhase(ctx, c)
	if err != nil {
		return Decision{}, err
	}
	if d.Verdict == Deny {
		// Same work as a real check: a locked or disabled account must
		// not answer faster than an open one.
		if err := p.hasher.Dummy(ctx, c.Password); err != nil {
			return Decision{}, err
		}
	}
	if d.Verdict != Continue {
		// A challenge (a captcha first) is answered before any password
		// work: refusing a missing answer costs nothing.
		return d, nil
	}
	if d, err := p.verifyPassword(ctx, c); err != nil || d.Verdict != Continue {
		return d, err
	}
	if d, err := p.runHooks(ctx, c, PhaseVerify); err != nil || d.Verdict != Continue {
		return d, err
	}
	if d, err := p.passwordGate(ctx, c); err != nil || d.Verdict != Continue {
		return d, err
	}
	if d, err := p.mfaGate(ctx, c); err != nil || d.Verdict != Continue {
		return d, err
	}
	return Decision{Verdict: Allow, Reason: ReasonOK}, nil
}

// mfaGate runs once the password is proven and every password rule
// passed: under the mfa policy of the attempt's client, a second factor
// or an enrolment may still be needed. It is never reached by a
// signed-in person confirming their password for an action.
func (p *Pipeline) mfaGate(ctx context.Context, c *Check) (Decision, error) {
	if p.factors == nil || c.Action != "" {
		return Proceed(), nil
	}
	step, err := p.factors.Next(ctx, c.Policy.MFA, c.User, c.DeviceID, c.WantMFA, c.Now)
	if err != nil {
		return Decision{}, err
	}
	switch step {
	case policies.MFAVerify:
		return Challenged(ChallengeSecondFactor, ReasonSecondFactorRequired), nil
	case policies.MFAEnrollOptional, policies.MFAEnrollRequired:
		return Challenged(ChallengeMFAEnrollment, ReasonMFAEnrollment), nil
	}
	return Proceed(), nil
}

// AfterPassword decides, for u whose password a flow proved and whose
// last password step just finished (a forced change), what the flow needs
// next: Proceed, or the mfa gate's Challenge.
func (p *Pipeline) AfterPassword(ctx context.Context, u *storage.User, clientID string, wantMFA bool) (Decision, error) {
	info := reqinfo.From(ctx)
	c := &Check{Attempt: Attempt{ClientID: clientID, IP: info.IPString(), DeviceID: info.DeviceID, UserID: u.ID, WantMFA: wantMFA},
		User: u, Policy: p.policies(clientID), Global: p.policies(""), Now: p.now()}
	return p.mfaGate(ctx, c)
}

// MFAStep is what the mfa policy of clientID asks of u now (the
// enrolment page reads whether the person may skip).
func (p *Pipeline) MFAStep(ctx context.Context, u *storage.User, clientID string, wantMFA bool) (policies.MFAStep, error) {
	if p.factors == nil {
		return policies.MFANone, nil
	}
	return p.factors.Next(ctx, p.policies(clientID).MFA, u, reqinfo.From(ctx).DeviceID, wantMFA, p.now())
}

// SecondFactor checks a second factor of a.UserID, whose password a
// login flow proved (or who is signed in and steps up before a sensitive
// action), through the same gates as a password: a locked account, device
// or address is refused before the code is looked at, and a wrong code is
// a failed credential for the lockout counters, recorded in the same
// transaction as its audit event.
func (p *Pipeline) SecondFactor(ctx context.Context, a FactorAttempt) (Outcome, error) {
	if p.factors == nil {
		return Outcome{}, errors.New("second factor: multi-factor authentication is not configured")
	}
	info := reqinfo.From(ctx)
	c := &Check{
		// The captcha guards password guessing, and the password is
		// proven: the factor's own budget and the lockout guard the code.
		Attempt: Attempt{UserID: a.UserID, ClientID: a.ClientID, Action: a.Action, IP: info.IPString(), DeviceID: info.DeviceID, CaptchaSolved: true},
		Policy:  p.policies(a.ClientID), Global: p.policies(""), Now: p.now(), factor: &a,
	}
	return p.run(ctx, c, "second factor")
}

// Passwordless signs in with a discoverable passkey alone, where the mfa
// policy of clientID allows it: the authenticator's answer names the
// account, and the account's gates and the record phase run as for a
// password. An answer that proves nobody is a failure like an unknown
// username.
func (p *Pipeline) Passwordless(ctx context.Context, clientID, ceremony string, response []byte) (Outcome, error) {
	if p.factors == nil {
		return Outcome{}, errors.New("passwordless: multi-factor authentication is not configured")
	}
	info := reqinfo.From(ctx)
	c := &Check{
		Attempt: Attempt{ClientID: clientID, IP: info.IPString(), DeviceID: info.DeviceID, CaptchaSolved: true},
		Policy:  p.policies(clientID), Global: p.policies(""), Now: p.now(),
		factor: &FactorAttempt{ClientID: clientID, Ceremony: ceremony, Response: response}, passwordless: true,
	}
	return p.run(ctx, c, "passwordless")
}

// run decides a factor check and records it.
func (p *Pipeline) run(ctx context.Context, c *Check, what string) (Outcome, error) {
	d, err := p.decideFactor(ctx, c)
	if err != nil {
		p.logger.LogAttrs(ctx, slog.LevelError, what+" failed", append(p.logAttrs(c), slog.Any("error", err))...)
		return Outcome{}, fmt.Errorf("%s: %w", what, err)
	}
	out := Outcome{Decision: d, Reason: d.Reason, Factor: c.verified.factor, RecoveryCodesLeft: c.verified.recoveryLeft}
	if d.Verdict == Allow {
		out.OK, out.User = true, c.User
	}
	out, err = p.recordPhase(ctx, c, out)
	if err != nil {
		return Outcome{}, fmt.Errorf("%s: record: %w", what, err)
	}
	level := slog.LevelInfo
	if !out.OK {
		level = slog.LevelWarn
	}
	p.logger.LogAttrs(ctx, level, what, append(p.logAttrs(c),
		slog.String("reason", out.Reason), slog.String("factor", out.Factor))...)
	if out.OK {
		pol := c.Policy.MFA
		if c.Action == "" {
			p.factors.remember(ctx, pol, c.User.ID, c.DeviceID)
		}
	}
	return out, nil
}

// decideFactor is decide for a second factor or a passkey: the same
// gates, the factor in place of the password.
func (p *Pipeline) decideFactor(ctx context.Context, c *Check) (Decision, error) {
	if d, err := p.networkPhase(ctx, c); err != nil || d.Verdict != Continue {
		return d, err
	}
	if c.passwordless {
		if !c.Policy.MFA.Passwordless || !c.Policy.MFA.Allows(storage.FactorWebAuthn) {
			return Denied(ReasonBadSecondFactor, time.Time{}), nil
		}
		id, err := p.factors.passwordless(ctx, c.factor.Ceremony, c.factor.Response, p.users, c.Now)
		if err != nil {
			return Decision{}, err
		}
		if id == "" {
			return Denied(ReasonBadSecondFactor, time.Time{}), nil
		}
		c.UserID = id
		c.verified = verified{factor: storage.FactorWebAuthn}
	}
	if err := p.identify(ctx, c); err != nil {
		return Decision{}, err
	}
	if c.User == nil {
		return Denied(ReasonUnknownUser, time.Time{}), nil
	}
	d, err := p.accountPhase(ctx, c)
	if err != nil {
		return Decision{}, err
	}
	if d.Verdict != Continue {
		return d, nil
	}
	if !c.passwordless {
		var v verified
		var err error
		if d, v, err = p.factors.verify(ctx, c, *c.factor); err != nil || d.Verdict != Continue {
			return d, err
		}
		c.verified = v
	}
	if d, err := p.runHooks(ctx, c, PhaseVerify); err != nil || d.Verdict != Continue {
		return d, err
	}
	if c.passwordless && c.Action == "" {
		// The passkey stood in for the password: what the password gate
		// asks of a sign-in (a verified address) it asks here too. A
		// password that must change is not this sign-in's concern.
		if c.Global.Registration.RequireEmailVerification && !c.User.EmailVerified && c.User.Email != "" {
			return Denied(ReasonEmailUnverified, time.Time{}), nil
		}
	}
	return Decision{Verdict: Allow, Reason: ReasonOK}, nil
}

// networkPhase runs the gates that need only the request's address: the
// address lockout, then the embedder's network hooks.
func (p *Pipeline) networkPhase(ctx context.Context, c *Check) (Decision, error) {
	if p.lockout != nil {
		if d, err := p.lockout.addressGate(ctx, c); err != nil || d.Verdict != Continue {
			return d, err
		}
	}
	return p.runHooks(ctx, c, PhaseNetwork)
}

// accountPhase runs the gates of the account found (none for an unknown
// one): disabled or expired, locked, then the embedder's account hooks.
func (p *Pipeline) accountPhase(ctx context.Context, c *Check) (Decision, error) {
	d := p.accountGates(c)
	if d.Verdict == Continue && p.lockout != nil {
		var err error
		if d, err = p.lockout.accountGate(ctx, c); err != nil {
			return Decision{}, err
		}
	}
	if d.Verdict == Continue {
		return p.runHooks(ctx, c, PhaseAccount)
	}
	return d, nil
}

// passwordGate runs once the password is proven: an email address still
// to verify (under require_email_verification) stops the sign-in; a
// password that has expired, that an administrator marked, or that no
// longer meets the policy (under force_reset_if_invalid) must be changed
// before the sign-in completes. It comes after verification so that it tells nothing
// to someone who does not know the password. The password belongs to the
// account, so the global policy judges it.
func (p *Pipeline) passwordGate(ctx context.Context, c *Check) (Decision, error) {
	if c.Action != "" {
		// A signed-in person confirming their password (to change it,
		// often): the sign-in already went through this gate.
		return Proceed(), nil
	}
	pol := c.Global.Password
	u := c.User
	if c.Global.Registration.RequireEmailVerification && !u.EmailVerified && u.Email != "" {
		// The address is proven before anything else: a link to it is
		// what every later recovery relies on.
		return Denied(ReasonEmailUnverified, time.Time{}), nil
	}
	if u.PasswordMustChange {
		return Challenged(ChallengePasswordChange, ReasonPasswordMustChange), nil
	}
	changed := u.CreatedAt
	if u.PasswordChangedAt != nil {
		changed = *u.PasswordChangedAt
	}
	if pol.Expired(changed, c.Now) {
		return Challenged(ChallengePasswordChange, ReasonPasswordExpired), nil
	}
	if pol.ForceResetIfInvalid == policies.ForceResetOff {
		return Proceed(), nil
	}
	facts := policies.FactsOf(c.matched.text, u.Username, u.Email)
	if p.breaches != nil && pol.CheckBreached {
		// The offline list only: a sign-in does not wait on a remote
		// service, and a password found there is refused at the change.
		offline := pol
		offline.HIBP = false
		breached, err := p.breaches.Breached(ctx, c.matched.text, offline)
		if err != nil {
			return Decision{}, fmt.Errorf("breached password check: %w", err)
		}
		facts.Breached = breached
	}
	if len(pol.Problems(facts)) == 0 {
		return Proceed(), nil
	}
	if pol.ForceResetIfInvalid == policies.ForceResetEmail {
		return Denied(ReasonPasswordInvalid, time.Time{}), nil
	}
	return Challenged(ChallengePasswordChange, ReasonPasswordInvalid), nil
}

func (p *Pipeline) runHooks(ctx context.Context, c *Check, phase Phase) (Decision, error) {
	for _, h := range p.hooks {
		if h.Phase != phase {
			continue
		}
		d, err := h.Run(ctx, c)
		if err != nil {
			return Decision{}, fmt.Errorf("step %s: %w", h.Name, err)
		}
		if d.Verdict == Allow {
			// A hook may deny or challenge, never wave an attempt through
			// the steps after it.
			d.Verdict = Continue
		}
		if d.Verdict != Continue {
			if d.Reason == "" {
				d.Reason = h.Name
			}
			return d, nil
		}
	}
	return Decision{}, nil
}

// recordPhase writes what happened, whatever it was, in one transaction.
func (p *Pipeline) recordPhase(ctx context.Context, c *Check, out Outcome) (Outcome, error) {
	if p.tx == nil {
		p.record(ctx, c, out)
		return out, nil
	}
	var (
		final   Outcome
		notices []LockNotice
	)
	err := p.tx.InTx(ctx, func(ctx context.Context) error {
		final, notices = out, nil
		var events []audit.Event
		if p.lockout != nil {
			var err error
			if final, err = p.lockout.record(ctx, c, out, &events, &notices); err != nil {
				return err
			}
		}
		p.record(ctx, c, final)
		for _, e := range events {
			if err := p.recorder.Record(ctx, e); err != nil {
				// A lock without its event would be unexplained; the
				// transaction goes back and the attempt is an error.
				return fmt.Errorf("record %s: %w", e.Type, err)
			}
		}
		return nil
	})
	if err != nil {
		return Outcome{}, err
	}
	for _, n := range notices {
		if p.lockout.notify != nil {
			p.lockout.notify(ctx, n)
		}
	}
	return final, nil
}

// record writes the outcome to the audit trail. The attempt is decided by
// then, so a failed write is logged (the recorder logs the event itself
// too) rather than turned into a failed sign-in.
func (p *Pipeline) record(ctx context.Context, st *Check, out Outcome) {
	e := audit.Event{
		Type: audit.TypeLoginSuccess, ClientID: st.ClientID, IP: st.IP, Device: st.DeviceID,
		Outcome: audit.OutcomeSuccess, Reason: out.Reason,
		// Only what was typed as a username; never the password.
		Details: map[string]any{"username": truncateUTF8(st.Username, maxLoggedUsername)},
	}
	if !out.OK {
		e.Type, e.Outcome = audit.TypeLoginFailed, audit.OutcomeFailure
	}
	if st.User != nil {
		e.UserID = st.User.ID
		e.Details["username"] = st.User.Username
	}
	if !out.Decision.Until.IsZero() {
		e.Details["until"] = out.Decision.Until.UTC().Format(time.RFC3339)
	}
	if out.locked {
		e.Details["locked"] = out.Decision.Reason
	}
	if out.Decision.Verdict == Challenge {
		e.Details["challenge"] = out.Decision.Challenge
	}
	if st.Action != "" {
		e.Details["action"] = st.Action
	}
	if st.factor != nil {
		e.Details["step"] = "second_factor"
		if st.passwordless {
			e.Details["step"] = "passwordless"
		}
		if out.Factor != "" {
			e.Details["factor"] = out.Factor
		}
	}
	if out.OK {
		e.Actor = e.UserID
	}
	if err := p.recorder.Record(ctx, e); err != nil {
		p.logger.ErrorContext(ctx, "record login outcome", slog.String("reason", out.Reason), slog.Any("error", err))
	}
	if out.OK && out.Factor == FactorRecoveryCode {
		// Spending a recovery code is worth its own event: a person who
		// did not spend it learns their codes are out.
		if err := p.recorder.Record(ctx, audit.Event{Type: audit.TypeMFARecoveryCodeUsed, Actor: e.UserID, UserID: e.UserID,
			ClientID: st.ClientID, IP: st.IP, Device: st.DeviceID, Outcome: audit.OutcomeSuccess,
			Details: map[string]any{"remaining": out.RecoveryCodesLeft}}); err != nil {
			p.logger.ErrorContext(ctx, "record recovery code use", slog.Any("error", err))
		}
	}
}

// logAttrs describes an attempt for the log; the password is never among them.
func (p *Pipeline) logAttrs(st *Check) []slog.Attr {
	attrs := []slog.Attr{
		slog.String("username", truncateUTF8(st.Username, maxLoggedUsername)),
		slog.String("ip", st.IP),
		slog.String("client_id", st.ClientID),
	}
	if st.DeviceID != "" {
		attrs = append(attrs, slog.String("device_id", st.DeviceID))
	}
	if st.Action != "" {
		attrs = append(attrs, slog.String("action", st.Action))
	}
	if st.User != nil {
		attrs = append(attrs, slog.String("user_id", st.User.ID))
	}
	return attrs
}

// identify finds the account, doing no hashing: the account gates need
// it, and the verify phase pays for an unknown one.
func (p *Pipeline) identify(ctx context.Context, c *Check) error {
	var (
		u   *storage.User
		err error
	)
	if c.UserID != "" {
		u, err = p.users.User(ctx, c.UserID)
	} else {
		u, err = p.users.UserByUsername(ctx, c.Username)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up user: %w", err)
	}
	c.User = u
	return nil
}

func (p *Pipeline) accountGates(c *Check) Decision {
	switch {
	case c.User == nil:
	case c.User.Disabled:
		return Denied(ReasonDisabled, time.Time{})
	case c.Global.Registration.AccountExpired(c.User.CreatedAt, c.User.ExpiresAt, c.Now):
		// The account, not the application, expires: the global policy.
		return Denied(ReasonAccountExpired, time.Time{})
	}
	return Proceed()
}

// verifyPassword checks the password; an unknown account costs one dummy
// hash, so response time does not tell whether it exists.
func (p *Pipeline) verifyPassword(ctx context.Context, c *Check) (Decision, error) {
	for _, form := range typedPasswords(c.Password) {
		if c.User == nil || c.User.PasswordHash == "" {
			// An unknown account, or one awaiting activation, which no
			// password opens: the same work as a wrong password.
			if err := p.hasher.Dummy(ctx, form.text); err != nil {
				return Decision{}, err
			}
			continue
		}
		ok, err := p.hasher.Verify(ctx, c.User.PasswordHash, form.text)
		if err != nil {
			return Decision{}, fmt.Errorf("verify password of user %s: %w", c.User.ID, err)
		}
		if ok {
			c.matched, c.proven = form, true
			return Proceed(), nil
		}
	}
	if c.User == nil {
		return Denied(ReasonUnknownUser, time.Time{}), nil
	}
	return Denied(ReasonBadPassword, time.Time{}), nil
}

// rehash upgrades a hash made under older parameters, now that the password
// is known. Failing to do so costs nothing but the upgrade, so it is logged
// and the sign-in goes ahead.
func (p *Pipeline) rehash(ctx context.Context, c *Check) {
	if !c.matched.legacy && !p.hasher.NeedsRehash(c.User.PasswordHash) {
		return
	}
	password, err := normalizePassword(c.Password)
	if err != nil {
		// Stored before normalization and not storable under it: the
		// user keeps the old hash until they choose a new password.
		p.logger.WarnContext(ctx, "rehash password: not normalizable", slog.String("user_id", c.User.ID))
		return
	}
	hash, err := p.hasher.Hash(ctx, password)
	if err == nil {
		err = p.users.UpdatePasswordHash(ctx, c.User.ID, hash)
	}
	if err != nil {
		p.logger.WarnContext(ctx, "rehash password", slog.String("user_id", c.User.ID), slog.Any("error", err))
		return
	}
	c.User.PasswordHash = hash
	p.logger.InfoContext(ctx, "rehashed password", slog.String("user_id", c.User.ID))
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
