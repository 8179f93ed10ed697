package storage

import (
	"context"
	"strings"

	"golang.org/x/text/cases"
)

// CanonicalUsername folds a username so that "Alice" and "alice" are one
// account, as users expect.
func CanonicalUsername(u string) string {
	return cases.Fold().String(strings.TrimSpace(u))
}

// CreateUser inserts u (its Username is canonicalised); ErrConflict when the
// id or username is taken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	now := s.now().UTC()
	u.CreatedAt, u.UpdatedAt = now, now
	u.Username = CanonicalUsername(u.Username)
	return mapErr("create user", s.conn(ctx).Create(u).Error)
}

// User loads one user by id.
func (s *Store) User(ctx context.Context, id string) (*User, error) {
	var u User
	if err := s.conn(ctx).Where("id = ?", id).Take(&u).Error; err != nil {
		return nil, mapErr("get user", err)
	}
	return &u, nil
}

// UserByUsername loads one user by username (canonicalised first).
func (s *Store) UserByUsername(ctx context.Context, username string) (*User, error) {
	var u User
	if err := s.conn(ctx).Where("username = ?", CanonicalUsername(username)).Take(&u).Error; err != nil {
		return nil, mapErr("get user by username", err)
	}
	return &u, nil
}

// ListUsers returns up to limit users with id > after, ordered by id.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]User, error) {
	var out []User
	q := s.conn(ctx).Order("id").Limit(limit)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if err := q.Find(&out).Error; err != nil {
		return nil, mapErr("list users", err)
	}
	return out, nil
}

// UpdatePasswordHash replaces a user's hash, e.g. after a rehash with
// stronger parameters.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, hash string) error {
	res := s.conn(ctx).Model(&User{}).Where("id = ?", userID).
		Updates(map[string]any{"password_hash": hash, "updated_at": s.now().UTC()})
	if res.Error != nil {
		return mapErr("update password hash", res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr("update password hash", ErrNotFound)
	}
	return nil
}

// DeleteUser removes a user, their browser sessions and consents, and every
// token issued to them.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		if err := db.Where("subject = ?", id).Delete(&tokenRow{}).Error; err != nil {
			return mapErr("delete user tokens", err)
		}
		res := db.Where("id = ?", id).Delete(&User{})
		if res.Error != nil {
			return mapErr("delete user", res.Error)
		}
		if res.RowsAffected == 0 {
			return mapErr("delete user", ErrNotFound)
		}
		return nil
	})
}
