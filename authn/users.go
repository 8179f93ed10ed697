package authn

import (
	"context"
	"fmt"
	"net/mail"
	"unicode/utf8"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/storage"
)

// UserSpec is what an administrator supplies to create a user, from the CLI
// or the admin API (see Accounts.Create).
type UserSpec struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Admin         bool   `json:"admin,omitempty"`
}

// Password length bounds. The upper bound keeps a single login from costing
// unbounded hashing work; password rules proper belong to the password policy.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 1024
)

// PasswordLength is the rule every new password passes first, whoever
// chooses it: Accounts runs it before any other PasswordRule, so that no
// rule (a history check hashing the candidate, say) is handed a password
// longer than MaxPasswordLength.
func PasswordLength(_ context.Context, c PasswordCandidate) (string, error) {
	return passwordLengthProblem(c.Password), nil
}

// passwordLengthProblem is PasswordLength without the rule's signature, for
// a form that checks it before doing anything costly.
func passwordLengthProblem(pw string) string {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLength:
		return fmt.Sprintf("must be at least %d characters", MinPasswordLength)
	case len(pw) > MaxPasswordLength:
		return fmt.Sprintf("must be at most %d bytes", MaxPasswordLength)
	}
	return ""
}

// checkUsername adds to fe what is wrong with spec's username and returns
// it in the form it is stored and signed in with (storage.NormalizeUsername
// is the one rule, so creation and sign-in cannot disagree).
func checkUsername(fe *fielderr.Error, spec UserSpec) string {
	username, err := storage.NormalizeUsername(spec.Username)
	if ue, ok := fielderr.As(err); ok {
		fe.Fields = append(fe.Fields, ue.Fields...)
	}
	return username
}

// checkEmail adds to fe what is wrong with spec's email fields.
func checkEmail(fe *fielderr.Error, spec UserSpec) {
	if spec.Email != "" {
		if a, err := mail.ParseAddress(spec.Email); err != nil || a.Address != spec.Email {
			fe.Add("email", "is not a valid email address")
		}
	}
	if spec.EmailVerified && spec.Email == "" {
		fe.Add("email_verified", "needs an email")
	}
}
