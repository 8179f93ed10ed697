package authn

import (
	"net/mail"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
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
	// WithoutPassword creates the account with no password, to be set by
	// its owner through an activation link (Links.Send); Password must be
	// empty then. Until then no password signs in to it.
	WithoutPassword bool `json:"-"`
}

// MaxPasswordLength is the most bytes of password input accepted, whatever
// the password policy says: it keeps a single request from costing
// unbounded hashing work. The policy's own bounds are in characters.
const MaxPasswordLength = policies.MaxPasswordBytes

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
