package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

var allAlgs = []string{AlgES256, AlgRS256, AlgEdDSA}

// keyEpoch is a fixed instant far from the wall clock.
var keyEpoch = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newKeyStore opens a fresh SQLite store on a manual clock.
func newKeyStore(t *testing.T) (*storage.Store, *storagetest.Clock, string) {
	t.Helper()
	clock := storagetest.NewClock(keyEpoch)
	url := storagetest.SQLiteURL(t)
	return storagetest.OpenWithClock(t, url, clock.Now), clock, url
}

func newKeyManager(t *testing.T, s keyStore, alg string, clock *storagetest.Clock) *KeyManager {
	t.Helper()
	km, err := NewKeyManager(t.Context(), s, alg, discardLogger(), clock.Now)
	if err != nil {
		t.Fatalf("NewKeyManager(%s): %v", alg, err)
	}
	return km
}

func parseJWKS(t *testing.T, km *KeyManager) jose.JSONWebKeySet {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(km.JWKS(), &set); err != nil {
		t.Fatalf("JWKS %s: %v", km.JWKS(), err)
	}
	return set
}

func jwksKids(t *testing.T, km *KeyManager) []string {
	t.Helper()
	var kids []string
	for _, k := range parseJWKS(t, km).Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

func signer(t *testing.T, km *KeyManager) *josev3.JSONWebKey {
	t.Helper()
	k, err := km.SigningKey(t.Context())
	if err != nil {
		t.Fatalf("SigningKey: %v", err)
	}
	jwk, ok := k.(*josev3.JSONWebKey)
	if !ok {
		t.Fatalf("SigningKey returned %T, want *josev3.JSONWebKey (fosite speaks go-jose v3)", k)
	}
	return jwk
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestNewKeyManagerGeneratesKey(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			s, clock, _ := newKeyStore(t)
			km := newKeyManager(t, s, alg, clock)
			if km.Algorithm() != alg {
				t.Fatalf("Algorithm() = %q, want %q", km.Algorithm(), alg)
			}

			set := parseJWKS(t, km)
			if len(set.Keys) != 1 {
				t.Fatalf("JWKS has %d keys, want 1: %s", len(set.Keys), km.JWKS())
			}
			pub := set.Keys[0]
			if pub.Algorithm != alg || pub.Use != "sig" {
				t.Fatalf("JWKS key alg=%q use=%q, want %q sig", pub.Algorithm, pub.Use, alg)
			}
			if !pub.IsPublic() {
				t.Fatal("JWKS publishes a private key")
			}
			if strings.Contains(string(km.JWKS()), `"d":`) {
				t.Fatalf("JWKS contains private key material: %s", km.JWKS())
			}
			thumb, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(thumb); pub.KeyID != want {
				t.Fatalf("kid = %q, want the RFC 7638 thumbprint %q", pub.KeyID, want)
			}
			if got, ok := km.PublicKey(pub.KeyID); !ok || got.KeyID != pub.KeyID {
				t.Fatalf("PublicKey(%q) = %v, %v", pub.KeyID, got.KeyID, ok)
			}
			if _, ok := km.PublicKey("unknown"); ok {
				t.Fatal("PublicKey finds an unknown kid")
			}

			priv := signer(t, km)
			if priv.KeyID != pub.KeyID || priv.Algorithm != alg {
				t.Fatalf("signing key kid=%q alg=%q, want kid=%q alg=%q", priv.KeyID, priv.Algorithm, pub.KeyID, alg)
			}
			var matches bool
			switch k := priv.Key.(type) {
			case *ecdsa.PrivateKey:
				matches = alg == AlgES256 && k.Curve == elliptic.P256() && k.PublicKey.Equal(pub.Key)
			case *rsa.PrivateKey:
				matches = alg == AlgRS256 && k.N.BitLen() >= 2048 && k.PublicKey.Equal(pub.Key)
			case ed25519.PrivateKey:
				matches = alg == AlgEdDSA && k.Public().(ed25519.PublicKey).Equal(pub.Key)
			}
			if !matches {
				t.Fatalf("signing key %T does not match alg %s or the published key %T", priv.Key, alg, pub.Key)
			}
		})
	}
}

func TestNewKeyManagerRejectsUnknownAlgorithm(t *testing.T) {
	s, clock, _ := newKeyStore(t)
	for _, alg := range []string{"", "HS256", "es256", "PS256", "none"} {
		if _, err := NewKeyManager(t.Context(), s, alg, discardLogger(), clock.Now); err == nil {
			t.Errorf("NewKeyManager(%q) succeeded", alg)
		}
	}
	if keys, err := s.SigningKeys(t.Context()); err != nil || len(keys) != 0 {
		t.Fatalf("refused algorithms left %d keys (err %v)", len(keys), err)
	}
}

func TestNewKeyManagerReusesKeyOnRestart(t *testing.T) {
	s, clock, _ := newKeyStore(t)
	first := signer(t, newKeyManager(t, s, AlgES256, clock)).KeyID
	clock.Advance(time.Hour)
	km := newKeyManager(t, s, AlgES256, clock)
	if got := signer(t, km).KeyID; got != first {
		t.Fatalf("restart signs with %q, want the existing key %q", got, first)
	}
	if kids := jwksKids(t, km); !slices.Equal(kids, []string{first}) {
		t.Fatalf("JWKS kids after restart = %q, want only %q", kids, first)
	}
}

func TestRotate(t *testing.T) {
	tests := []struct {
		name      string
		revoke    bool
		advance   time.Duration // clock movement before the rotation
		keepsOld  bool
		wantCount int
	}{
		{name: "retire", revoke: false, advance: time.Minute, keepsOld: true, wantCount: 2},
		{name: "retire same instant", revoke: false, keepsOld: true, wantCount: 2},
		{name: "revoke", revoke: true, advance: time.Minute, keepsOld: false, wantCount: 1},
		{name: "revoke same instant", revoke: true, keepsOld: false, wantCount: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock, _ := newKeyStore(t)
			km := newKeyManager(t, s, AlgES256, clock)
			old := signer(t, km).KeyID
			clock.Advance(tt.advance)

			kid, err := km.Rotate(t.Context(), tt.revoke)
			if err != nil {
				t.Fatal(err)
			}
			if kid == old {
				t.Fatal("Rotate returned the old kid")
			}
			if got := signer(t, km).KeyID; got != kid {
				t.Fatalf("signing key after rotation = %q, want the new key %q", got, kid)
			}
			want := []string{kid}
			if tt.keepsOld {
				want = sorted(kid, old)
			}
			if kids := jwksKids(t, km); !slices.Equal(kids, want) {
				t.Fatalf("JWKS kids = %q, want %q", kids, want)
			}
			if _, ok := km.PublicKey(old); ok != tt.keepsOld {
				t.Fatalf("PublicKey(old) found = %v, want %v", ok, tt.keepsOld)
			}
			if _, ok := km.PublicKey(kid); !ok {
				t.Fatal("PublicKey(new) not found")
			}
			rows, err := s.SigningKeys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tt.wantCount {
				t.Fatalf("store lists %d published keys, want %d", len(rows), tt.wantCount)
			}
		})
	}
}

func TestRotateTwiceKeepsEveryRetiredKey(t *testing.T) {
	s, clock, _ := newKeyStore(t)
	km := newKeyManager(t, s, AlgEdDSA, clock)
	k0 := signer(t, km).KeyID
	k1, err := km.Rotate(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := km.Rotate(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := signer(t, km).KeyID; got != k2 {
		t.Fatalf("signing key = %q, want the newest %q", got, k2)
	}
	if kids := jwksKids(t, km); !slices.Equal(kids, sorted(k0, k1, k2)) {
		t.Fatalf("JWKS kids = %q, want %q", kids, sorted(k0, k1, k2))
	}
	k3, err := km.Rotate(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if kids := jwksKids(t, km); !slices.Equal(kids, []string{k3}) {
		t.Fatalf("after revoking rotation JWKS kids = %q, want only %q", kids, k3)
	}
}

func TestKeyManagersShareRotationsAfterReload(t *testing.T) {
	tests := []struct {
		name   string
		revoke bool
	}{
		{name: "retire", revoke: false},
		{name: "revoke", revoke: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two instances: two connection pools on one database. The clock
			// stands still, so only the rotation itself changes the key set.
			s1, clock, url := newKeyStore(t)
			s2 := storagetest.OpenWithClock(t, url, clock.Now)
			a := newKeyManager(t, s1, AlgES256, clock)
			b := newKeyManager(t, s2, AlgES256, clock)
			old := signer(t, a).KeyID
			if got := signer(t, b).KeyID; got != old {
				t.Fatalf("second instance generated its own key %q instead of using %q", got, old)
			}

			kid, err := a.Rotate(t.Context(), tt.revoke)
			if err != nil {
				t.Fatal(err)
			}
			if got := signer(t, b).KeyID; got != old {
				t.Fatalf("before Reload the other instance signs with %q, want still %q", got, old)
			}
			if kids := jwksKids(t, b); !slices.Equal(kids, []string{old}) {
				t.Fatalf("before Reload the other instance publishes %q, want %q", kids, []string{old})
			}

			if err := b.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := signer(t, b).KeyID; got != kid {
				t.Fatalf("after Reload the other instance signs with %q, want %q", got, kid)
			}
			want := []string{kid}
			if !tt.revoke {
				want = sorted(kid, old)
			}
			if kids := jwksKids(t, b); !slices.Equal(kids, want) {
				t.Fatalf("after Reload the other instance publishes %q, want %q", kids, want)
			}
			if !slices.Equal(a.JWKS(), b.JWKS()) {
				t.Fatalf("instances publish different JWKS:\n%s\n%s", a.JWKS(), b.JWKS())
			}
		})
	}
}

func TestReloadWithoutChangeKeepsKeySet(t *testing.T) {
	s, clock, _ := newKeyStore(t)
	km := newKeyManager(t, s, AlgES256, clock)
	before := km.set.Load()
	if err := km.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if km.set.Load() != before {
		t.Fatal("Reload rebuilt an unchanged key set")
	}
}

func TestNewKeyManagerAlgorithmChange(t *testing.T) {
	tests := []struct{ from, to string }{
		{AlgES256, AlgRS256},
		{AlgRS256, AlgEdDSA},
		{AlgEdDSA, AlgES256},
	}
	for _, tt := range tests {
		t.Run(tt.from+" to "+tt.to, func(t *testing.T) {
			s, clock, _ := newKeyStore(t)
			old := signer(t, newKeyManager(t, s, tt.from, clock)).KeyID
			clock.Advance(time.Hour)

			km := newKeyManager(t, s, tt.to, clock)
			sk := signer(t, km)
			if sk.KeyID == old || sk.Algorithm != tt.to {
				t.Fatalf("after switching to %s the signing key is %q (%s), want a new %s key", tt.to, sk.KeyID, sk.Algorithm, tt.to)
			}
			// The old key stays published: tokens it signed still verify.
			if kids := jwksKids(t, km); !slices.Equal(kids, sorted(old, sk.KeyID)) {
				t.Fatalf("JWKS kids = %q, want %q", kids, sorted(old, sk.KeyID))
			}
			if pub, ok := km.PublicKey(old); !ok || pub.Algorithm != tt.from {
				t.Fatalf("old key published = %v with alg %q, want %q", ok, pub.Algorithm, tt.from)
			}
			// A further restart with the new algorithm keeps the new key.
			if got := signer(t, newKeyManager(t, s, tt.to, clock)).KeyID; got != sk.KeyID {
				t.Fatalf("second restart signs with %q, want %q", got, sk.KeyID)
			}
		})
	}
}

func TestSigningKeysEncryptedAtRest(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			s, clock, _ := newKeyStore(t)
			km := newKeyManager(t, s, alg, clock)
			if _, err := km.Rotate(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			rows, err := s.SigningKeys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 {
				t.Fatalf("store lists %d keys, want 2", len(rows))
			}
			for _, row := range rows {
				if row.PrivateKey == "" {
					t.Fatalf("key %s has no private key stored", row.ID)
				}
				if strings.Contains(row.PrivateKey, `"d":`) || json.Valid([]byte(row.PrivateKey)) {
					t.Fatalf("key %s: private_key column holds the plaintext JWK: %s", row.ID, row.PrivateKey)
				}
				if strings.Contains(row.PublicJWK, `"d":`) {
					t.Fatalf("key %s: public_jwk holds private material: %s", row.ID, row.PublicJWK)
				}
				if row.Algorithm != alg {
					t.Fatalf("key %s: algorithm %q, want %q", row.ID, row.Algorithm, alg)
				}
				plain, err := s.OpenSigningKey(&row)
				if err != nil {
					t.Fatalf("key %s: open: %v", row.ID, err)
				}
				if !strings.Contains(string(plain), `"d":`) {
					t.Fatalf("key %s: decrypted private key has no \"d\": %s", row.ID, plain)
				}
			}
		})
	}
}

// TestSignedTokensVerifyWithJWKS signs through fosite, as ID tokens and JWT
// access tokens are signed, and verifies with go-jose v4 and the published
// key, as a relying party would.
func TestSignedTokensVerifyWithJWKS(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			s, clock, _ := newKeyStore(t)
			km := newKeyManager(t, s, alg, clock)
			old := signer(t, km).KeyID
			oldTok := signWithFosite(t, km)
			kid, err := km.Rotate(t.Context(), false)
			if err != nil {
				t.Fatal(err)
			}
			newTok := signWithFosite(t, km)

			for _, tc := range []struct {
				name, token, kid string
			}{
				{"before rotation", oldTok, old},
				{"after rotation", newTok, kid},
			} {
				parsed, err := josejwt.ParseSigned(tc.token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					t.Fatalf("%s: parse: %v", tc.name, err)
				}
				h := parsed.Headers[0]
				if h.Algorithm != alg || h.KeyID != tc.kid {
					t.Fatalf("%s: header alg=%q kid=%q, want %q %q", tc.name, h.Algorithm, h.KeyID, alg, tc.kid)
				}
				var pub *jose.JSONWebKey
				set := parseJWKS(t, km)
				if keys := set.Key(h.KeyID); len(keys) == 1 {
					pub = &keys[0]
				}
				if pub == nil {
					t.Fatalf("%s: kid %q is not in the JWKS", tc.name, h.KeyID)
				}
				var claims josejwt.Claims
				if err := parsed.Claims(pub.Key, &claims); err != nil {
					t.Fatalf("%s: verify with JWKS key: %v", tc.name, err)
				}
				if claims.Subject != "alice" {
					t.Fatalf("%s: sub = %q", tc.name, claims.Subject)
				}
				// And the other published key must not verify it.
				for _, other := range set.Keys {
					if other.KeyID != h.KeyID {
						if err := parsed.Claims(other.Key, &claims); err == nil {
							t.Fatalf("%s: verified with the wrong key %q", tc.name, other.KeyID)
						}
					}
				}
			}
		})
	}
}

func signWithFosite(t *testing.T, km *KeyManager) string {
	t.Helper()
	s := &jwt.DefaultSigner{GetPrivateKey: km.SigningKey}
	tok, sig, err := s.Generate(t.Context(), jwt.MapClaims{"sub": "alice", "iss": "https://issuer.example"}, &jwt.Headers{})
	if err != nil {
		t.Fatalf("fosite sign: %v", err)
	}
	if parts := strings.Split(tok, "."); len(parts) != 3 || parts[2] != sig {
		t.Fatalf("fosite returned signature %q for token %q", sig, tok)
	}
	return tok
}
