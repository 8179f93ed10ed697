package oauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"
)

// keySigner is the jwt.Signer fosite signs and verifies with. Signing is
// fosite's DefaultSigner with the current key. Verification is by the
// token's kid against every published key — fosite's DefaultSigner verifies
// only with the current key's public half, so after a rotation it would
// refuse JWT access tokens the previous key signed, and it cannot verify
// EdDSA at all.
type keySigner struct {
	jwt.DefaultSigner
	keys *KeyManager
}

var _ jwt.Signer = (*keySigner)(nil)

func newKeySigner(keys *KeyManager) *keySigner {
	return &keySigner{DefaultSigner: jwt.DefaultSigner{GetPrivateKey: keys.SigningKey}, keys: keys}
}

// Decode verifies token against the published key its header names.
func (s *keySigner) Decode(_ context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, s.publicKey)
}

// Validate verifies token and returns its signature.
func (s *keySigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

func (s *keySigner) publicKey(t *jwt.Token) (interface{}, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	k, ok := s.keys.PublicKey(kid)
	if !ok {
		return nil, fmt.Errorf("no published key %q", kid)
	}
	if alg, _ := t.Header["alg"].(string); !strings.EqualFold(alg, k.Algorithm) {
		return nil, fmt.Errorf("token alg %q does not match key %q (%s)", alg, kid, k.Algorithm)
	}
	// A *JSONWebKey passes fosite's pointer conversion untouched and go-jose
	// unwraps it for every key type, Ed25519 included.
	return &josev3.JSONWebKey{Key: k.Key, KeyID: kid, Algorithm: k.Algorithm}, nil
}
