package policies

import (
	"fmt"
	"slices"
	"time"
)

// Values of MFA.Requirement.
const (
	MFAOff      = "off"
	MFAOptional = "optional"
	MFARequired = "required"
)

// Second factors MFA.AllowedFactors may list, and the recovery code
// fallback, which is always allowed and never listed.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
	FactorRecovery = "recovery"
	// FactorRecoveryCode is the spelling the sign-in pipeline records a
	// recovery code under; Allows takes it as FactorRecovery.
	FactorRecoveryCode = "recovery_code"
)

// Bounds of the TOTP keys. Three steps either side (±90 s with 30 s steps)
// already accepts a code long after the phone showed it; more would be a
// window rather than a tolerance for clock drift.
const (
	maxTOTPSkew        = 3
	maxTOTPMaxAttempts = 100
	// defaultStepUpMaxAge is how fresh a second factor must be to remove a
	// factor or regenerate recovery codes when session.reauth_max_age is
	// 0s: those actions take away what protects the account, so they are
	// guarded even when nothing else is.
	defaultStepUpMaxAge = 5 * time.Minute
	// maxRememberDevice is the longest remembered device that passes
	// without a warning: beyond a month a stolen, unlocked laptop signs in
	// with the password alone for too long.
	maxRememberDevice = 30 * 24 * time.Hour
)

// MFA is the second-factor policy: whether a second factor is offered or
// demanded, which kinds, how long an account may go without one, and how
// TOTP codes are judged.
type MFA struct {
	// Requirement is "off" (no second factor is offered or asked, except
	// when an authorization request's acr_values ask for one and the
	// account has one), "optional" (default: people may enrol, and once
	// they have a factor every sign-in asks for it) or "required" (every
	// account must have one; see GracePeriod).
	Requirement string `json:"requirement" toml:"requirement"`
	// AllowedFactors are the kinds of second factor that may be enrolled
	// and used: "totp", "webauthn". Default both; must not be empty unless
	// Requirement is off. Recovery codes are always allowed as a fallback
	// and are not listed.
	AllowedFactors []string `json:"allowed_factors" toml:"allowed_factors"`
	// GracePeriod, under "required", is how long an account without a
	// factor may still sign in, from the first sign-in that found it
	// without one; each such sign-in is taken to enrolment first, and may
	// skip it. After it, sign-in stops at enrolment. Default 0s: enrolment
	// is demanded at once.
	GracePeriod Duration `json:"grace_period" toml:"grace_period"`
	// RememberDevice skips the second factor on a device that passed one
	// within this long, unless the request asks for multi-factor
	// assurance. Default 0s (off); over 720h warns.
	RememberDevice Duration `json:"remember_device" toml:"remember_device"`
	// Passwordless lets a discoverable passkey (WebAuthn) sign in without
	// a password; it needs "webauthn" in AllowedFactors. Default false.
	Passwordless bool `json:"passwordless" toml:"passwordless"`
	// TOTP is how time-based codes are judged.
	TOTP TOTP `json:"totp" toml:"totp"`
}

// TOTP is the time-based one-time code part of the MFA policy.
type TOTP struct {
	// Skew is how many 30-second steps either side of now a code may be
	// from, for phones whose clocks drift. Default 1; 0 to 3.
	Skew int `json:"skew" toml:"skew"`
	// MaxAttempts is how many TOTP or recovery codes one account may try
	// per AttemptWindow, on top of the lockout counters: a 6-digit code
	// has only a million values, so guesses at it need a budget of their
	// own. Default 5; 1 to 100.
	MaxAttempts int `json:"max_attempts" toml:"max_attempts"`
	// AttemptWindow is the fixed window MaxAttempts counts in. Default 5m;
	// positive.
	AttemptWindow Duration `json:"attempt_window" toml:"attempt_window"`
}

func defaultMFA() MFA {
	return MFA{
		Requirement:    MFAOptional,
		AllowedFactors: []string{FactorTOTP, FactorWebAuthn},
		TOTP:           TOTP{Skew: 1, MaxAttempts: 5, AttemptWindow: Duration(5 * time.Minute)},
	}
}

func (m MFA) validate(v *validator) {
	known := true
	switch m.Requirement {
	case MFAOff, MFAOptional, MFARequired:
	default:
		known = false
		v.fail("mfa.requirement", "must be %q, %q or %q (got %q)", MFAOff, MFAOptional, MFARequired, m.Requirement)
	}
	for i, f := range m.AllowedFactors {
		key := indexKey("mfa.allowed_factors", i)
		switch {
		case f == FactorRecovery || f == FactorRecoveryCode:
			v.fail(key, "recovery codes are always allowed as a fallback and are not listed; list %q or %q", FactorTOTP, FactorWebAuthn)
		case f != FactorTOTP && f != FactorWebAuthn:
			v.fail(key, "must be %q or %q (got %q)", FactorTOTP, FactorWebAuthn, f)
		case slices.Index(m.AllowedFactors, f) < i:
			v.fail(key, "%q is listed twice", f)
		}
	}
	// Judged only with a known requirement: an unknown one is its own
	// problem, and guessing which it meant would add a second.
	if known && m.Requirement != MFAOff && len(m.AllowedFactors) == 0 {
		v.fail("mfa.allowed_factors", "must list %q, %q or both unless mfa.requirement is %q: people could enrol nothing", FactorTOTP, FactorWebAuthn, MFAOff)
	}
	v.nonNegative("mfa.grace_period", m.GracePeriod)
	if v.nonNegative("mfa.remember_device", m.RememberDevice) && m.RememberDevice > Duration(maxRememberDevice) {
		v.warn("mfa.remember_device", "%s is longer than the recommended maximum of 720h: a device that passed once skips the second factor for that long", m.RememberDevice)
	}
	if m.Passwordless && !slices.Contains(m.AllowedFactors, FactorWebAuthn) {
		v.warn("mfa.passwordless", "has no effect while mfa.allowed_factors does not list %q", FactorWebAuthn)
	}
	if m.TOTP.Skew < 0 || m.TOTP.Skew > maxTOTPSkew {
		v.fail("mfa.totp.skew", "must be between 0 and %d (got %d)", maxTOTPSkew, m.TOTP.Skew)
	}
	if m.TOTP.MaxAttempts < 1 || m.TOTP.MaxAttempts > maxTOTPMaxAttempts {
		v.fail("mfa.totp.max_attempts", "must be between 1 and %d (got %d)", maxTOTPMaxAttempts, m.TOTP.MaxAttempts)
	}
	v.positive("mfa.totp.attempt_window", m.TOTP.AttemptWindow)
}

// MFAStep is what a sign-in whose password (or first factor) was proven
// needs next, as MFA.Next decides it.
type MFAStep int

const (
	MFANone           MFAStep = iota // no second factor step
	MFAVerify                        // ask for a second factor
	MFAEnrollOptional                // take to enrolment; the person may skip it (inside the grace period)
	MFAEnrollRequired                // sign-in stops at enrolment until a factor is enrolled
)

// String names the step for logs and audit details.
func (s MFAStep) String() string {
	switch s {
	case MFANone:
		return "none"
	case MFAVerify:
		return "verify"
	case MFAEnrollOptional:
		return "enroll_optional"
	case MFAEnrollRequired:
		return "enroll_required"
	}
	return fmt.Sprintf("MFAStep(%d)", int(s))
}

// MFAFacts is what is known of an account and device when MFA.Next decides.
type MFAFacts struct {
	Factors      []string  // confirmed factor types the account has: "totp", "webauthn" (recovery codes not included)
	GraceStart   time.Time // when the grace period started for this account; zero = it starts now
	RememberedAt time.Time // when this device last passed a second factor; zero = never
	WantMFA      bool      // the authorization request's acr_values ask for ACRMultiFactor
}

// Next decides the second-factor step of a sign-in at now. A factor of a
// kind the policy no longer allows does not count: the account is treated
// as having none, so that disallowing a kind cannot let its holders skip
// the second factor under "required".
//
//   - off: a second factor only when the request asks for one (acr_values)
//     and the account has one; else none.
//   - an account with a usable factor: verify it, unless this device is
//     remembered (within remember_device) and the request does not ask for
//     multi-factor assurance.
//   - no usable factor, under "required": enrolment the person may skip
//     while inside the grace period, then enrolment that cannot be skipped;
//     under "optional", nothing.
//
// A requirement Validate would refuse is judged as "required", so that a
// broken policy asks for more, not less.
func (m MFA) Next(now time.Time, f MFAFacts) MFAStep {
	usable := len(m.Usable(f.Factors)) > 0
	if m.Requirement == MFAOff {
		if f.WantMFA && usable {
			return MFAVerify
		}
		return MFANone
	}
	if usable {
		if !f.WantMFA && m.remembered(now, f.RememberedAt) {
			return MFANone
		}
		return MFAVerify
	}
	if m.Requirement == MFAOptional {
		return MFANone
	}
	start := f.GraceStart
	if start.IsZero() {
		start = now
	}
	if now.Before(start.Add(m.GracePeriod.D())) {
		return MFAEnrollOptional
	}
	return MFAEnrollRequired
}

// remembered reports whether a device that passed a second factor at at is
// still remembered at now. A time ahead of now (another instance's clock)
// counts as just now.
func (m MFA) remembered(now, at time.Time) bool {
	return m.RememberDevice > 0 && !at.IsZero() && now.Sub(at) < m.RememberDevice.D()
}

// Allows reports whether factor may be enrolled and used: a kind listed in
// allowed_factors, or a recovery code (FactorRecovery or
// FactorRecoveryCode), which is always allowed as the fallback.
func (m MFA) Allows(factor string) bool {
	return factor == FactorRecovery || factor == FactorRecoveryCode || slices.Contains(m.AllowedFactors, factor)
}

// Usable is the factor kinds among factors that allowed_factors lists,
// each once, in the order of factors. Recovery codes are never listed in
// allowed_factors, so they are not usable on their own: an account whose
// only factor is recovery codes has no second factor. The result is a new
// slice; nil when none is usable.
func (m MFA) Usable(factors []string) []string {
	var out []string
	for _, f := range factors {
		if slices.Contains(m.AllowedFactors, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// SecondFactorStale reports whether action, taken at now by an account that
// has a second factor whose last successful check was at lastSecondFactor,
// demands a fresh second-factor check first. Removing a factor
// (ActionMFARemoval) or regenerating recovery codes (ActionRecoveryCodes)
// always does once the check is older than reauth_max_age, or 5 minutes
// when reauth_max_age is 0s: they take away what protects the account, so
// a borrowed session must not do them. Any other action in reauth_for does
// once the check is older than reauth_max_age, and only when that is set.
// A zero lastSecondFactor is older than anything; the boundary is as in
// NeedsReauth (exactly reauth_max_age old is still fresh).
func (s Session) SecondFactorStale(action string, lastSecondFactor, now time.Time) bool {
	maxAge := s.ReauthMaxAge.D()
	switch {
	case action == ActionMFARemoval || action == ActionRecoveryCodes:
		if maxAge <= 0 {
			maxAge = defaultStepUpMaxAge
		}
	case maxAge <= 0 || !slices.Contains(s.ReauthFor, action):
		return false
	}
	return lastSecondFactor.IsZero() || now.Sub(lastSecondFactor) > maxAge
}
