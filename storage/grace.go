package storage

import (
	"context"
	"fmt"
	"time"
)

type refreshGrace struct {
	Signature string    `gorm:"column:signature;primaryKey"`
	ClientID  string    `gorm:"column:client_id"`
	Response  string    `gorm:"column:response"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (refreshGrace) TableName() string { return "refresh_grace" }

// PutRefreshGrace keeps the response a refresh returned, sealed, until
// expiresAt, keyed by the signature of the refresh token it consumed.
func (s *Store) PutRefreshGrace(ctx context.Context, signature, clientID string, response []byte, expiresAt time.Time) error {
	if s.box == nil {
		return fmt.Errorf("put refresh grace: no secret box configured")
	}
	sealed, err := s.box.Seal(response, "refresh_grace:"+signature)
	if err != nil {
		return err
	}
	db := s.conn(ctx)
	if err := db.Where("expires_at < ?", s.now().UTC()).Delete(&refreshGrace{}).Error; err != nil {
		return mapErr("expire refresh grace", err)
	}
	return mapErr("put refresh grace", db.Create(&refreshGrace{
		Signature: signature, ClientID: clientID, Response: sealed, ExpiresAt: expiresAt.UTC(),
	}).Error)
}

// RefreshGrace returns the client and the response kept for a consumed
// refresh token, ErrNotFound when there is none or it expired.
func (s *Store) RefreshGrace(ctx context.Context, signature string) (clientID string, response []byte, err error) {
	var g refreshGrace
	if err := s.conn(ctx).Where("signature = ? AND expires_at > ?", signature, s.now().UTC()).Take(&g).Error; err != nil {
		return "", nil, mapErr("get refresh grace", err)
	}
	if s.box == nil {
		return "", nil, fmt.Errorf("get refresh grace: no secret box configured")
	}
	resp, err := s.box.Open(g.Response, "refresh_grace:"+signature)
	if err != nil {
		return "", nil, err
	}
	return g.ClientID, resp, nil
}
