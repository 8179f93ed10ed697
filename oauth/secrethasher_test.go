package oauth

import (
	"crypto/sha256"
	"errors"
	"strconv"
	"testing"

	"github.com/portcullis/portcullis/hashing"
)

func mustArgon2(t testing.TB, secret string) string {
	t.Helper()
	h, err := cheapArgon2.Hash(secret)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// verifiedKey is the cache key of a (hash, secret) pair, as secretHasher
// documents it: a digest of both, never the secret itself.
func verifiedKey(hash, secret string) [32]byte {
	d := sha256.New()
	d.Write([]byte(hash))
	d.Write([]byte{0})
	d.Write([]byte(secret))
	var k [32]byte
	copy(k[:], d.Sum(nil))
	return k
}

func TestSecretHasherCompare(t *testing.T) {
	const secret = "correct horse battery staple"
	argon := mustArgon2(t, secret)
	sha := hashing.HighEntropy(secret)
	tests := []struct {
		name     string
		hash     string
		secret   string
		wantErr  error // nil: success, unless anyError
		anyError bool
	}{
		{name: "sha256 right", hash: sha, secret: secret},
		{name: "sha256 wrong", hash: sha, secret: secret + "!", wantErr: errSecretMismatch},
		{name: "sha256 empty secret", hash: sha, secret: "", wantErr: errSecretMismatch},
		{name: "argon2id right", hash: argon, secret: secret},
		{name: "argon2id wrong", hash: argon, secret: "correct horse battery stapler", wantErr: errSecretMismatch},
		{name: "argon2id empty secret", hash: argon, secret: "", wantErr: errSecretMismatch},
		{name: "unknown hash format", hash: "plaintext", secret: "plaintext", wantErr: hashing.ErrUnknownFormat},
		{name: "malformed argon2id", hash: "$argon2id$v=19$m=64,t=1,p=1$abc", secret: "x", anyError: true},
		{name: "empty hash", hash: "", secret: "", wantErr: hashing.ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSecretHasher(nil)
			err := h.Compare(t.Context(), []byte(tt.hash), []byte(tt.secret))
			switch {
			case tt.anyError:
				if err == nil {
					t.Fatal("Compare succeeded, want an error")
				}
			case tt.wantErr == nil:
				if err != nil {
					t.Fatalf("Compare: %v", err)
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Compare = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

func TestSecretHasherCachesVerifiedPair(t *testing.T) {
	const secret = "correct horse battery staple"
	hash := mustArgon2(t, secret)
	h := newSecretHasher(nil)
	ctx := t.Context()

	if err := h.Compare(ctx, []byte(hash), []byte(secret)); err != nil {
		t.Fatal(err)
	}
	if len(h.verified) != 1 {
		t.Fatalf("cache holds %d entries after one success, want 1", len(h.verified))
	}
	if _, ok := h.verified[verifiedKey(hash, secret)]; !ok {
		t.Fatal("the verified pair is not cached under digest(hash, 0, secret)")
	}
	if err := h.Compare(ctx, []byte(hash), []byte(secret)); err != nil {
		t.Fatalf("cached pair: %v", err)
	}
	if err := h.Compare(ctx, []byte(hash), []byte("never seen")); !errors.Is(err, errSecretMismatch) {
		t.Fatalf("never-seen wrong secret: Compare = %v, want mismatch", err)
	}

	// A pair present in the cache succeeds without argon2 being consulted:
	// plant a pair argon2 would refuse and see it accepted.
	h.verified[verifiedKey(hash, "planted")] = struct{}{}
	if err := h.Compare(ctx, []byte(hash), []byte("planted")); err != nil {
		t.Fatalf("cached pair was recomputed: Compare = %v", err)
	}
	// Even a hash argon2 cannot parse: only the cache can say yes.
	const broken = "$argon2id$broken"
	h.verified[verifiedKey(broken, secret)] = struct{}{}
	if err := h.Compare(ctx, []byte(broken), []byte(secret)); err != nil {
		t.Fatalf("cached pair with unparsable hash was recomputed: Compare = %v", err)
	}
}

func TestSecretHasherNeverCachesFailures(t *testing.T) {
	const secret = "correct horse battery staple"
	hash := mustArgon2(t, secret)
	h := newSecretHasher(nil)
	for i := range 3 {
		if err := h.Compare(t.Context(), []byte(hash), []byte("wrong guess")); !errors.Is(err, errSecretMismatch) {
			t.Fatalf("attempt %d: Compare = %v, want mismatch", i, err)
		}
	}
	if err := h.Compare(t.Context(), []byte("$argon2id$broken"), []byte(secret)); err == nil {
		t.Fatal("malformed hash accepted")
	}
	if n := len(h.verified); n != 0 {
		t.Fatalf("cache holds %d entries after only failures, want 0", n)
	}
}

func TestSecretHasherDoesNotCacheSHA256(t *testing.T) {
	// Generated secrets cost one SHA-256 to check; caching them would only
	// evict argon2 pairs that are expensive to recompute.
	secret, err := hashing.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	h := newSecretHasher(nil)
	if err := h.Compare(t.Context(), []byte(hashing.HighEntropy(secret)), []byte(secret)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.verified); n != 0 {
		t.Fatalf("cache holds %d entries after a sha256 success, want 0", n)
	}
}

func TestSecretHasherCacheIsPerHash(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name            string
		cachedSecret    string // verified against hash A first
		otherHashSecret string // what hash B was made from
		present         string // then presented against hash B
		wantErr         bool
	}{
		// Keyed by secret alone, the cache would let A's secret open B.
		{name: "secret of A against B", cachedSecret: "secret-of-client-a", otherHashSecret: "secret-of-client-b", present: "secret-of-client-a", wantErr: true},
		{name: "B's own secret", cachedSecret: "secret-of-client-a", otherHashSecret: "secret-of-client-b", present: "secret-of-client-b"},
		// Same secret, different salt: a separate entry, still verified.
		{name: "same secret other salt", cachedSecret: "shared-secret-value", otherHashSecret: "shared-secret-value", present: "shared-secret-value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustArgon2(t, tt.cachedSecret)
			b := mustArgon2(t, tt.otherHashSecret)
			h := newSecretHasher(nil)
			if err := h.Compare(ctx, []byte(a), []byte(tt.cachedSecret)); err != nil {
				t.Fatal(err)
			}
			err := h.Compare(ctx, []byte(b), []byte(tt.present))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Compare(B, %q) = %v, wantErr %v", tt.present, err, tt.wantErr)
			}
			want := 1
			if !tt.wantErr {
				want = 2
			}
			if n := len(h.verified); n != want {
				t.Fatalf("cache holds %d entries, want %d", n, want)
			}
		})
	}
}

func TestSecretHasherCacheIsBounded(t *testing.T) {
	const secret = "correct horse battery staple"
	hash := mustArgon2(t, secret)
	tests := []struct {
		name    string
		prefill int
		want    int
	}{
		{name: "one below the bound grows to the bound", prefill: maxVerifiedSecrets - 1, want: maxVerifiedSecrets},
		{name: "at the bound resets", prefill: maxVerifiedSecrets, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSecretHasher(nil)
			for i := range tt.prefill {
				h.verified[verifiedKey("filler", strconv.Itoa(i))] = struct{}{}
			}
			if err := h.Compare(t.Context(), []byte(hash), []byte(secret)); err != nil {
				t.Fatal(err)
			}
			if n := len(h.verified); n != tt.want {
				t.Fatalf("cache holds %d entries, want %d", n, tt.want)
			}
			if _, ok := h.verified[verifiedKey(hash, secret)]; !ok {
				t.Fatal("the newest verified pair is not cached")
			}
		})
	}
}

// TestSecretHasherCacheBoundedByUse fills the cache through Compare alone.
func TestSecretHasherCacheBoundedByUse(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes maxVerifiedSecrets secrets")
	}
	ctx := t.Context()
	h := newSecretHasher(nil)
	const secret = "correct horse battery staple"
	var first string
	for i := range maxVerifiedSecrets + 1 {
		hash := mustArgon2(t, secret) // fresh salt: a new pair each time
		if i == 0 {
			first = hash
		}
		if err := h.Compare(ctx, []byte(hash), []byte(secret)); err != nil {
			t.Fatal(err)
		}
		if n := len(h.verified); n > maxVerifiedSecrets {
			t.Fatalf("after %d successes the cache holds %d entries, more than %d", i+1, n, maxVerifiedSecrets)
		}
	}
	if n := len(h.verified); n != 1 {
		t.Fatalf("cache holds %d entries after overflowing, want 1 (reset)", n)
	}
	if _, ok := h.verified[verifiedKey(first, secret)]; ok {
		t.Fatal("the oldest pair survived the reset")
	}
}

func TestSecretHasherHash(t *testing.T) {
	h := newSecretHasher(nil)
	got, err := h.Hash(t.Context(), []byte("a secret someone chose"))
	if err != nil {
		t.Fatal(err)
	}
	if hashing.DefaultArgon2.NeedsRehash(string(got)) {
		t.Fatalf("Hash = %q, want argon2id with the default parameters", got)
	}
	if err := h.Compare(t.Context(), got, []byte("a secret someone chose")); err != nil {
		t.Fatalf("Compare(Hash(s), s) = %v", err)
	}
}
