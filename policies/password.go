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
	PasswordBreached             = "password_breached"
	PasswordReused               = "password_reused"
)

// Values of Password.ForceResetIfInvalid.
const (
	ForceResetOff    = "off"
	ForceResetChange = "change"
	ForceResetEmail  = "email"
)

// Values of Password.HIBPFailure.
const (
	HIBPFailOpen   = "open"
	HIBPFailClosed = "closed"
)

// Bounds of the history and expiry settings. A history of 24 is the most
// any common directory keeps; ten years of days is past any real policy.
const (
	MaxPreventReuse = 24
	maxPasswordDays = 3650
)

// DefaultHIBPURL is the Have I Been Pwned range API, which is sent only the
// first five hex digits of a password's SHA-1.
const DefaultHIBPURL = "https://api.pwnedpasswords.com/range/"

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
	// CheckBreached refuses a password found in the list of common leaked
	// passwords shipped with the server (and, with HIBP, in Have I Been
	// Pwned). Default true.
	CheckBreached bool `json:"check_breached" toml:"check_breached"`
	// HIBP also asks the Have I Been Pwned range API, sending the first
	// five hex digits of the password's SHA-1 and nothing else. Default
	// false; only with CheckBreached.
	HIBP bool `json:"hibp" toml:"hibp"`
	// HIBPURL is the range API's base URL, the five digits appended; ""
	// means DefaultHIBPURL. https, or http on loopback (a local mirror).
	HIBPURL string `json:"hibp_url" toml:"hibp_url"`
	// HIBPTimeout bounds one range request. Default 2s; 100ms to 10s.
	HIBPTimeout Duration `json:"hibp_timeout" toml:"hibp_timeout"`
	// HIBPFailure is what an unanswered range request means: "open"
	// (default: the offline list alone decides) or "closed" (the password
	// is refused, to be tried again later).
	HIBPFailure string `json:"hibp_failure" toml:"hibp_failure"`
	// PreventReuse refuses the last N passwords of the account, the
	// current one included. Default 0 (off); at most 24.
	PreventReuse int `json:"prevent_reuse" toml:"prevent_reuse"`
	// ReuseDays refuses a password the account used within the last D
	// days (among the 24 most recent). Default 0 (off); at most 3650.
	ReuseDays int `json:"reuse_days" toml:"reuse_days"`
	// ExpireDays is how many days a password lasts; an expired password
	// lets its owner sign in only to change it. Default 0 (never), as
	// NIST SP 800-63B recommends; at most 3650.
	ExpireDays int `json:"expire_days" toml:"expire_days"`
	// ForceResetIfInvalid is what a sign-in with a password that no
	// longer meets this policy leads to: "off" (default: nothing),
	// "change" (the password must be changed before the sign-in
	// completes) or "email" (a reset link is mailed and the sign-in is
	// refused).
	ForceResetIfInvalid string `json:"force_reset_if_invalid" toml:"force_reset_if_invalid"`
}

func defaultPassword() Password {
	return Password{
		MinLength: 8, MaxLength: 128, AllowWhitespace: true, CheckBreached: true,
		HIBPTimeout: Duration(2 * time.Second), HIBPFailure: HIBPFailOpen, ForceResetIfInvalid: ForceResetOff,
	}
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
	if p.HIBPURL != "" {
		if problem := serviceURLProblem(p.HIBPURL, DefaultHIBPURL, "it is sent the start of password hashes"); problem != "" {
			v.fail("password.hibp_url", "%s", problem)
		}
	}
	if t := p.HIBPTimeout.D(); t < 100*time.Millisecond || t > 10*time.Second {
		v.fail("password.hibp_timeout", "must be between 100ms and 10s (got %s)", p.HIBPTimeout)
	}
	if p.HIBPFailure != HIBPFailOpen && p.HIBPFailure != HIBPFailClosed {
		v.fail("password.hibp_failure", `must be "open" or "closed" (got %q)`, p.HIBPFailure)
	}
	if p.HIBP && !p.CheckBreached {
		v.warn("password.hibp", "has no effect while password.check_breached is false")
	}
	for _, c := range []struct {
		field  string
		n, max int
	}{
		{"password.prevent_reuse", p.PreventReuse, MaxPreventReuse},
		{"password.reuse_days", p.ReuseDays, maxPasswordDays},
		{"password.expire_days", p.ExpireDays, maxPasswordDays},
	} {
		if c.n < 0 || c.n > c.max {
			v.fail(c.field, "must be between 0 and %d (got %d)", c.max, c.n)
		}
	}
	switch p.ForceResetIfInvalid {
	case ForceResetOff, ForceResetChange, ForceResetEmail:
	default:
		v.fail("password.force_reset_if_invalid", `must be "off", "change" or "email" (got %q)`, p.ForceResetIfInvalid)
	}
}

// KeepsHistory reports whether the policy judges new passwords against
// earlier ones, so that password writes record them.
func (p Password) KeepsHistory() bool { return p.PreventReuse > 0 || p.ReuseDays > 0 }

// Reusable reports whether an earlier password of the account, set at
// setAt and rank places back (0 the current one), may be chosen again at
// now.
func (p Password) Reusable(rank int, setAt, now time.Time) bool {
	if rank < p.PreventReuse {
		return false
	}
	return p.ReuseDays == 0 || !now.Before(setAt.Add(time.Duration(p.ReuseDays)*24*time.Hour))
}

// Expired reports whether a password set at changedAt has expired at now.
func (p Password) Expired(changedAt, now time.Time) bool {
	return p.ExpireDays > 0 && !now.Before(changedAt.Add(time.Duration(p.ExpireDays)*24*time.Hour))
}

// PasswordProblem is one way a password fails the policy. Message
// completes "The password …" ("must contain a digit").
type PasswordProblem struct {
	Code    string
	Message string
}

// PasswordFacts are what the policy judges a password by, counted once.
// They are kept with the account when its password is set (never the
// password), so that a candidate policy can be tried against every
// account (Problems) without anyone's password.
type PasswordFacts struct {
	// Length is the count of characters of the NFC form.
	Length     int `json:"length"`
	Upper      int `json:"upper"`
	Lower      int `json:"lower"`
	Digits     int `json:"digits"`
	Special    int `json:"special"`
	Whitespace int `json:"whitespace"`
	// ContainsIdentity is the message of the disallow_username rule the
	// password breaks ("must not contain the username"), or "".
	ContainsIdentity string `json:"contains_identity,omitempty"`
	// Breached says the password was found among leaked passwords when
	// it was set.
	Breached bool `json:"breached,omitempty"`
}

// FactsOf counts the facts of password as the password of the account
// named username with email ("" for none). Breached is left for the
// caller, which alone can look it up.
func FactsOf(password, username, email string) PasswordFacts {
	password = norm.NFC.String(password)
	var f PasswordFacts
	for _, r := range password {
		f.Length++
		switch {
		case unicode.IsUpper(r):
			f.Upper++
		case unicode.IsLower(r):
			f.Lower++
		case unicode.IsLetter(r):
			// A letter without case (CJK, Arabic) is neither.
		case unicode.IsDigit(r):
			f.Digits++
		case unicode.IsSpace(r):
			f.Whitespace++
		default:
			f.Special++
		}
	}
	f.ContainsIdentity = containsIdentity(password, username, email)
	return f
}

// Check judges password as the new password of the account named username
// with email ("" for none) and returns every problem at once, so a person
// fixes them in one go; nil means it passes. Lengths are counted in
// characters of the NFC form, so a letter typed precomposed or as letter
// plus accent counts the same. The caller has refused input over
// MaxPasswordBytes. Whether it is breached is another rule's to say.
func (p Password) Check(password, username, email string) []PasswordProblem {
	return p.Problems(FactsOf(password, username, email))
}

// Problems judges a password by its facts: every composition rule it
// breaks, and password_breached when CheckBreached is on and the facts say
// it was found leaked.
func (p Password) Problems(f PasswordFacts) []PasswordProblem {
	var out []PasswordProblem
	add := func(code, format string, args ...any) {
		out = append(out, PasswordProblem{Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if f.Length < p.MinLength {
		add(PasswordTooShort, "must be at least %d characters", p.MinLength)
	}
	if p.MaxLength > 0 && f.Length > p.MaxLength {
		add(PasswordTooLong, "must be at most %d characters", p.MaxLength)
	}
	if f.Upper < p.MinUppercase {
		add(PasswordNeedsUppercase, "must contain %s", countOf(p.MinUppercase, "an uppercase letter", "uppercase letters"))
	}
	if f.Lower < p.MinLowercase {
		add(PasswordNeedsLowercase, "must contain %s", countOf(p.MinLowercase, "a lowercase letter", "lowercase letters"))
	}
	if f.Digits < p.MinDigits {
		add(PasswordNeedsDigit, "must contain %s", countOf(p.MinDigits, "a digit", "digits"))
	}
	if f.Special < p.MinSpecial {
		add(PasswordNeedsSpecial, "must contain %s (not a letter, digit or space)", countOf(p.MinSpecial, "a special character", "special characters"))
	}
	if !p.AllowWhitespace && f.Whitespace > 0 {
		add(PasswordWhitespaceNotAllowed, "must not contain spaces or other whitespace")
	}
	if p.DisallowUsername && f.ContainsIdentity != "" {
		add(PasswordContainsUsername, "%s", f.ContainsIdentity)
	}
	if p.CheckBreached && f.Breached {
		add(PasswordBreached, "%s", BreachedMessage)
	}
	return out
}

// BreachedMessage explains password_breached.
const BreachedMessage = "appears in lists of passwords leaked from other sites, which attackers try first; choose another"

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
	// Facts are the password's facts, counted once for every rule, with
	// Breached looked up.
	Facts PasswordFacts
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

// PasswordPolicyRule is the built-in composition and breached-list rule:
// the password section of the candidate's policy judging its facts
// (Password.Problems).
type PasswordPolicyRule struct{}

// CheckPassword checks c.Facts against c.Policy.Password.
func (PasswordPolicyRule) CheckPassword(_ context.Context, c PasswordCandidate) ([]PasswordProblem, error) {
	return c.Policy.Password.Problems(c.Facts), nil
}
