package oauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/hashing"
)

// secretHasher is fosite's client secret hasher. Generated secrets are
// SHA-256 hashed and cost nothing to check. Secrets an administrator chose
// are argon2id hashed; so that a busy client does not pay argon2 on every
// token request, a bounded set of recently verified (hash, secret) pairs is
// remembered — only successes, keyed by a digest, so wrong guesses always
// pay full price and no secret is held in memory.
type secretHasher struct {
	hasher   *hashing.Hasher
	mu       sync.Mutex
	verified map[[32]byte]struct{}
}

const maxVerifiedSecrets = 4096

// newSecretHasher checks chosen secrets under the server's hashing memory
// bound: a flood of token requests with wrong secrets queues with the
// sign-ins instead of allocating without limit.
func newSecretHasher(limiter *hashing.Limiter) *secretHasher {
	return &secretHasher{hasher: hashing.NewHasher(hashing.DefaultArgon2, limiter), verified: make(map[[32]byte]struct{})}
}

var errSecretMismatch = errors.New("client secret mismatch")

// Compare implements fosite.Hasher.
func (h *secretHasher) Compare(ctx context.Context, hash, secret []byte) error {
	slow := !strings.HasPrefix(string(hash), "$sha256$")
	var key [32]byte
	if slow {
		d := sha256.New()
		d.Write(hash)
		d.Write([]byte{0})
		d.Write(secret)
		copy(key[:], d.Sum(nil))
		h.mu.Lock()
		_, ok := h.verified[key]
		h.mu.Unlock()
		if ok {
			return nil
		}
	}
	ok, err := h.hasher.Verify(ctx, string(hash), string(secret))
	if err != nil {
		return err
	}
	if !ok {
		return errSecretMismatch
	}
	if slow {
		h.mu.Lock()
		if len(h.verified) >= maxVerifiedSecrets {
			clear(h.verified)
		}
		h.verified[key] = struct{}{}
		h.mu.Unlock()
	}
	return nil
}

// Hash implements fosite.Hasher. Portcullis hashes secrets when clients are
// created (NewClient) and fosite's flows never call this; should anything
// do so, it gets the key-stretched hash, safe for any secret.
func (h *secretHasher) Hash(ctx context.Context, data []byte) ([]byte, error) {
	s, err := h.hasher.Hash(ctx, string(data))
	return []byte(s), err
}

var _ fosite.Hasher = (*secretHasher)(nil)
