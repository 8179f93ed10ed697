package authn

import (
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

// UserSpec is what an administrator supplies to create a user, from the CLI
// or the admin API.
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

// checkPasswordLength adds to fe what is wrong with the length of pw, the
// value of field. Every place a password is set uses it, so the bounds are
// the same whether an administrator or the user chooses it.
func checkPasswordLength(fe *fielderr.Error, field, pw string) {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLength:
		fe.Add(field, "must be at least %d characters", MinPasswordLength)
	case len(pw) > MaxPasswordLength:
		fe.Add(field, "must be at most %d bytes", MaxPasswordLength)
	}
}

// CheckPassword reports what is wrong with pw as a new password given in
// field, as a *fielderr.Error, or nil. It is NewUser's rule, exported so an
// administrator's reset judges a password exactly as user creation does.
func CheckPassword(field, pw string) error {
	var fe fielderr.Error
	checkPasswordLength(&fe, field, pw)
	return fe.Err()
}

// NewUser validates spec and builds the user to store, hashing the password
// with argon2id under hasher's parameters.
func NewUser(spec UserSpec, hasher hashing.Argon2) (*storage.User, error) {
	var fe fielderr.Error
	username := storage.CanonicalUsername(spec.Username)
	switch {
	case username == "":
		fe.Add("username", "is required")
	case utf8.RuneCountInString(username) > 128:
		fe.Add("username", "must be at most 128 characters")
	case strings.ContainsFunc(username, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		fe.Add("username", "must not contain control characters")
	}
	checkPasswordLength(&fe, "password", spec.Password)
	if spec.Email != "" {
		if a, err := mail.ParseAddress(spec.Email); err != nil || a.Address != spec.Email {
			fe.Add("email", "is not a valid email address")
		}
	}
	if spec.EmailVerified && spec.Email == "" {
		fe.Add("email_verified", "needs an email")
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	hash, err := hasher.Hash(spec.Password)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	return &storage.User{
		ID:            id.String(),
		Username:      username,
		Email:         spec.Email,
		EmailVerified: spec.EmailVerified,
		PasswordHash:  hash,
		Admin:         spec.Admin,
	}, nil
}
