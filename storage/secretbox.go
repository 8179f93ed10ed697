package storage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SecretBox encrypts secrets at rest (signing keys, later TOTP secrets) with
// keys derived from the system secrets. The first secret encrypts; every
// secret decrypts, so an operator can rotate by prepending a new one.
type SecretBox struct {
	keys []boxKey
}

type boxKey struct {
	id   string // short fingerprint stored with each ciphertext
	aead cipher.AEAD
}

// NewSecretBox derives one AES-256-GCM key per system secret (newest first).
func NewSecretBox(systemSecrets []string) (*SecretBox, error) {
	if len(systemSecrets) == 0 {
		return nil, errors.New("secret box: no system secret")
	}
	b := &SecretBox{}
	for i, s := range systemSecrets {
		key, err := DeriveKey(s, "portcullis/secretbox/v1", 32)
		if err != nil {
			return nil, fmt.Errorf("secret box: secret %d: %w", i, err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secret box: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secret box: %w", err)
		}
		sum := sha256.Sum256(key)
		b.keys = append(b.keys, boxKey{id: hex.EncodeToString(sum[:4]), aead: aead})
	}
	return b, nil
}

// DeriveKey derives a purpose-bound key from a system secret with HKDF-SHA256,
// so one configured secret can key several independent uses.
func DeriveKey(secret, purpose string, n int) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("empty secret")
	}
	k, err := hkdf.Key(sha256.New, []byte(secret), nil, purpose, n)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return k, nil
}

// Seal encrypts plaintext, binding it to context (e.g. the row id) so a
// ciphertext copied to another row does not decrypt.
func (b *SecretBox) Seal(plaintext []byte, context string) (string, error) {
	k := b.keys[0]
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	ct := k.aead.Seal(nonce, nonce, plaintext, []byte(context))
	return "v1." + k.id + "." + base64.RawURLEncoding.EncodeToString(ct), nil
}

// Open decrypts what Seal produced with any configured secret.
func (b *SecretBox) Open(sealed, context string) ([]byte, error) {
	parts := strings.SplitN(sealed, ".", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return nil, errors.New("open sealed secret: unknown format")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("open sealed secret: %w", err)
	}
	for _, k := range b.keys {
		if k.id != parts[1] {
			continue
		}
		ns := k.aead.NonceSize()
		if len(raw) < ns {
			return nil, errors.New("open sealed secret: too short")
		}
		pt, err := k.aead.Open(nil, raw[:ns], raw[ns:], []byte(context))
		if err != nil {
			return nil, fmt.Errorf("open sealed secret: %w", err)
		}
		return pt, nil
	}
	return nil, fmt.Errorf("open sealed secret: encrypted with key %s, which is not among the configured system secrets", parts[1])
}
