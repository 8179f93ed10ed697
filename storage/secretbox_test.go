package storage_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/storage"
)

func newBox(t *testing.T, secrets ...string) *storage.SecretBox {
	t.Helper()
	b, err := storage.NewSecretBox(secrets)
	if err != nil {
		t.Fatalf("NewSecretBox: %v", err)
	}
	return b
}

func TestSecretBoxRoundTrip(t *testing.T) {
	b := newBox(t, "secret-one")
	for _, plaintext := range [][]byte{
		[]byte(`{"kty":"RSA","d":"private"}`),
		{},
		bytes.Repeat([]byte{0, 0xff}, 4096),
	} {
		sealed, err := b.Seal(plaintext, "signing_key:k1")
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(plaintext) > 0 && strings.Contains(sealed, string(plaintext)) {
			t.Errorf("sealed value contains the plaintext: %q", sealed)
		}
		got, err := b.Open(sealed, "signing_key:k1")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Errorf("Open = %q, want %q", got, plaintext)
		}
	}
}

func TestSecretBoxSealIsRandomized(t *testing.T) {
	b := newBox(t, "secret-one")
	a, err := b.Seal([]byte("same"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Seal([]byte("same"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	// A fresh nonce per seal: equal secrets must not be recognisable as
	// equal in the database.
	if a == c {
		t.Error("sealing the same plaintext twice gave the same ciphertext")
	}
}

func TestSecretBoxWrongContextFails(t *testing.T) {
	b := newBox(t, "secret-one")
	sealed, err := b.Seal([]byte("private"), "signing_key:k1")
	if err != nil {
		t.Fatal(err)
	}
	for _, ctx := range []string{"signing_key:k2", "", "signing_key:k1 ", "totp:k1"} {
		if _, err := b.Open(sealed, ctx); err == nil {
			t.Errorf("Open with context %q succeeded; want failure (sealed for signing_key:k1)", ctx)
		}
	}
}

func TestSecretBoxRotation(t *testing.T) {
	old := newBox(t, "old-secret")
	sealedOld, err := old.Seal([]byte("sealed before rotation"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	rotated := newBox(t, "new-secret", "old-secret")

	got, err := rotated.Open(sealedOld, "ctx")
	if err != nil || string(got) != "sealed before rotation" {
		t.Errorf("[new, old] opening what [old] sealed = %q, %v", got, err)
	}

	// New secrets are sealed with the first secret only, so dropping the
	// old one later keeps them readable.
	sealedNew, err := rotated.Seal([]byte("sealed after rotation"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := newBox(t, "new-secret").Open(sealedNew, "ctx"); err != nil || string(got) != "sealed after rotation" {
		t.Errorf("[new] opening what [new, old] sealed = %q, %v", got, err)
	}
	if _, err := old.Open(sealedNew, "ctx"); err == nil {
		t.Error("[old] opened what [new, old] sealed: the old secret is still encrypting")
	}

	if _, err := newBox(t, "other-secret").Open(sealedOld, "ctx"); err == nil {
		t.Error("[other] opened what [old] sealed")
	}
}

func TestSecretBoxRejectsTampering(t *testing.T) {
	b := newBox(t, "secret-one")
	sealed, err := b.Seal([]byte("private"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(sealed, ".", 3)
	if len(parts) != 3 {
		t.Fatalf("sealed value %q is not version.key.ciphertext", sealed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) string {
		c := bytes.Clone(raw)
		c[i] ^= 0x01
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(c)
	}
	for _, tc := range []struct{ name, sealed string }{
		{"nonce bit flipped", flip(0)},
		{"ciphertext bit flipped", flip(12)},
		{"tag bit flipped", flip(len(raw) - 1)},
		{"truncated", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1])},
		{"too short for a nonce", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(raw[:5])},
		{"unknown version", "v2." + parts[1] + "." + parts[2]},
		{"unknown key id", parts[0] + ".00000000." + parts[2]},
		{"not base64", parts[0] + "." + parts[1] + ".!!!"},
		{"no separators", "garbage"},
		{"empty", ""},
	} {
		if _, err := b.Open(tc.sealed, "ctx"); err == nil {
			t.Errorf("%s: Open(%q) succeeded", tc.name, tc.sealed)
		}
	}
}

func TestNewSecretBoxRejectsEmptySecrets(t *testing.T) {
	for _, secrets := range [][]string{nil, {}, {""}, {"ok", ""}} {
		if _, err := storage.NewSecretBox(secrets); err == nil {
			t.Errorf("NewSecretBox(%q) succeeded", secrets)
		}
	}
}
