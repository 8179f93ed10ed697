package storage

import (
	"context"
	"slices"
	"time"
)

// CreateBrowserSession inserts a signed-in browser session.
func (s *Store) CreateBrowserSession(ctx context.Context, bs *BrowserSession) error {
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
