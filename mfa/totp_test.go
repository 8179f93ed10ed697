package mfa_test

import (
	"bytes"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/portcullis/portcullis/mfa"
)

// rfcSecret is RFC 6238's SHA-1 test key.
var rfcSecret = []byte("12345678901234567890")

// TestMatchTOTPRFC6238 checks the RFC's own SHA-1 vectors (their last six
// digits: the 8-digit code mod 10^6), which need no tool.
func TestMatchTOTPRFC6238(t *testing.T) {
	for _, tc := range []struct {
		unix int64
		code string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	} {
		now := time.Unix(tc.unix, 0)
		step, ok := mfa.MatchTOTP(rfcSecret, tc.code, now, 0)
		if !ok || step != tc.unix/30 {
			t.Errorf("MatchTOTP(rfc, %s, @%d, 0) = %d, %v; want %d, true", tc.code, tc.unix, step, ok, tc.unix/30)
		}
	}
}

// oathtoolCode asks Debian's oathtool, an implementation independent of
// pquerna/otp, for the code of secret at t.
func oathtoolCode(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	out, err := exec.Command("oathtool", "--totp", "-b", mfa.TOTPSecretBase32(secret),
		"--now", fmt.Sprintf("@%d", at.Unix())).Output()
	if err != nil {
		t.Fatalf("oathtool at %v: %v", at, err)
	}
	return strings.TrimSpace(string(out))
}

func requireOathtool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("oathtool"); err != nil {
		t.Skip("oathtool not installed (Debian package oathtool); the RFC vectors still ran")
	}
}

// TestMatchTOTPAgainstOathtool takes codes from oathtool at steps around
// now and checks MatchTOTP accepts exactly those within the skew, at the
// step they belong to. The secrets are fixed, so a chance collision of two
// steps' codes cannot make the test flaky.
func TestMatchTOTPAgainstOathtool(t *testing.T) {
	requireOathtool(t)
	secrets := map[string][]byte{
		"rfc":    rfcSecret,
		"random": {0x3d, 0xc6, 0xca, 0xa4, 0x82, 0x4a, 0x6d, 0x28, 0x87, 0x67, 0xb2, 0x33, 0x1e, 0x20, 0xb4, 0x31, 0x66, 0xcb, 0x85, 0xd9},
	}
	times := []time.Time{
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),                        // first second of a step
		time.Date(2026, 1, 1, 0, 0, 29, 999e6, time.UTC),                   // last moment of it
		time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC),                        // mid-step
		time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC),                      // past 32-bit time
		time.Date(2026, 6, 30, 23, 59, 45, 0, time.FixedZone("x", 5*3600)), // zone does not matter
	}
	for name, secret := range secrets {
		for _, now := range times {
			center := mfa.TOTPStep(now)
			if want := now.Unix() / 30; center != want {
				t.Fatalf("TOTPStep(%v) = %d, want %d", now, center, want)
			}
			for offset := int64(-3); offset <= 3; offset++ {
				code := oathtoolCode(t, secret, now.Add(time.Duration(offset)*30*time.Second))
				for _, skew := range []uint{0, 1, 2} {
					step, ok := mfa.MatchTOTP(secret, code, now, skew)
					within := offset >= -int64(skew) && offset <= int64(skew)
					if ok != within || (ok && step != center+offset) {
						t.Errorf("%s at %v: code of step %+d with skew %d: MatchTOTP = %d, %v; want %v at step %d",
							name, now, offset, skew, step, ok, within, center+offset)
					}
				}
			}
			// Spaces, as apps show codes, do not matter.
			code := oathtoolCode(t, secret, now)
			if _, ok := mfa.MatchTOTP(secret, code[:3]+" "+code[3:], now, 0); !ok {
				t.Errorf("%s at %v: %q with a space refused", name, now, code)
			}
			if _, ok := mfa.MatchTOTP(secret, " "+code+"\t", now, 0); !ok {
				t.Errorf("%s at %v: %q with surrounding blanks refused", name, now, code)
			}
		}
	}
}

func TestNewTOTPKeyMatchesOathtool(t *testing.T) {
	k, err := mfa.NewTOTPKey("Portcullis", "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := mfa.TOTPSecretBytes(k.Secret())
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 20 {
		t.Errorf("secret is %d bytes, want 20", len(secret))
	}
	if k.Issuer() != "Portcullis" || k.AccountName() != "alice@example.test" || k.Period() != 30 ||
		k.Digits() != otp.DigitsSix || k.Algorithm() != otp.AlgorithmSHA1 {
		t.Errorf("key = %s, want issuer Portcullis, account alice@example.test, 30 s, 6 digits, SHA1", k)
	}
	if other, _ := mfa.NewTOTPKey("Portcullis", "alice@example.test"); other != nil && other.Secret() == k.Secret() {
		t.Error("two keys share a secret")
	}
	if _, err := mfa.NewTOTPKey("", "alice"); err == nil {
		t.Error("NewTOTPKey accepted an empty issuer")
	}
	requireOathtool(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	if _, ok := mfa.MatchTOTP(secret, oathtoolCode(t, secret, now), now, 0); !ok {
		t.Error("oathtool's code for a new key refused")
	}
}

func TestMatchTOTPRefusesMalformedCodes(t *testing.T) {
	now := time.Unix(59, 0)
	for _, code := range []string{
		"", "28708", "2870820", "2870 8", "28708a", "28708\x00", "-287082", "+28708",
		"２８７０８２",       // fullwidth digits
		"٢٨٧٠٨٢",       // Arabic-Indic digits
		"287082\u200b", // zero-width space is not a space
		"0x4616",
	} {
		if step, ok := mfa.MatchTOTP(rfcSecret, code, now, 1); ok {
			t.Errorf("MatchTOTP(%q) = %d, true; want refused", code, step)
		}
	}
	if _, ok := mfa.MatchTOTP(nil, "287082", now, 1); ok {
		t.Error("MatchTOTP accepted a code with no secret")
	}
	if _, ok := mfa.MatchTOTP([]byte("another secret......"), "287082", now, 1); ok {
		t.Error("MatchTOTP accepted the code of another secret")
	}
	// A huge skew is capped, not honoured: the code of step 0 is far
	// outside MaxTOTPSkew of now.
	if _, ok := mfa.MatchTOTP(rfcSecret, "287082", time.Unix(59+30*(mfa.MaxTOTPSkew+1), 0), ^uint(0)); ok {
		t.Error("MatchTOTP honoured a skew beyond MaxTOTPSkew")
	}
}

func TestIsTOTPShaped(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"123456", true},
		{"123 456", true},
		{" 000000 ", true},
		{"12345", false},
		{"1234567", false},
		{"12345a", false},
		{"abcd-efgh-ijkl-mnop", false},
		{"١٢٣٤٥٦", false},
		{"", false},
	} {
		if got := mfa.IsTOTPShaped(tc.code); got != tc.want {
			t.Errorf("IsTOTPShaped(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestTOTPSecretEncoding(t *testing.T) {
	secret := []byte("12345678901234567890")
	const b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	if got := mfa.TOTPSecretBase32(secret); got != b32 {
		t.Errorf("TOTPSecretBase32 = %q, want %q", got, b32)
	}
	// 10 bytes: the padded encoding would end in "=".
	if got := mfa.TOTPSecretBase32([]byte("1234567890")); strings.Contains(got, "=") {
		t.Errorf("TOTPSecretBase32 pads: %q", got)
	}
	for _, in := range []string{b32, strings.ToLower(b32), "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ", b32 + "===="} {
		got, err := mfa.TOTPSecretBytes(in)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("TOTPSecretBytes(%q) = %q, %v; want %q", in, got, err, secret)
		}
	}
	for _, in := range []string{"", "   ", "GEZDGNB1", "GEZ!GNBV", "===="} {
		if got, err := mfa.TOTPSecretBytes(in); err == nil {
			t.Errorf("TOTPSecretBytes(%q) = %q, want an error", in, got)
		}
	}
}

func TestTOTPURI(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		issuer, account string
		wantPrefix      string
	}{
		{"Portcullis", "alice@example.test", "otpauth://totp/Portcullis:alice%40example.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Portcullis&algorithm=SHA1&digits=6&period=30"},
		{"Acme & Co: SSO", "bob smith", "otpauth://totp/Acme%20%26%20Co%3A%20SSO:bob%20smith?secret="},
		{"", "carol", "otpauth://totp/carol?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1"},
	} {
		uri := mfa.TOTPURI(tc.issuer, tc.account, secret)
		if !strings.HasPrefix(uri, tc.wantPrefix) {
			t.Errorf("TOTPURI(%q, %q) = %q, want it to start %q", tc.issuer, tc.account, uri, tc.wantPrefix)
		}
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatalf("TOTPURI(%q, %q) = %q does not parse: %v", tc.issuer, tc.account, uri, err)
		}
		q := u.Query()
		wantLabel := tc.account
		if tc.issuer != "" {
			wantLabel = tc.issuer + ":" + tc.account
		}
		if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/"+wantLabel || q.Get("issuer") != tc.issuer ||
			q.Get("secret") != mfa.TOTPSecretBase32(secret) || q.Get("algorithm") != "SHA1" ||
			q.Get("digits") != "6" || q.Get("period") != "30" {
			t.Errorf("TOTPURI(%q, %q) = %q: scheme %q host %q path %q query %v", tc.issuer, tc.account, uri, u.Scheme, u.Host, u.Path, q)
		}
		if strings.Contains(uri, "+") {
			t.Errorf("TOTPURI(%q, %q) = %q encodes a space as +, which some apps show as is", tc.issuer, tc.account, uri)
		}
		// pquerna's parser, as apps read it, agrees.
		k, err := otp.NewKeyFromURL(uri)
		if err != nil {
			t.Fatal(err)
		}
		if k.Secret() != mfa.TOTPSecretBase32(secret) || k.Issuer() != tc.issuer {
			t.Errorf("otp key from %q: secret %q issuer %q", uri, k.Secret(), k.Issuer())
		}
	}
}

func TestQRCodePNG(t *testing.T) {
	content := mfa.TOTPURI("Portcullis", "alice@example.test", []byte("12345678901234567890"))
	for _, size := range []int{200, 256, 333} {
		b, err := mfa.QRCodePNG(content, size)
		if err != nil {
			t.Fatalf("QRCodePNG(size %d): %v", size, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("QRCodePNG(size %d) is no PNG: %v", size, err)
		}
		if got := img.Bounds(); got.Dx() != size || got.Dy() != size {
			t.Errorf("QRCodePNG(size %d) is %v", size, got)
		}
		// The corner is in the quiet zone: white.
		if r, _, _, _ := img.At(0, 0).RGBA(); r != 0xffff {
			t.Errorf("QRCodePNG(size %d): corner pixel is not white", size)
		}
		if got := zbarDecode(t, b); got != "" && got != content {
			t.Errorf("QRCodePNG(size %d) decodes to %q, want %q", size, got, content)
		}
	}
	if _, err := mfa.QRCodePNG(content, 20); err == nil {
		t.Error("QRCodePNG rendered a code in 20 pixels, fewer than its modules")
	}
}

// zbarDecode reads the QR code back with zbarimg, an independent decoder;
// "" when it is not installed (the PNG checks above still ran).
func zbarDecode(t *testing.T, pngData []byte) string {
	t.Helper()
	if _, err := exec.LookPath("zbarimg"); err != nil {
		t.Log("zbarimg not installed: QR content not decoded back")
		return ""
	}
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(path, pngData, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("zbarimg", "--raw", "-q", path).Output()
	if err != nil {
		t.Fatalf("zbarimg could not read the QR code: %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}
