package policies

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxPasswordBytes is the longest password input the server accepts, in
// bytes, whatever the policy: it bounds the hashing work one request can
// cost, so it is refused before any rule or hash sees the password.
const MaxPasswordBytes = 1024

// Bounds of Password.MinLength: under 6 characters no policy is worth the
// name, and a minimum over 64 is one nobody can meet with a passphrase
// they remember.
const (
	minPasswordMinLength = 6
	maxPasswordMinLength = 64
)

// Codes of PasswordProblem, stable for programs (the admin API reports
// them) while the messages are for people.
const (
	PasswordTooShort             = "too_short"
	PasswordTooLong              = "too_long"
	PasswordNeedsUppercase       = "needs_uppercase"
	PasswordNeedsLowercase       = "needs_lowercase"
	PasswordNeedsDigit           = "needs_digit"
	PasswordNeedsSpecial         = "needs_special"
	PasswordWhitespaceNotAllowed = "whitespace_not_allowed"
	PasswordContainsUsername     = "contains_username"
)

// Password is the password policy: the composition rules every new
// password passes, whoever sets it (self-service change, administrator
// reset, account creation).
type Password struct {
	// MinLength is the fewest characters (of the NFC form) a password may
	// have. Default 8; 6 to 64.
	MinLength int `json:"min_length" toml:"min_length"`
	// MaxLength is the most characters a password may have. Default 128;
	// above MinLength and at most 1024. Input over MaxPasswordBytes bytes
	// is refused whatever it says.
	MaxLength int `json:"max_length" toml:"max_length"`
	// MinUppercase is how many uppercase letters (any script) a password
	// needs. Default 0.
	MinUppercase int `json:"min_uppercase" toml:"min_uppercase"`
	// MinLowercase is how many lowercase letters a password needs.
	// Default 0.
	MinLowercase int `json:"min_lowercase" toml:"min_lowercase"`
	// MinDigits is how many digits a password needs. Default 0.
	MinDigits int `json:"min_digits" toml:"min_digits"`
	// MinSpecial is how many characters that are neither letter, digit
	// nor whitespace (punctuation, symbols, emoji) a password needs.
	// Default 0.
	MinSpecial int `json:"min_special" toml:"min_special"`
	// AllowWhitespace lets a password contain spaces, so passphrases
	// work. Default true.
	AllowWhitespace bool `json:"allow_whitespace" toml:"allow_whitespace"`
	// DisallowUsername refuses a password containing the username or the
	// local part of the email address, ignoring case. Default false.
	DisallowUsername bool `json:"disallow_username" toml:"disallow_username"`
}

func defaultPassword() Password {
	return Password{MinLength: 8, MaxLength: 128, AllowWhitespace: true}
}

func (p Password) validate(v *validator) {
	if p.MinLength < minPasswordMinLength || p.MinLength > maxPasswordMinLength {
		v.fail("password.min_length", "must be between %d and %d (got %d)", minPasswordMinLength, maxPasswordMinLength, p.MinLength)
	}
	switch {
	case p.MaxLength > MaxPasswordBytes:
		v.fail("password.max_length", "must be at most %d (got %d)", MaxPasswordBytes, p.MaxLength)
	case p.MaxLength <= p.MinLength:
		v.fail("password.max_length", "must exceed password.min_length (%d), got %d", p.MinLength, p.MaxLength)
	}
	counts := []struct {
		field string
		n     int
	}{
		{"password.min_uppercase", p.MinUppercase},
		{"password.min_lowercase", p.MinLowercase},
		{"password.min_digits", p.MinDigits},
		{"password.min_special", p.MinSpecial},
	}
	sum, countsOK := 0, true
	for _, c := range counts {
		if c.n < 0 {
			v.nonNegativeInt(c.field, c.n)
			countsOK = false
		}
		sum += c.n
	}
	// A policy no password can meet would lock everyone out of every
	// password change, so it is refused rather than discovered by users.
	if countsOK && p.MaxLength > 0 && sum > p.MaxLength {
		v.fail("password.min_uppercase", "password.min_uppercase, min_lowercase, min_digits and min_special add up to %d, more than password.max_length (%d)", sum, p.MaxLength)
	}
}

// PasswordProblem is one way a password fails the policy. Message
// completes "The password …" ("must contain a digit").
type PasswordProblem struct {
	Code    string
	Message string
}

// Check judges password as the new password of the account named username
// with email ("" for none) and returns every problem at once, so a person
// fixes them in one go; nil means it passes. Lengths are counted in
// characters of the NFC form, so a letter typed precomposed or as letter
// plus accent counts the same. The caller has refused input over
// MaxPasswordBytes.
func (p Password) Check(password, username, email string) []PasswordProblem {
	password = norm.NFC.String(password)
	var upper, lower, digits, special, space, n int
	for _, r := range password {
		n++
		switch {
		case unicode.IsUpper(r):
			upper++
		case unicode.IsLower(r):
			lower++
		case unicode.IsLetter(r):
			// A letter without case (CJK, Arabic) is neither.
		case unicode.IsDigit(r):
			digits++
		case unicode.IsSpace(r):
			space++
		default:
			special++
		}
	}
	var out []PasswordProblem
	add := func(code, format string, args ...any) {
		out = append(out, PasswordProblem{Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if n < p.MinLength {
		add(PasswordTooShort, "must be at least %d characters", p.MinLength)
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		add(PasswordTooLong, "must be at most %d characters", p.MaxLength)
	}
	if upper < p.MinUppercase {
		add(PasswordNeedsUppercase, "must contain %s", countOf(p.MinUppercase, "an uppercase letter", "uppercase letters"))
	}
	if lower < p.MinLowercase {
		add(PasswordNeedsLowercase, "must contain %s", countOf(p.MinLowercase, "a lowercase letter", "lowercase letters"))
	}
	if digits < p.MinDigits {
		add(PasswordNeedsDigit, "must contain %s", countOf(p.MinDigits, "a digit", "digits"))
	}
	if special < p.MinSpecial {
		add(PasswordNeedsSpecial, "must contain %s (not a letter, digit or space)", countOf(p.MinSpecial, "a special character", "special characters"))
	}
	if !p.AllowWhitespace && space > 0 {
		add(PasswordWhitespaceNotAllowed, "must not contain spaces or other whitespace")
	}
	if p.DisallowUsername {
		if msg := containsIdentity(password, username, email); msg != "" {
			add(PasswordContainsUsername, "%s", msg)
		}
	}
	return out
}

// countOf phrases a required count: "a digit", "at least 2 digits".
func countOf(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return fmt.Sprintf("at least %d %s", n, many)
}

// minIdentityPart is the shortest username or email local part looked for
// in a password: a two-letter name occurs by chance in many good
// passwords.
const minIdentityPart = 3

// containsIdentity returns the message for a password that contains the
// username or the email's local part, ignoring case, or "".
func containsIdentity(password, username, email string) string {
	folded := strings.ToLower(password)
	contains := func(part string) bool {
		part = strings.ToLower(norm.NFC.String(part))
		return utf8.RuneCountInString(part) >= minIdentityPart && strings.Contains(folded, part)
	}
	if contains(username) {
		return "must not contain the username"
	}
	if at := strings.LastIndexByte(email, '@'); at > 0 && contains(email[:at]) {
		return "must not contain the email address's name (the part before @)"
	}
	return ""
}

// PasswordCandidate is a password about to be set, with what a rule may
// judge it by.
type PasswordCandidate struct {
	// Password is the new password, already normalized (PRECIS
	// OpaqueString) and at most MaxPasswordBytes bytes.
	Password string
	// UserID is the account's id; "" for an account being created.
	UserID   string
	Username string
	// Email is the account's email address; "" for none.
	Email string
	Admin bool
	// Now is the time of the change, from the injected clock.
	Now time.Time
	// Policy is the policy in force for the change.
	Policy Policy
}

// PasswordRule judges a new password: every problem with it, or none when
// it passes. A password that fails is an expected outcome, not an error;
// the error is kept for failures to judge at all (a password history that
// cannot be read). The built-in rule is PasswordPolicyRule; an embedding
// program adds its own, run after it on every password write.
type PasswordRule interface {
	CheckPassword(ctx context.Context, c PasswordCandidate) ([]PasswordProblem, error)
}

// PasswordRuleFunc lets a plain function be a PasswordRule.
type PasswordRuleFunc func(ctx context.Context, c PasswordCandidate) ([]PasswordProblem, error)

// CheckPassword calls f.
func (f PasswordRuleFunc) CheckPassword(ctx context.Context, c PasswordCandidate) ([]PasswordProblem, error) {
	return f(ctx, c)
}

// PasswordPolicyRule is the built-in rule: the password section of the
// candidate's policy (Password.Check).
type PasswordPolicyRule struct{}

// CheckPassword checks c against c.Policy.Password.
func (PasswordPolicyRule) CheckPassword(_ context.Context, c PasswordCandidate) ([]PasswordProblem, error) {
	return c.Policy.Password.Check(c.Password, c.Username, c.Email), nil
}
