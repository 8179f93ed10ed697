package mfa_test

import (
	"regexp"
	"testing"

	"github.com/portcullis/portcullis/mfa"
)

var shownRecoveryCode = regexp.MustCompile(`^[a-z2-7]{4}(-[a-z2-7]{4}){3}$`)

func TestNewRecoveryCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		codes, err := mfa.NewRecoveryCodes()
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != mfa.RecoveryCodeCount {
			t.Fatalf("NewRecoveryCodes gave %d codes, want %d", len(codes), mfa.RecoveryCodeCount)
		}
		for _, c := range codes {
			if !shownRecoveryCode.MatchString(c) {
				t.Errorf("code %q is not shaped xxxx-xxxx-xxxx-xxxx in lower-case base32", c)
			}
			n, ok := mfa.NormalizeRecoveryCode(c)
			if !ok || len(n) != 16 {
				t.Errorf("NormalizeRecoveryCode(%q) = %q, %v; want its 16 characters", c, n, ok)
			}
			if mfa.IsTOTPShaped(c) {
				t.Errorf("code %q passes for a TOTP code", c)
			}
			// 80 random bits: 200 codes repeating one is a broken source.
			if seen[n] {
				t.Errorf("code %q drawn twice", c)
			}
			seen[n] = true
		}
	}
}

func TestNormalizeRecoveryCode(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"abcd-efgh-ijkl-mnop", "abcdefghijklmnop", true},
		{"ABCD-EFGH-IJKL-MNOP", "abcdefghijklmnop", true},
		{"abcdefghijklmnop", "abcdefghijklmnop", true},
		{" abcd efgh ijkl mnop ", "abcdefghijklmnop", true},
		{"ab-cd--ef gh\tij kl-mn-op", "abcdefghijklmnop", true},
		{"aaaa-bbbb-cccc-2345", "aaaabbbbcccc2345", true},
		{"7777-7777-7777-7777", "7777777777777777", true},
		{"abcd-efgh-ijkl-mno", "", false},   // 15 characters
		{"abcd-efgh-ijkl-mnopq", "", false}, // 17
		{"abcd-efgh-ijkl-mn0p", "", false},  // 0 is not base32
		{"abcd-efgh-ijkl-mn1p", "", false},  // nor 1
		{"abcd-efgh-ijkl-mn8p", "", false},  // nor 8
		{"abcd_efgh_ijkl_mnop", "", false},  // only dashes and spaces separate
		{"abcd-efgh-ijkl-mnöp", "", false},  // not ASCII
		{"ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐ", "", false},     // fullwidth
		{"123456", "", false},
		{"", "", false},
		{"----------------------------------------------------------------------------------------abcdefghijklmnop", "", false},
	} {
		got, ok := mfa.NormalizeRecoveryCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHashRecoveryCode(t *testing.T) {
	// Expected values from Python's hashlib.sha256, not from this code.
	for _, tc := range []struct{ in, want string }{
		{"abcdefghijklmnop", "f39dac6cbaba535e2c207cd0cd8f154974223c848f727f98b3564cea569b41cf"},
		{"aaaabbbbcccc2345", "206d2f60734e7b40a82d543f2140775bb3ce0c0c4e25962a9aee732c2ae912ef"},
	} {
		if got := mfa.HashRecoveryCode(tc.in); got != tc.want {
			t.Errorf("HashRecoveryCode(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// Every spelling of a code hashes alike once normalized.
	a, _ := mfa.NormalizeRecoveryCode("ABCD EFGH-ijkl mnop")
	b, _ := mfa.NormalizeRecoveryCode("abcd-efgh-ijkl-mnop")
	if mfa.HashRecoveryCode(a) != mfa.HashRecoveryCode(b) {
		t.Error("two spellings of one code hash differently")
	}
}
