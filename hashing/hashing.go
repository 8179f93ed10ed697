// Package hashing turns secrets into what is stored at rest and checks
// presented secrets against it, in constant time:
//
//   - argon2id in PHC string form for user passwords and for client secrets a
//     person chose (the parameters travel with the hash, so they can be raised
//     later and old hashes still verify, then get rehashed);
//   - bcrypt, verify-only, for hashes imported from other systems;
//   - SHA-256 for secrets Portcullis generated itself: 256 random bits need no
//     key stretching, so a token request costs a hash, not 100 ms of argon2.
//
// A server checks and makes hashes through a Hasher, which bounds the
// memory of argon2 hashes running at once (Limiter: a weighted semaphore,
// a brief queue, then ErrBusy) and pads every failed check to the time of
// the slowest kind of check, so a wrong password takes as long for an
// unknown account as for one whose hash predates today's parameters.
//
// It imports nothing from the project.
package hashing

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2 holds argon2id parameters. Memory is in KiB.
type Argon2 struct {
	Memory      uint32
	Iterations  uint32
	Parallelism uint8
}

const (
	saltLen = 16
	keyLen  = 32
)

// DefaultArgon2 is OWASP's first recommended argon2id configuration.
var DefaultArgon2 = Argon2{Memory: 19456, Iterations: 2, Parallelism: 1}

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of password under p, with a fresh salt.
func (p Argon2) Hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Dummy spends the same work as verifying a password under p, for unknown
// accounts, so response time does not tell whether an account exists.
func (p Argon2) Dummy(password string) {
	salt := make([]byte, saltLen)
	_ = argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, keyLen)
}

// NeedsRehash reports whether encoded was made with other parameters than p
// (or another algorithm) and should be replaced after a successful check.
func (p Argon2) NeedsRehash(encoded string) bool {
	got, _, _, err := parseArgon2(encoded)
	return err != nil || got != p
}

// ErrUnknownFormat means the stored hash is in no format this package reads.
var ErrUnknownFormat = errors.New("hashing: unknown hash format")

// Verify reports whether secret matches encoded, whatever format encoded is
// in. A mismatch is (false, nil); err is for malformed hashes.
func Verify(encoded, secret string) (bool, error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		p, salt, want, err := parseArgon2(encoded)
		if err != nil {
			return false, err
		}
		got := argon2.IDKey([]byte(secret), salt, p.Iterations, p.Memory, p.Parallelism, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1, nil
	case strings.HasPrefix(encoded, "$sha256$"):
		want, err := b64.DecodeString(strings.TrimPrefix(encoded, "$sha256$"))
		if err != nil {
			return false, fmt.Errorf("hashing: malformed sha256 hash: %w", err)
		}
		got := sha256.Sum256([]byte(secret))
		return subtle.ConstantTimeCompare(got[:], want) == 1, nil
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(secret))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("hashing: bcrypt: %w", err)
		}
		return true, nil
	}
	return false, ErrUnknownFormat
}

// HighEntropy hashes a secret that Portcullis generated with at least 256
// bits of entropy. Never use it for a secret a person chose.
func HighEntropy(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "$sha256$" + b64.EncodeToString(sum[:])
}

// GenerateSecret returns 32 random bytes, base64url encoded (43 characters).
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func parseArgon2(encoded string) (Argon2, []byte, []byte, error) {
	var p Argon2
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, ErrUnknownFormat
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("hashing: unsupported argon2 version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Iterations, &p.Parallelism); err != nil {
		return p, nil, nil, fmt.Errorf("hashing: malformed argon2 parameters %q: %w", parts[3], err)
	}
	if p.Memory == 0 || p.Iterations == 0 || p.Parallelism == 0 {
		return p, nil, nil, fmt.Errorf("hashing: argon2 parameters out of range %q", parts[3])
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("hashing: malformed argon2 salt: %w", err)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return p, nil, nil, errors.New("hashing: malformed argon2 key")
	}
	return p, salt, key, nil
}
