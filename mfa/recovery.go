package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"unicode"
)

// RecoveryCodeCount is how many recovery codes a set holds.
const RecoveryCodeCount = 10

const (
	// recoveryCodeBytes is 80 random bits, which base32 spells in exactly
	// 16 characters with no padding.
	recoveryCodeBytes = 10
	recoveryCodeLen   = 16
	recoveryGroupLen  = 4
)

// NewRecoveryCodes returns a fresh set of RecoveryCodeCount recovery codes
// as they are shown to a person: 16 lower-case base32 characters in groups
// of four, "abcd-efgh-ijkl-mnop". Each is 80 bits from crypto/rand. Store
// only their HashRecoveryCode of NormalizeRecoveryCode.
func NewRecoveryCodes() ([]string, error) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	out := make([]string, 0, RecoveryCodeCount)
	for range RecoveryCodeCount {
		b := make([]byte, recoveryCodeBytes)
		// crypto/rand.Read never fails (it crashes the program instead).
		_, _ = rand.Read(b)
		s := strings.ToLower(enc.EncodeToString(b))
		var shown strings.Builder
		for i := 0; i < len(s); i += recoveryGroupLen {
			if i > 0 {
				shown.WriteByte('-')
			}
			shown.WriteString(s[i : i+recoveryGroupLen])
		}
		out = append(out, shown.String())
	}
	return out, nil
}

// NormalizeRecoveryCode returns the one spelling of a recovery code that is
// hashed: case, spaces and dashes do not matter, so "ABCD EFGH-ijkl mnop"
// and "abcd-efgh-ijkl-mnop" are one code. It reports false for anything
// that cannot be a recovery code (wrong length, a character outside the
// base32 alphabet), which the caller can refuse without a lookup.
func NormalizeRecoveryCode(s string) (string, bool) {
	if len(s) > 4*recoveryCodeLen {
		// Far more separators than any typing of a code has: not one.
		return "", false
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case r >= 'a' && r <= 'z', r >= '2' && r <= '7':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(unicode.ToLower(r))
		default:
			return "", false
		}
	}
	if b.Len() != recoveryCodeLen {
		return "", false
	}
	return b.String(), true
}

// HashRecoveryCode is the lower-case hex SHA-256 of a normalized recovery
// code, what storage keeps and looks codes up by. A fast, unsalted hash is
// enough here, unlike for passwords: a code is 80 random bits, so finding
// one from a stolen hash takes about 2^79 guesses whatever the hash costs,
// and an unsalted hash lets the store find and consume a code in one
// indexed, conditional UPDATE.
func HashRecoveryCode(normalized string) string {
	sum := sha256.Sum256([]byte(normalized))
	return hex.EncodeToString(sum[:])
}
