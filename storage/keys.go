package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CreateSigningKey stores a new key; privateJWK is encrypted with the secret
// box before it touches the database.
func (s *Store) CreateSigningKey(ctx context.Context, k *SigningKey, privateJWK []byte) error {
	if s.box == nil {
		return errors.New("create signing key: no secret box configured")
	}
	sealed, err := s.box.Seal(privateJWK, "signing_key:"+k.ID)
	if err != nil {
		return err
	}
	k.PrivateKey = sealed
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now().UTC()
	}
	return mapErr("create signing key", s.conn(ctx).Create(k).Error)
}

// OpenSigningKey decrypts a key's private JWK.
func (s *Store) OpenSigningKey(k *SigningKey) ([]byte, error) {
	if s.box == nil {
		return nil, errors.New("open signing key: no secret box configured")
	}
	return s.box.Open(k.PrivateKey, "signing_key:"+k.ID)
}

// SigningKeys lists every key not revoked, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	var out []SigningKey
	err := s.conn(ctx).Where("revoked_at IS NULL").Order("created_at DESC, id DESC").Find(&out).Error
	return out, mapErr("list signing keys", err)
}

// RetireSigningKeys stops every key but keep from signing; they stay
// published until publishUntil (nil: until revoked) so tokens they signed
// still verify.
func (s *Store) RetireSigningKeys(ctx context.Context, keep string, at time.Time, publishUntil *time.Time) error {
	updates := map[string]any{"retired_at": at.UTC()}
	if publishUntil != nil {
		updates["publish_until"] = publishUntil.UTC()
	}
	return mapErr("retire signing keys", s.conn(ctx).Model(&SigningKey{}).
		Where("id <> ? AND retired_at IS NULL", keep).Updates(updates).Error)
}

// RevokeSigningKeys unpublishes every key but keep.
func (s *Store) RevokeSigningKeys(ctx context.Context, keep string, at time.Time) error {
	return mapErr("revoke signing keys", s.conn(ctx).Model(&SigningKey{}).
		Where("id <> ? AND revoked_at IS NULL", keep).
		Updates(map[string]any{"revoked_at": at.UTC(), "retired_at": at.UTC()}).Error)
}

// SigningKeysVersion is a cheap fingerprint of the key set (counts and newest
// change) so instances can notice a rotation made elsewhere. The retired and
// revoked counts matter: a rotation stamped with the same instant as the
// previous one leaves every MAX unchanged.
func (s *Store) SigningKeysVersion(ctx context.Context) (string, error) {
	var n, nRetired, nRevoked int64
	var created, retired, revoked sql.NullString
	err := s.conn(ctx).Model(&SigningKey{}).
		Select("COUNT(*), COUNT(retired_at), COUNT(revoked_at), MAX(created_at), MAX(retired_at), MAX(revoked_at)").
		Row().Scan(&n, &nRetired, &nRevoked, &created, &retired, &revoked)
	if err != nil {
		return "", mapErr("signing keys version", err)
	}
	return fmt.Sprintf("%d|%d|%d|%s|%s|%s", n, nRetired, nRevoked, created.String, retired.String, revoked.String), nil
}
