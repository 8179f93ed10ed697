package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// Kinds of account link. A link of one kind never passes for another: a
// verification link must not reset a password.
const (
	AccountLinkVerifyEmail = "verify_email"
	AccountLinkActivation  = "activation"
	AccountLinkReset       = "reset"
)

// AccountLink is a one-time link mailed to a person. TokenHash is
// HashLinkToken of the secret token in the link; the token itself is
// never stored, so the table is no list of working links. Email is the
// address the link was sent to, so that following a verification link
// proves that address even if the account's address changed since.
// UsedAt is nil until the link is used or superseded.
type AccountLink struct {
	ID        string     `gorm:"column:id;primaryKey"`
	Kind      string     `gorm:"column:kind"`
	TokenHash string     `gorm:"column:token_hash"`
	UserID    string     `gorm:"column:user_id"`
	Email     string     `gorm:"column:email"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	ExpiresAt time.Time  `gorm:"column:expires_at"`
	UsedAt    *time.Time `gorm:"column:used_at"`
}

// TableName pins the table name.
func (AccountLink) TableName() string { return "account_links" }

// NewAccountLinkToken returns a fresh token for a link and the hash to
// store for it. The token has 256 random bits: that is what lets a plain,
// unkeyed SHA-256 protect it at rest, since nobody can enumerate tokens
// to match a stolen hash.
func NewAccountLinkToken() (token, hash string) {
	b := make([]byte, 32)
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashLinkToken(token)
}

// HashLinkToken is the lower-case hex SHA-256 of a link's token, what
// AccountLink.TokenHash holds and what UseAccountLink and PeekAccountLink
// look up. Callers hash; the store only ever sees hashes. It is unkeyed on
// purpose: tokens are high-entropy (NewAccountLinkToken), so a key would
// add nothing but links that die when the system secret rotates.
func HashLinkToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func validAccountLinkKind(kind string) bool {
	switch kind {
	case AccountLinkVerifyEmail, AccountLinkActivation, AccountLinkReset:
		return true
	}
	return false
}

// CreateAccountLink stores a new link. An empty ID is filled with a random
// one; CreatedAt defaults to the store's clock. ErrConflict when the id or
// the token hash exists, ErrNotFound when the user does not.
func (s *Store) CreateAccountLink(ctx context.Context, l *AccountLink) error {
	const op = "create account link"
	if l.CreatedAt.IsZero() {
		l.CreatedAt = s.now()
	}
	if l.ID == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		l.ID = hex.EncodeToString(b)
	}
	switch {
	case !validAccountLinkKind(l.Kind):
		return fmt.Errorf("%s: unknown kind %q", op, l.Kind)
	case l.TokenHash == "" || !StorableText(l.TokenHash):
		return fmt.Errorf("%s: token hash must be non-empty text", op)
	case l.UserID == "" || !StorableText(l.UserID):
		return fmt.Errorf("%s: user id must be non-empty text", op)
	case !StorableText(l.ID) || !StorableText(l.Email):
		return fmt.Errorf("%s: id and email must be valid UTF-8 without NUL", op)
	case !l.ExpiresAt.After(l.CreatedAt):
		// A zero ExpiresAt would make a link that was never usable, which
		// is a caller's bug worth hearing about.
		return fmt.Errorf("%s: expires at %v, not after created at %v", op, l.ExpiresAt, l.CreatedAt)
	}
	l.CreatedAt, l.ExpiresAt = l.CreatedAt.UTC(), l.ExpiresAt.UTC()
	if l.UsedAt != nil {
		u := l.UsedAt.UTC()
		l.UsedAt = &u
	}
	return mapErr(op, s.conn(ctx).Create(l).Error)
}

const accountLinkColumns = "id, kind, token_hash, user_id, email, created_at, expires_at, used_at"

// UseAccountLink consumes the live link of kind whose token hashes to
// tokenHash and returns it, UsedAt set. Live means unused and not expired
// on the store's clock.
//
// It is one conditional UPDATE … RETURNING, so of any number of parallel
// uses on any instances exactly one gets the link. Every other outcome —
// a lost race, a used, expired, superseded or unknown token, a link of
// another kind, input that is not storable text — is ErrNotFound: the
// caller shows one "link invalid or expired" page for all of them, and
// telling them apart would take a second query that could race anyway.
// Inside a transaction (InTx) the use is undone with it, so the caller can
// consume a reset link and write the new password atomically.
func (s *Store) UseAccountLink(ctx context.Context, kind, tokenHash string) (*AccountLink, error) {
	const op = "use account link"
	if !lookupable(kind, tokenHash) {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	now := s.now().UTC()
	var rows []AccountLink
	err := s.conn(ctx).Raw("UPDATE account_links SET used_at = ? "+
		"WHERE token_hash = ? AND kind = ? AND used_at IS NULL AND expires_at > ? RETURNING "+accountLinkColumns,
		now, tokenHash, kind, now).Scan(&rows).Error
	if err != nil {
		return nil, mapErr(op, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return &rows[0], nil
}

// PeekAccountLink reads the live link of kind whose token hashes to
// tokenHash without consuming it: the reset page checks its link before
// showing the form, and uses it (UseAccountLink) only on submit. Anything
// but a live link is ErrNotFound, as for UseAccountLink. A successful peek
// promises nothing about the use that follows, which may still lose.
func (s *Store) PeekAccountLink(ctx context.Context, kind, tokenHash string) (*AccountLink, error) {
	const op = "peek account link"
	if !lookupable(kind, tokenHash) {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var rows []AccountLink
	err := s.conn(ctx).Raw("SELECT "+accountLinkColumns+" FROM account_links "+
		"WHERE token_hash = ? AND kind = ? AND used_at IS NULL AND expires_at > ?",
		tokenHash, kind, s.now().UTC()).Scan(&rows).Error
	if err != nil {
		return nil, mapErr(op, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return &rows[0], nil
}

// lookupable reports whether a lookup by kind and token hash can match at
// all. The hash comes from a URL, and PostgreSQL would answer text it
// cannot store with an error that must not pass for an outage.
func lookupable(kind, tokenHash string) bool {
	return validAccountLinkKind(kind) && tokenHash != "" && StorableText(tokenHash)
}

// InvalidateAccountLinks marks every live link of the user and kind used
// and reports how many there were: a new reset link supersedes the older
// ones, and a password change kills those outstanding. An unknown kind is
// an error rather than zero links, since a typo here would silently leave
// links working.
func (s *Store) InvalidateAccountLinks(ctx context.Context, userID, kind string) (int64, error) {
	const op = "invalidate account links"
	if !validAccountLinkKind(kind) {
		return 0, fmt.Errorf("%s: unknown kind %q", op, kind)
	}
	if !StorableText(userID) {
		return 0, nil
	}
	now := s.now().UTC()
	res := s.conn(ctx).Model(&AccountLink{}).
		Where("user_id = ? AND kind = ? AND used_at IS NULL AND expires_at > ?", userID, kind, now).
		Update("used_at", now)
	return res.RowsAffected, mapErr(op, res.Error)
}

// DeleteExpiredAccountLinks removes links that expired before cutoff,
// used or not. Used links stay until then, which keeps their token hashes
// taken and lets support see that a link was followed.
func (s *Store) DeleteExpiredAccountLinks(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.conn(ctx).Where("expires_at < ?", cutoff.UTC()).Delete(&AccountLink{})
	return res.RowsAffected, mapErr("delete expired account links", res.Error)
}
