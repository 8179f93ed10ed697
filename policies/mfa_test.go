package policies

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/fielderr"
)

var mfaNow = time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)

func TestMFANext(t *testing.T) {
	with := func(edit func(*MFA)) MFA {
		m := defaultMFA()
		edit(&m)
		return m
	}
	required := func(grace time.Duration) MFA {
		return with(func(m *MFA) { m.Requirement, m.GracePeriod = MFARequired, Duration(grace) })
	}
	remembering := func(requirement string) MFA {
		return with(func(m *MFA) { m.Requirement, m.RememberDevice = requirement, Duration(24*time.Hour) })
	}
	totp := []string{FactorTOTP}
	tests := []struct {
		name string
		m    MFA
		f    MFAFacts
		want MFAStep
	}{
		{"off, no factor", with(func(m *MFA) { m.Requirement = MFAOff }), MFAFacts{}, MFANone},
		{"off, a factor, not asked", with(func(m *MFA) { m.Requirement = MFAOff }), MFAFacts{Factors: totp}, MFANone},
		{"off, a factor, acr asks", with(func(m *MFA) { m.Requirement = MFAOff }), MFAFacts{Factors: totp, WantMFA: true}, MFAVerify},
		{"off, acr asks, no factor", with(func(m *MFA) { m.Requirement = MFAOff }), MFAFacts{WantMFA: true}, MFANone},
		{"off, acr asks, only a disallowed factor", with(func(m *MFA) { m.Requirement, m.AllowedFactors = MFAOff, []string{FactorWebAuthn} }),
			MFAFacts{Factors: totp, WantMFA: true}, MFANone},
		{"off ignores a remembered device when acr asks", with(func(m *MFA) { m.Requirement, m.RememberDevice = MFAOff, Duration(time.Hour) }),
			MFAFacts{Factors: totp, WantMFA: true, RememberedAt: mfaNow.Add(-time.Minute)}, MFAVerify},

		{"optional, no factor", defaultMFA(), MFAFacts{}, MFANone},
		{"optional, no factor, acr asks", defaultMFA(), MFAFacts{WantMFA: true}, MFANone},
		{"optional, totp", defaultMFA(), MFAFacts{Factors: totp}, MFAVerify},
		{"optional, webauthn", defaultMFA(), MFAFacts{Factors: []string{FactorWebAuthn}}, MFAVerify},
		{"optional, only a disallowed kind", with(func(m *MFA) { m.AllowedFactors = []string{FactorWebAuthn} }), MFAFacts{Factors: totp}, MFANone},
		{"optional, recovery codes alone are no factor", defaultMFA(), MFAFacts{Factors: []string{FactorRecovery}}, MFANone},

		{"remembered device skips", remembering(MFAOptional), MFAFacts{Factors: totp, RememberedAt: mfaNow.Add(-23 * time.Hour)}, MFANone},
		{"remembered device, just expired", remembering(MFAOptional), MFAFacts{Factors: totp, RememberedAt: mfaNow.Add(-24 * time.Hour)}, MFAVerify},
		{"remembered device, long ago", remembering(MFAOptional), MFAFacts{Factors: totp, RememberedAt: mfaNow.Add(-48 * time.Hour)}, MFAVerify},
		{"device never passed", remembering(MFAOptional), MFAFacts{Factors: totp}, MFAVerify},
		{"remembered device, acr asks", remembering(MFAOptional), MFAFacts{Factors: totp, RememberedAt: mfaNow.Add(-time.Minute), WantMFA: true}, MFAVerify},
		{"remembered device under required", remembering(MFARequired), MFAFacts{Factors: totp, RememberedAt: mfaNow.Add(-time.Minute)}, MFANone},
		{"remember_device off", defaultMFA(), MFAFacts{Factors: totp, RememberedAt: mfaNow.Add(-time.Second)}, MFAVerify},
		{"remembered by a clock ahead of this one", remembering(MFAOptional), MFAFacts{Factors: totp, RememberedAt: mfaNow.Add(time.Second)}, MFANone},

		{"required, a factor", required(0), MFAFacts{Factors: totp}, MFAVerify},
		{"required, no grace", required(0), MFAFacts{}, MFAEnrollRequired},
		{"required, no grace, started earlier", required(0), MFAFacts{GraceStart: mfaNow.Add(-time.Hour)}, MFAEnrollRequired},
		{"required, grace starts now", required(72 * time.Hour), MFAFacts{}, MFAEnrollOptional},
		{"required, inside the grace", required(72 * time.Hour), MFAFacts{GraceStart: mfaNow.Add(-71 * time.Hour)}, MFAEnrollOptional},
		{"required, grace just over", required(72 * time.Hour), MFAFacts{GraceStart: mfaNow.Add(-72 * time.Hour)}, MFAEnrollRequired},
		{"required, grace long over", required(72 * time.Hour), MFAFacts{GraceStart: mfaNow.Add(-720 * time.Hour)}, MFAEnrollRequired},
		{"required, only a disallowed kind counts as none", with(func(m *MFA) { m.Requirement, m.AllowedFactors = MFARequired, []string{FactorWebAuthn} }),
			MFAFacts{Factors: totp}, MFAEnrollRequired},
		{"unknown requirement is judged as required", with(func(m *MFA) { m.Requirement = "sometimes" }), MFAFacts{}, MFAEnrollRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Next(mfaNow, tt.f); got != tt.want {
				t.Errorf("Next = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMFAAllowsAndUsable(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		factor  string
		allows  bool
	}{
		{"totp listed", []string{FactorTOTP, FactorWebAuthn}, FactorTOTP, true},
		{"webauthn listed", []string{FactorTOTP, FactorWebAuthn}, FactorWebAuthn, true},
		{"webauthn not listed", []string{FactorTOTP}, FactorWebAuthn, false},
		{"recovery always", nil, FactorRecovery, true},
		{"recovery_code always", []string{FactorWebAuthn}, FactorRecoveryCode, true},
		{"unknown kind", []string{FactorTOTP, FactorWebAuthn}, "sms", false},
		{"empty", []string{FactorTOTP}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (MFA{AllowedFactors: tt.allowed}).Allows(tt.factor); got != tt.allows {
				t.Errorf("Allows(%q) = %v, want %v", tt.factor, got, tt.allows)
			}
		})
	}

	usable := []struct {
		name             string
		allowed, factors []string
		want             []string
	}{
		{"both", []string{FactorTOTP, FactorWebAuthn}, []string{FactorWebAuthn, FactorTOTP}, []string{FactorWebAuthn, FactorTOTP}},
		{"one allowed", []string{FactorTOTP}, []string{FactorWebAuthn, FactorTOTP}, []string{FactorTOTP}},
		{"each once", []string{FactorTOTP, FactorWebAuthn}, []string{FactorWebAuthn, FactorWebAuthn}, []string{FactorWebAuthn}},
		{"recovery codes are not a usable factor", []string{FactorTOTP, FactorWebAuthn}, []string{FactorRecovery, FactorRecoveryCode}, nil},
		{"none", []string{FactorTOTP}, nil, nil},
		{"nothing allowed", nil, []string{FactorTOTP}, nil},
	}
	for _, tt := range usable {
		t.Run("usable "+tt.name, func(t *testing.T) {
			in := slices.Clone(tt.factors)
			got := (MFA{AllowedFactors: tt.allowed}).Usable(in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Usable(%q) = %q, want %q", tt.factors, got, tt.want)
			}
			if !slices.Equal(in, tt.factors) {
				t.Errorf("Usable changed its argument to %q", in)
			}
			if len(got) > 0 && len(in) > 0 && &got[0] == &in[0] {
				t.Error("Usable returned its argument's memory")
			}
		})
	}
}

func TestSecondFactorStale(t *testing.T) {
	session := func(maxAge time.Duration, reauthFor ...string) Session {
		return Session{ReauthMaxAge: Duration(maxAge), ReauthFor: reauthFor}
	}
	tests := []struct {
		name   string
		s      Session
		action string
		age    time.Duration // how long ago the last second factor passed; -1: never
		want   bool
	}{
		{"removal, max age 0s, fresh", session(0), ActionMFARemoval, 4 * time.Minute, false},
		{"removal, max age 0s, exactly 5m", session(0), ActionMFARemoval, 5 * time.Minute, false},
		{"removal, max age 0s, stale", session(0), ActionMFARemoval, 5*time.Minute + time.Second, true},
		{"removal, never", session(0), ActionMFARemoval, -1, true},
		{"recovery codes, max age 0s, fresh", session(0), ActionRecoveryCodes, time.Minute, false},
		{"recovery codes, max age 0s, stale", session(0), ActionRecoveryCodes, 6 * time.Minute, true},
		{"removal follows reauth_max_age", session(time.Hour), ActionMFARemoval, 30 * time.Minute, false},
		{"removal, older than reauth_max_age", session(time.Minute), ActionMFARemoval, 2 * time.Minute, true},
		{"removal guarded without being listed", session(time.Minute, ActionPasswordChange), ActionMFARemoval, 2 * time.Minute, true},
		{"recovery codes follow reauth_max_age", session(time.Hour), ActionRecoveryCodes, 59 * time.Minute, false},
		{"listed action, stale", session(10*time.Minute, ActionMFAEnrollment), ActionMFAEnrollment, 11 * time.Minute, true},
		{"listed action, fresh", session(10*time.Minute, ActionMFAEnrollment), ActionMFAEnrollment, 9 * time.Minute, false},
		{"listed action, never", session(10*time.Minute, ActionMFAEnrollment), ActionMFAEnrollment, -1, true},
		{"listed action, max age 0s", session(0, ActionMFAEnrollment), ActionMFAEnrollment, -1, false},
		{"unlisted action", session(10*time.Minute, ActionPasswordChange), ActionMFAEnrollment, time.Hour, false},
		{"a clock ahead of this one", session(0), ActionMFARemoval, -time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var last time.Time
			if tt.age != -1 {
				last = mfaNow.Add(-tt.age)
			}
			if got := tt.s.SecondFactorStale(tt.action, last, mfaNow); got != tt.want {
				t.Errorf("SecondFactorStale(%q, %s ago) = %v, want %v", tt.action, tt.age, got, tt.want)
			}
		})
	}
}

func TestMFAStepString(t *testing.T) {
	for step, want := range map[MFAStep]string{
		MFANone: "none", MFAVerify: "verify", MFAEnrollOptional: "enroll_optional", MFAEnrollRequired: "enroll_required", 9: "MFAStep(9)",
	} {
		if got := step.String(); got != want {
			t.Errorf("MFAStep(%d).String() = %q, want %q", int(step), got, want)
		}
	}
}

// TestMFAValidate: every problem of the section at once, each with its
// key path; warnings only for valid values.
func TestMFAValidate(t *testing.T) {
	with := func(edit func(*MFA)) MFA {
		m := defaultMFA()
		edit(&m)
		return m
	}
	tests := []struct {
		name     string
		m        MFA
		want     []string // "key: message" prefixes, in order
		warnings []string // keys
	}{
		{"defaults", defaultMFA(), nil, nil},
		{"required with grace and remembered devices", with(func(m *MFA) {
			m.Requirement, m.GracePeriod, m.RememberDevice, m.Passwordless = MFARequired, Duration(72*time.Hour), Duration(720*time.Hour), true
		}), nil, nil},
		{"off with nothing allowed", with(func(m *MFA) { m.Requirement, m.AllowedFactors = MFAOff, nil }), nil, nil},
		{"bounds inclusive", with(func(m *MFA) { m.TOTP = TOTP{Skew: 3, MaxAttempts: 100, AttemptWindow: Duration(time.Second)} }), nil, nil},
		{"skew 0, one attempt", with(func(m *MFA) { m.TOTP.Skew, m.TOTP.MaxAttempts = 0, 1 }), nil, nil},
		{"unknown requirement", with(func(m *MFA) { m.Requirement = "always" }),
			[]string{`mfa.requirement: must be "off", "optional" or "required" (got "always")`}, nil},
		{"unknown requirement, nothing allowed: one problem", with(func(m *MFA) { m.Requirement, m.AllowedFactors = "", []string{} }),
			[]string{`mfa.requirement: must be`}, nil},
		{"optional with nothing allowed", with(func(m *MFA) { m.AllowedFactors = []string{} }),
			[]string{`mfa.allowed_factors: must list "totp", "webauthn" or both unless mfa.requirement is "off"`}, nil},
		{"required with nothing allowed", with(func(m *MFA) { m.Requirement, m.AllowedFactors = MFARequired, nil }),
			[]string{`mfa.allowed_factors: must list`}, nil},
		{"bad kinds and a duplicate", with(func(m *MFA) {
			m.AllowedFactors = []string{FactorTOTP, "sms", FactorRecovery, FactorTOTP, FactorRecoveryCode}
		}), []string{
			`mfa.allowed_factors[1]: must be "totp" or "webauthn" (got "sms")`,
			`mfa.allowed_factors[2]: recovery codes are always allowed as a fallback and are not listed`,
			`mfa.allowed_factors[3]: "totp" is listed twice`,
			`mfa.allowed_factors[4]: recovery codes are always allowed`,
		}, nil},
		{"negative durations", with(func(m *MFA) { m.GracePeriod, m.RememberDevice = Duration(-time.Second), Duration(-time.Hour) }),
			[]string{`mfa.grace_period: must not be negative`, `mfa.remember_device: must not be negative`}, nil},
		{"totp out of bounds", with(func(m *MFA) { m.TOTP = TOTP{Skew: 4, MaxAttempts: 0, AttemptWindow: 0} }), []string{
			`mfa.totp.skew: must be between 0 and 3 (got 4)`,
			`mfa.totp.max_attempts: must be between 1 and 100 (got 0)`,
			`mfa.totp.attempt_window: must be positive (got 0s)`,
		}, nil},
		{"totp the other way", with(func(m *MFA) { m.TOTP = TOTP{Skew: -1, MaxAttempts: 101, AttemptWindow: Duration(-time.Minute)} }), []string{
			`mfa.totp.skew: must be between 0 and 3 (got -1)`,
			`mfa.totp.max_attempts: must be between 1 and 100 (got 101)`,
			`mfa.totp.attempt_window: must be positive`,
		}, nil},
		{"remembered for long", with(func(m *MFA) { m.RememberDevice = Duration(721 * time.Hour) }), nil, []string{"mfa.remember_device"}},
		{"passwordless without passkeys", with(func(m *MFA) { m.Passwordless, m.AllowedFactors = true, []string{FactorTOTP} }),
			nil, []string{"mfa.passwordless"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			p.MFA = tt.m
			warnings, err := p.Validate()
			var got []string
			if fe, ok := fielderr.As(err); ok {
				for _, f := range fe.Fields {
					got = append(got, f.Field+": "+f.Message)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems\n%q\nwant\n%q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start %q", i, got[i], tt.want[i])
				}
			}
			var warned []string
			for _, w := range warnings {
				warned = append(warned, w.Field)
			}
			if !slices.Equal(warned, tt.warnings) {
				t.Errorf("warnings %v, want on %q", warnings, tt.warnings)
			}
		})
	}
}

// TestRecoveryCodesNotAReauthAction: regenerating recovery codes is always
// guarded, so reauth_for refuses it with the reason.
func TestRecoveryCodesNotAReauthAction(t *testing.T) {
	p := Defaults()
	p.Session.ReauthFor = []string{ActionPasswordChange, ActionRecoveryCodes}
	_, err := p.Validate()
	fe, ok := fielderr.As(err)
	if !ok || len(fe.Fields) != 1 || fe.Fields[0].Field != "session.reauth_for[1]" || !strings.Contains(fe.Fields[0].Message, "always needs a fresh second factor") {
		t.Errorf("Validate = %v, want session.reauth_for[1] refused as always guarded", err)
	}
}
