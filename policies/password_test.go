package policies

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/fielderr"
)

func codes(problems []PasswordProblem) []string {
	out := []string{}
	for _, p := range problems {
		out = append(out, p.Code)
	}
	return out
}

func TestPasswordCheck(t *testing.T) {
	def := defaultPassword()
	with := func(edit func(*Password)) Password {
		p := defaultPassword()
		edit(&p)
		return p
	}
	tests := []struct {
		name     string
		policy   Password
		password string
		username string
		email    string
		want     []string
	}{
		{name: "defaults accept 8 characters", policy: def, password: "abcdefgh", want: []string{}},
		{name: "7 characters are too short", policy: def, password: "abcdefg", want: []string{PasswordTooShort}},
		{name: "empty", policy: def, password: "", want: []string{PasswordTooShort}},
		{name: "128 characters pass", policy: def, password: strings.Repeat("a", 128), want: []string{}},
		{name: "129 characters are too long", policy: def, password: strings.Repeat("a", 129), want: []string{PasswordTooLong}},
		{name: "64 characters at min_length 64", policy: with(func(p *Password) { p.MinLength = 64 }),
			password: strings.Repeat("pass word ", 6) + "pass", want: []string{}},
		{name: "63 characters at min_length 64", policy: with(func(p *Password) { p.MinLength = 64 }),
			password: strings.Repeat("x", 63), want: []string{PasswordTooShort}},
		{name: "emoji count as one character each", policy: def, password: "🔑🔑🔑🔑🔑🔑🔑🔑", want: []string{}},
		{name: "seven emoji are too short", policy: def, password: "🔑🔑🔑🔑🔑🔑🔑", want: []string{PasswordTooShort}},
		{name: "NFD counts as NFC: 7 characters", policy: def, password: "cafe\u0301abc", want: []string{PasswordTooShort}},
		{name: "NFC: 7 characters", policy: def, password: "caf\u00e9abc", want: []string{PasswordTooShort}},
		{name: "NFD counts as NFC: 8 characters", policy: def, password: "cafe\u0301abcd", want: []string{}},
		{name: "every violation at once",
			policy:   Password{MinLength: 12, MaxLength: 128, MinUppercase: 1, MinLowercase: 1, MinDigits: 1, MinSpecial: 1, DisallowUsername: true},
			password: "AL ICE", username: "al ice",
			want: []string{PasswordTooShort, PasswordNeedsLowercase, PasswordNeedsDigit, PasswordNeedsSpecial, PasswordWhitespaceNotAllowed, PasswordContainsUsername}},
		{name: "non-ASCII letters have case", policy: with(func(p *Password) { p.MinUppercase, p.MinLowercase = 2, 2 }),
			password: "ÄÖ üß straße", want: []string{}},
		{name: "Greek uppercase counts", policy: with(func(p *Password) { p.MinUppercase = 2 }),
			password: "ΣΩ lowercase", want: []string{}},
		{name: "uncased letters are neither", policy: with(func(p *Password) { p.MinUppercase, p.MinLowercase = 1, 1 }),
			password: "密码密码密码密码", want: []string{PasswordNeedsUppercase, PasswordNeedsLowercase}},
		{name: "non-ASCII digits count", policy: with(func(p *Password) { p.MinDigits = 3 }),
			password: "password ١٢٣", want: []string{}},
		{name: "two digits short of three", policy: with(func(p *Password) { p.MinDigits = 3 }),
			password: "password 12", want: []string{PasswordNeedsDigit}},
		{name: "emoji and punctuation are special", policy: with(func(p *Password) { p.MinSpecial = 2 }),
			password: "password🔑!", want: []string{}},
		{name: "whitespace is not special", policy: with(func(p *Password) { p.MinSpecial = 1 }),
			password: "pass word", want: []string{PasswordNeedsSpecial}},
		{name: "whitespace allowed by default", policy: def, password: "correct horse", want: []string{}},
		{name: "whitespace refused", policy: with(func(p *Password) { p.AllowWhitespace = false }),
			password: "correct\thorse", want: []string{PasswordWhitespaceNotAllowed}},
		{name: "username ignored unless disallowed", policy: def, password: "alice's password", username: "alice", want: []string{}},
		{name: "username, any case", policy: with(func(p *Password) { p.DisallowUsername = true }),
			password: "my ALICE password", username: "alice", want: []string{PasswordContainsUsername}},
		{name: "non-ASCII username, any case", policy: with(func(p *Password) { p.DisallowUsername = true }),
			password: "ich bin JOSÉ!", username: "jose\u0301", want: []string{PasswordContainsUsername}},
		{name: "email local part", policy: with(func(p *Password) { p.DisallowUsername = true }),
			password: "Bob.Smith rules", username: "bsmith", email: "bob.smith@example.com", want: []string{PasswordContainsUsername}},
		{name: "email domain is not looked for", policy: with(func(p *Password) { p.DisallowUsername = true }),
			password: "example.com rules", username: "bsmith", email: "bob.smith@example.com", want: []string{}},
		{name: "parts under 3 characters skipped", policy: with(func(p *Password) { p.DisallowUsername = true }),
			password: "jo and al are here", username: "jo", email: "al@example.com", want: []string{}},
		{name: "3-character part looked for", policy: with(func(p *Password) { p.DisallowUsername = true }),
			password: "hello bob world", username: "bob", want: []string{PasswordContainsUsername}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codes(tt.policy.Check(tt.password, tt.username, tt.email)); !slices.Equal(got, tt.want) {
				t.Errorf("Check(%q) = %q, want %q", tt.password, got, tt.want)
			}
		})
	}
}

func TestPasswordMessages(t *testing.T) {
	p := Password{MinLength: 10, MaxLength: 12, MinUppercase: 1, MinLowercase: 2, MinDigits: 1, MinSpecial: 3, DisallowUsername: true}
	tests := []struct {
		password string
		want     []PasswordProblem
	}{
		{"x y", []PasswordProblem{
			{PasswordTooShort, "must be at least 10 characters"},
			{PasswordNeedsUppercase, "must contain an uppercase letter"},
			{PasswordNeedsDigit, "must contain a digit"},
			{PasswordNeedsSpecial, "must contain at least 3 special characters (not a letter, digit or space)"},
			{PasswordWhitespaceNotAllowed, "must not contain spaces or other whitespace"},
		}},
		{"ALICE ALICE ALICE", []PasswordProblem{
			{PasswordTooLong, "must be at most 12 characters"},
			{PasswordNeedsLowercase, "must contain at least 2 lowercase letters"},
			{PasswordNeedsDigit, "must contain a digit"},
			{PasswordNeedsSpecial, "must contain at least 3 special characters (not a letter, digit or space)"},
			{PasswordWhitespaceNotAllowed, "must not contain spaces or other whitespace"},
			{PasswordContainsUsername, "must not contain the username"},
		}},
		{"Ab1!!!cdmary", []PasswordProblem{{PasswordContainsUsername, "must not contain the email address's name (the part before @)"}}},
	}
	for _, tt := range tests {
		if got := p.Check(tt.password, "alice", "mary@example.com"); !slices.Equal(got, tt.want) {
			t.Errorf("Check(%q) =\n%q\nwant\n%q", tt.password, got, tt.want)
		}
	}
}

func TestPasswordValidate(t *testing.T) {
	with := func(edit func(*Password)) Password {
		p := defaultPassword()
		edit(&p)
		return p
	}
	tests := []struct {
		name   string
		policy Password
		want   []string // fields at fault
	}{
		{name: "defaults", policy: defaultPassword()},
		{name: "min_length 6", policy: with(func(p *Password) { p.MinLength = 6 })},
		{name: "min_length 64", policy: with(func(p *Password) { p.MinLength = 64 })},
		{name: "min_length 5", policy: with(func(p *Password) { p.MinLength = 5 }), want: []string{"password.min_length"}},
		{name: "min_length 65", policy: with(func(p *Password) { p.MinLength = 65 }), want: []string{"password.min_length"}},
		{name: "max_length 1024", policy: with(func(p *Password) { p.MaxLength = 1024 })},
		{name: "max_length 1025", policy: with(func(p *Password) { p.MaxLength = 1025 }), want: []string{"password.max_length"}},
		{name: "max_length equal to min", policy: with(func(p *Password) { p.MinLength, p.MaxLength = 12, 12 }), want: []string{"password.max_length"}},
		{name: "max_length one above min", policy: with(func(p *Password) { p.MinLength, p.MaxLength = 12, 13 })},
		{name: "negative counts", policy: with(func(p *Password) { p.MinUppercase, p.MinLowercase, p.MinDigits, p.MinSpecial = -1, -1, -1, -1 }),
			want: []string{"password.min_uppercase", "password.min_lowercase", "password.min_digits", "password.min_special"}},
		{name: "counts up to max_length", policy: with(func(p *Password) { p.MaxLength, p.MinUppercase, p.MinDigits = 20, 10, 10 })},
		{name: "counts over max_length", policy: with(func(p *Password) { p.MaxLength, p.MinUppercase, p.MinDigits = 20, 10, 11 }),
			want: []string{"password.min_uppercase"}},
		{name: "zero value", policy: Password{}, want: []string{"password.min_length", "password.max_length",
			"password.hibp_timeout", "password.hibp_failure", "password.force_reset_if_invalid"}},
		{name: "history and expiry at their bounds", policy: with(func(p *Password) { p.PreventReuse, p.ReuseDays, p.ExpireDays = 24, 3650, 3650 })},
		{name: "history and expiry past their bounds", policy: with(func(p *Password) { p.PreventReuse, p.ReuseDays, p.ExpireDays = 25, 3651, -1 }),
			want: []string{"password.prevent_reuse", "password.reuse_days", "password.expire_days"}},
		{name: "hibp timeout bounds", policy: with(func(p *Password) { p.HIBPTimeout = Duration(99 * time.Millisecond) }), want: []string{"password.hibp_timeout"}},
		{name: "hibp timeout 10s", policy: with(func(p *Password) { p.HIBPTimeout = Duration(10 * time.Second) })},
		{name: "hibp url in clear text", policy: with(func(p *Password) { p.HIBPURL = "http://range.example/range/" }), want: []string{"password.hibp_url"}},
		{name: "hibp url on loopback", policy: with(func(p *Password) { p.HIBPURL = "http://127.0.0.1:8089/range/" })},
		{name: "hibp failure unknown", policy: with(func(p *Password) { p.HIBPFailure = "maybe" }), want: []string{"password.hibp_failure"}},
		{name: "force reset email", policy: with(func(p *Password) { p.ForceResetIfInvalid = ForceResetEmail })},
		{name: "force reset unknown", policy: with(func(p *Password) { p.ForceResetIfInvalid = "true" }), want: []string{"password.force_reset_if_invalid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			p.Password = tt.policy
			_, err := p.Validate()
			var got []string
			if fe, ok := fielderr.As(err); ok {
				for _, f := range fe.Fields {
					got = append(got, f.Field)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("fields at fault = %q, want %q (err %v)", got, tt.want, err)
			}
		})
	}
}

func TestPasswordRules(t *testing.T) {
	p := Defaults()
	p.Password.MinDigits = 1
	c := PasswordCandidate{Password: "short", Username: "alice", Now: time.Unix(0, 0), Policy: p, Facts: FactsOf("short", "alice", "")}
	got, err := PasswordPolicyRule{}.CheckPassword(context.Background(), c)
	if err != nil || !slices.Equal(codes(got), []string{PasswordTooShort, PasswordNeedsDigit}) {
		t.Errorf("PasswordPolicyRule = %+v, %v", got, err)
	}
	c.Facts.Breached = true
	got, _ = PasswordPolicyRule{}.CheckPassword(context.Background(), c)
	if !slices.Equal(codes(got), []string{PasswordTooShort, PasswordNeedsDigit, PasswordBreached}) {
		t.Errorf("PasswordPolicyRule of a breached password = %+v", got)
	}
	c.Policy.Password.CheckBreached = false
	got, _ = PasswordPolicyRule{}.CheckPassword(context.Background(), c)
	if !slices.Equal(codes(got), []string{PasswordTooShort, PasswordNeedsDigit}) {
		t.Errorf("PasswordPolicyRule of a breached password, check_breached off = %+v", got)
	}
	broken := errors.New("broken")
	var rule PasswordRule = PasswordRuleFunc(func(_ context.Context, c PasswordCandidate) ([]PasswordProblem, error) {
		if c.Username != "alice" {
			t.Errorf("the func saw %+v", c)
		}
		return nil, broken
	})
	if _, err := rule.CheckPassword(context.Background(), c); !errors.Is(err, broken) {
		t.Errorf("PasswordRuleFunc error = %v", err)
	}
}
