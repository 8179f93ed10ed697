package storage

import (
	"context"
	"slices"
	"time"
)

// CreateBrowserSession inserts a signed-in browser session.
func (s *Store) CreateBrowserSession(ctx context.Context, bs *BrowserSession) error {
	if bs.AMR == nil {
		bs.AMR = []string{}
	}
	return mapErr("create browser session", s.conn(ctx).Create(bs).Error)
}

// BrowserSession loads a live session by id (the cookie hash); expired
// sessions are ErrNotFound.
func (s *Store) BrowserSession(ctx context.Context, id string) (*BrowserSession, error) {
	var bs BrowserSession
	err := s.conn(ctx).Where("id = ? AND expires_at > ?", id, s.now().UTC()).Take(&bs).Error
	if err != nil {
		return nil, mapErr("get browser session", err)
	}
	return &bs, nil
}

// TouchBrowserSession records use of a session.
func (s *Store) TouchBrowserSession(ctx context.Context, id string, at time.Time) error {
	return mapErr("touch browser session",
		s.conn(ctx).Model(&BrowserSession{}).Where("id = ?", id).Update("last_seen_at", at.UTC()).Error)
}

// DeleteBrowserSession ends one session; deleting a missing one is not an
// error (logout is idempotent).
func (s *Store) DeleteBrowserSession(ctx context.Context, id string) error {
	return mapErr("delete browser session", s.conn(ctx).Where("id = ?", id).Delete(&BrowserSession{}).Error)
}

// Consent returns what a user granted a client, ErrNotFound if nothing.
func (s *Store) Consent(ctx context.Context, userID, clientID string) (*Consent, error) {
	var c Consent
	if err := s.conn(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).Take(&c).Error; err != nil {
		return nil, mapErr("get consent", err)
	}
	return &c, nil
}

// GrantConsent adds scopes to what the user granted the client.
func (s *Store) GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		now := s.now().UTC()
		existing, err := s.Consent(ctx, userID, clientID)
		if isNotFound(err) {
			c := &Consent{UserID: userID, ClientID: clientID, Scopes: scopes, CreatedAt: now, UpdatedAt: now}
			return mapErr("grant consent", s.conn(ctx).Create(c).Error)
		}
		if err != nil {
			return err
		}
		merged := slices.Clone(existing.Scopes)
		for _, sc := range scopes {
			if !slices.Contains(merged, sc) {
				merged = append(merged, sc)
			}
		}
		existing.Scopes, existing.UpdatedAt = merged, now
		return mapErr("grant consent", s.conn(ctx).Save(existing).Error)
	})
}

// UserBrowserSessions lists a user's live sessions, oldest first.
func (s *Store) UserBrowserSessions(ctx context.Context, userID string) ([]BrowserSession, error) {
	var out []BrowserSession
	err := s.conn(ctx).Where("user_id = ? AND expires_at > ?", userID, s.now().UTC()).
		Order("created_at, id").Find(&out).Error
	return out, mapErr("list browser sessions", err)
}

// EndBrowserSession deletes one session and revokes the tokens issued under
// it, atomically. It reports whether the session existed.
func (s *Store) EndBrowserSession(ctx context.Context, id string) (bool, error) {
	var found bool
	err := s.InTx(ctx, func(ctx context.Context) error {
		res := s.conn(ctx).Where("id = ?", id).Delete(&BrowserSession{})
		if res.Error != nil {
			return mapErr("end browser session", res.Error)
		}
		found = res.RowsAffected > 0
		_, err := s.RevokeTokens(ctx, TokenFilter{SessionID: id})
		return err
	})
	return found, err
}

// EndUserSessions ends every session of a user except keep (which may be
// empty) and revokes every token of the user not issued under keep — also
// those whose session already expired. It returns the ids of the sessions
// ended.
func (s *Store) EndUserSessions(ctx context.Context, userID, keep string) ([]string, error) {
	var ended []string
	err := s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		q := db.Model(&BrowserSession{}).Where("user_id = ?", userID)
		if keep != "" {
			q = q.Where("id <> ?", keep)
		}
		if err := q.Pluck("id", &ended).Error; err != nil {
			return mapErr("end user sessions", err)
		}
		if len(ended) > 0 {
			if err := db.Where("id IN ?", ended).Delete(&BrowserSession{}).Error; err != nil {
				return mapErr("end user sessions", err)
			}
		}
		tokens := db.Model(&tokenRow{}).Where("subject = ? AND kind IN ? AND active = ?", userID, []string{kindAccess, kindRefresh}, true)
		if keep != "" {
			tokens = tokens.Where("session_id <> ?", keep)
		}
		return mapErr("end user sessions", tokens.Update("active", false).Error)
	})
	return ended, err
}
