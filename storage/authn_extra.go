package storage

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// BrowserSessionIncludingExpired loads a session by id whether or not its
// expiry has passed, so that the caller can still end a session that timed
// out under the session policy properly (revoke its tokens, record why)
// when the browser comes back after the row's own expiry.
func (s *Store) BrowserSessionIncludingExpired(ctx context.Context, id string) (*BrowserSession, error) {
	var bs BrowserSession
	if err := s.conn(ctx).Where("id = ?", id).Take(&bs).Error; err != nil {
		return nil, mapErr("get browser session", err)
	}
	return &bs, nil
}

// ReauthenticateBrowserSession records a fresh credential check on a live
// session: its auth_time becomes at, so a sensitive action that demands a
// recent sign-in (session.reauth_max_age) is allowed again. ErrNotFound
// when the session is gone or expired.
func (s *Store) ReauthenticateBrowserSession(ctx context.Context, id string, at time.Time) error {
	res := s.conn(ctx).Model(&BrowserSession{}).
		Where("id = ? AND expires_at > ?", id, s.now().UTC()).
		Update("auth_time", at.UTC())
	if res.Error != nil {
		return mapErr("reauthenticate browser session", res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr("reauthenticate browser session", ErrNotFound)
	}
	return nil
}

// LockUserBrowserSessions lists a user's live sessions, oldest first, and
// holds the user's row locked until the transaction in ctx ends, so that
// concurrent sign-ins of one user on several instances count and evict
// sessions one after the other and max_concurrent holds exactly. SQLite
// needs no row lock: every transaction there begins IMMEDIATE and so
// already excludes other writers. ErrNotFound when the user does not exist.
func (s *Store) LockUserBrowserSessions(ctx context.Context, userID string) ([]BrowserSession, error) {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); !ok {
		// Without a transaction the lock would be released at once and
		// the count would race; that is a caller bug, not bad input.
		return nil, errors.New("lock user browser sessions: must run inside a transaction (InTx)")
	}
	q := s.conn(ctx).Model(&User{}).Select("id").Where("id = ?", userID)
	if s.dialect == DialectPostgres {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var u User
	if err := q.Take(&u).Error; err != nil {
		return nil, mapErr("lock user browser sessions", err)
	}
	return s.UserBrowserSessions(ctx, userID)
}
