package hashing

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

var cheap = Argon2{Memory: 64, Iterations: 1, Parallelism: 1}

func TestVerify(t *testing.T) {
	argon, err := cheap.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		encoded string
		secret  string
		want    bool
		wantErr bool
	}{
		{"argon2id match", argon, "correct horse", true, false},
		{"argon2id mismatch", argon, "correct horsE", false, false},
		{"sha256 match", HighEntropy("s3cret-s3cret"), "s3cret-s3cret", true, false},
		{"sha256 mismatch", HighEntropy("s3cret-s3cret"), "s3cret-s3creT", false, false},
		{"bcrypt match", string(bc), "correct horse", true, false},
		{"bcrypt mismatch", string(bc), "wrong", false, false},
		{"unknown format", "plaintext", "plaintext", false, true},
		{"truncated argon2", "$argon2id$v=19$m=64,t=1,p=1$abc", "x", false, true},
		{"zero parameters", "$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5", "x", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Verify(tt.encoded, tt.secret)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHashCarriesParametersAndSalt(t *testing.T) {
	a, _ := cheap.Hash("pw")
	b, _ := cheap.Hash("pw")
	if a == b {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	if !strings.HasPrefix(a, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", a)
	}
	if cheap.NeedsRehash(a) {
		t.Fatal("hash made with the current parameters needs rehash")
	}
	stronger := Argon2{Memory: 128, Iterations: 1, Parallelism: 1}
	if !stronger.NeedsRehash(a) {
		t.Fatal("hash made with weaker parameters does not need rehash")
	}
	if !cheap.NeedsRehash(HighEntropy("x")) {
		t.Fatal("non-argon2 hash does not need rehash")
	}
	if ok, _ := Verify(a, "pw"); !ok {
		t.Fatal("hash made under old parameters no longer verifies")
	}
}

func TestGenerateSecret(t *testing.T) {
	s, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 43 {
		t.Fatalf("secret has %d characters, want 43 (256 bits)", len(s))
	}
	s2, _ := GenerateSecret()
	if s == s2 {
		t.Fatal("two generated secrets are equal")
	}
}
