package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
)

// Signing algorithms Portcullis can generate keys for.
const (
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// keyStore is the part of storage the key manager uses.
type keyStore interface {
	CreateSigningKey(ctx context.Context, k *storage.SigningKey, privateJWK []byte) error
	OpenSigningKey(k *storage.SigningKey) ([]byte, error)
	SigningKeys(ctx context.Context) ([]storage.SigningKey, error)
	RetireSigningKeys(ctx context.Context, keep string, at time.Time, publishUntil *time.Time) error
	RevokeSigningKeys(ctx context.Context, keep string, at time.Time) error
	SigningKeysVersion(ctx context.Context) (string, error)
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	RevokeTokens(ctx context.Context, f storage.TokenFilter) (int64, error)
}

// KeyManager owns the signing keys: every instance reads them from the
// database (where the private halves are encrypted), so all instances sign
// with the same key and publish the same JWKS.
type KeyManager struct {
	store  keyStore
	alg    string
	logger *slog.Logger
	now    func() time.Time
	audit  Recorder
	// signedLifetime bounds how long anything a key signed stays valid; a
	// retired key is published that much longer, then leaves the JWKS.
	signedLifetime func() time.Duration
	set            atomic.Pointer[keySet]
}

// KeyOption configures a KeyManager.
type KeyOption func(*KeyManager)

// WithKeyAudit records every rotation.
func WithKeyAudit(rec Recorder) KeyOption { return func(m *KeyManager) { m.audit = rec } }

// WithSignedLifetime tells the manager the longest lifetime of a signed
// token (JWT access token or ID token) under any policy, so retired keys
// leave the JWKS once nothing they signed can still be valid. Without it
// retired keys stay published until revoked.
func WithSignedLifetime(f func() time.Duration) KeyOption {
	return func(m *KeyManager) { m.signedLifetime = f }
}

type keySet struct {
	version string
	// expires is when the next retired key ages out of the JWKS; the set
	// is rebuilt then even if the database did not change.
	expires time.Time
	signer  *josev3.JSONWebKey // private; the key fosite signs with
	public  map[string]jose.JSONWebKey
	jwks    cachedDoc // pre-rendered JWKS document
}

// NewKeyManager loads the keys, generating a first one (or a new one when
// the configured algorithm changed) so the server can always sign.
func NewKeyManager(ctx context.Context, store keyStore, alg string, logger *slog.Logger, now func() time.Time, opts ...KeyOption) (*KeyManager, error) {
	switch alg {
	case AlgES256, AlgRS256, AlgEdDSA:
	default:
		return nil, fmt.Errorf("signing keys: unsupported algorithm %q", alg)
	}
	m := &KeyManager{store: store, alg: alg, logger: logger, now: now}
	for _, o := range opts {
		o(m)
	}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	if s := m.set.Load(); s.signer == nil || s.signer.Algorithm != alg {
		kid, _, err := m.RotateBy(ctx, "system", false)
		if err != nil {
			return nil, err
		}
		logger.Info("generated signing key", "kid", kid, "alg", alg)
	}
	return m, nil
}

// Rotate makes a new key the signing key. Without revokeExisting the old
// keys stay published, so what they signed still verifies; with it they
// leave the JWKS at once and every token issued before is revoked.
func (m *KeyManager) Rotate(ctx context.Context, revokeExisting bool) (string, error) {
	kid, _, err := m.RotateBy(ctx, "system", revokeExisting)
	return kid, err
}

// RotateBy is Rotate on behalf of actor (recorded in the audit trail); it
// also reports how many tokens a revoking rotation revoked.
func (m *KeyManager) RotateBy(ctx context.Context, actor string, revokeExisting bool) (string, int64, error) {
	priv, err := generateKey(m.alg)
	if err != nil {
		return "", 0, err
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: m.alg, Use: "sig"}
	pub := jwk.Public()
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", 0, fmt.Errorf("rotate signing key: thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	privJSON, err := jwk.MarshalJSON()
	if err != nil {
		return "", 0, fmt.Errorf("rotate signing key: %w", err)
	}
	pub.KeyID = jwk.KeyID
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return "", 0, fmt.Errorf("rotate signing key: %w", err)
	}
	now := m.now().UTC()
	var revoked int64
	err = m.store.InTx(ctx, func(ctx context.Context) error {
		k := &storage.SigningKey{ID: jwk.KeyID, Algorithm: m.alg, PublicJWK: string(pubJSON), CreatedAt: now}
		if err := m.store.CreateSigningKey(ctx, k, privJSON); err != nil {
			return err
		}
		if revokeExisting {
			if err := m.store.RevokeSigningKeys(ctx, k.ID, now); err != nil {
				return err
			}
			// Everything issued so far, opaque or signed, dies with the
			// keys: the "generate a new signing key" button.
			if revoked, err = m.store.RevokeTokens(ctx, storage.TokenFilter{IssuedBefore: now.Add(time.Nanosecond)}); err != nil {
				return err
			}
		} else if err := m.store.RetireSigningKeys(ctx, k.ID, now, m.publishUntil(now)); err != nil {
			return err
		}
		if m.audit == nil {
			return nil
		}
		reason := "rotate"
		if revokeExisting {
			reason = "revoke_existing"
		}
		return m.audit.Record(ctx, audit.Event{Type: audit.TypeKeyRotated, Actor: actor, Outcome: audit.OutcomeSuccess,
			Reason: reason, Details: map[string]any{"kid": k.ID, "algorithm": m.alg, "tokens_revoked": revoked}})
	})
	if err != nil {
		return "", 0, fmt.Errorf("rotate signing key: %w", err)
	}
	return jwk.KeyID, revoked, m.Reload(ctx)
}

// Reload rebuilds the key set when the database holds a different one.
func (m *KeyManager) Reload(ctx context.Context) error {
	version, err := m.store.SigningKeysVersion(ctx)
	if err != nil {
		return err
	}
	now := m.now()
	if cur := m.set.Load(); cur != nil && cur.version == version && (cur.expires.IsZero() || now.Before(cur.expires)) {
		return nil
	}
	rows, err := m.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	set := &keySet{version: version, public: map[string]jose.JSONWebKey{}}
	var doc jose.JSONWebKeySet
	for i := range rows {
		row := &rows[i]
		if row.RetiredAt != nil && row.PublishUntil != nil {
			until := *row.PublishUntil
			if !now.Before(until) {
				continue
			}
			if set.expires.IsZero() || until.Before(set.expires) {
				set.expires = until
			}
		}
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON([]byte(row.PublicJWK)); err != nil {
			return fmt.Errorf("signing key %s: public key: %w", row.ID, err)
		}
		set.public[row.ID] = pub
		doc.Keys = append(doc.Keys, pub)
		if set.signer == nil && row.RetiredAt == nil {
			raw, err := m.store.OpenSigningKey(row)
			if err != nil {
				return fmt.Errorf("signing key %s: %w", row.ID, err)
			}
			var priv jose.JSONWebKey
			if err := priv.UnmarshalJSON(raw); err != nil {
				return fmt.Errorf("signing key %s: private key: %w", row.ID, err)
			}
			// fosite speaks go-jose v3; the key material itself is plain
			// crypto types, so converting is a copy of four fields.
			set.signer = &josev3.JSONWebKey{Key: priv.Key, KeyID: row.ID, Algorithm: row.Algorithm, Use: "sig"}
		}
	}
	if doc.Keys == nil {
		doc.Keys = []jose.JSONWebKey{}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("render jwks: %w", err)
	}
	set.jwks = newCachedDoc(body)
	m.set.Store(set)
	return nil
}

// publishUntil is how long keys retired now stay published: until the last
// token they can have signed expires, under the longest lifetime of any
// policy in force. It is fixed at retirement and stored, so every instance
// publishes the same set and a later policy change does not shorten it.
func (m *KeyManager) publishUntil(retired time.Time) *time.Time {
	if m.signedLifetime == nil {
		return nil
	}
	t := retired.Add(m.signedLifetime())
	return &t
}

// SigningKey is fosite's jwt.GetPrivateKey.
func (m *KeyManager) SigningKey(context.Context) (interface{}, error) {
	if s := m.set.Load(); s != nil && s.signer != nil {
		return s.signer, nil
	}
	return nil, errors.New("no signing key")
}

// JWKS returns the pre-rendered public key set.
func (m *KeyManager) JWKS() []byte { return m.set.Load().jwks.body }

func (m *KeyManager) jwks() cachedDoc { return m.set.Load().jwks }

// PublicKey returns the published key with this kid.
func (m *KeyManager) PublicKey(kid string) (jose.JSONWebKey, bool) {
	k, ok := m.set.Load().public[kid]
	return k, ok
}

// Algorithm is the algorithm new keys use.
func (m *KeyManager) Algorithm() string { return m.alg }

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	case AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}
