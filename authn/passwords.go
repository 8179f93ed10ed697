package authn

import (
	"golang.org/x/text/secure/precis"
)

// normalizePassword applies the PRECIS OpaqueString profile (RFC 8265
// §4.2): every non-ASCII space becomes U+0020 and the result is NFC, so a
// password typed as "é" on one keyboard and as "e" + U+0301 on another is
// the same password. It refuses control characters and other code points
// the profile disallows, which no one can type reliably.
func normalizePassword(password string) (string, error) {
	return precis.OpaqueString.String(password)
}

// typedPassword is one form of a typed password to check a hash against.
type typedPassword struct {
	text string
	// legacy marks the form as typed, before normalization: a match means
	// the hash predates normalization and is to be upgraded.
	legacy bool
}

// typedPasswords are the forms of a typed password to check a stored hash
// against: the normalized form, which every hash made since normalization
// holds, and, when it differs, the password exactly as typed, which older
// hashes hold. A password the profile refuses can only match an older
// hash.
//
// Their number depends only on what was typed, never on the account, and
// an unknown account pays one dummy check per form, so trying two costs
// the same whether or not the account exists.
func typedPasswords(password string) []typedPassword {
	n, err := normalizePassword(password)
	switch {
	case err != nil:
		return []typedPassword{{password, true}}
	case n == password:
		return []typedPassword{{n, false}}
	}
	return []typedPassword{{n, false}, {password, true}}
}
