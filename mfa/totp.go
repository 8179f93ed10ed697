package mfa

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters. They are fixed, not configurable: 6 digits, 30 seconds
// and SHA-1 are what every authenticator app implements (several ignore the
// URI's parameters and use these whatever it says), and what
// `oathtool --totp -b` computes.
const (
	TOTPDigits = 6
	TOTPPeriod = 30 // seconds
	// TOTPSecretSize is the size of a generated secret in bytes: 160 bits,
	// the HMAC-SHA-1 block RFC 4226 recommends.
	TOTPSecretSize = 20
	// MaxTOTPSkew bounds the skew MatchTOTP honours (steps either side of
	// now): ten steps is five minutes of clock drift each way, far past any
	// sensible policy, and keeps a misconfigured skew from turning one
	// check into millions of HMACs.
	MaxTOTPSkew = 10
)

// NewTOTPKey generates a TOTP key for account at issuer, with a fresh
// random secret of TOTPSecretSize bytes from crypto/rand.
func NewTOTPKey(issuer, account string) (*otp.Key, error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: TOTPPeriod, SecretSize: TOTPSecretSize,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("new totp key: %w", err)
	}
	return k, nil
}

// TOTPStep is the RFC 6238 time step t falls in: seconds since the Unix
// epoch divided by the period, rounded down.
func TOTPStep(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		// Round towards minus infinity, as the RFC's floor does.
		return (s - (TOTPPeriod - 1)) / TOTPPeriod
	}
	return s / TOTPPeriod
}

// MatchTOTP checks code against secret at now, allowing skew steps either
// side of now's step (capped at MaxTOTPSkew), and returns the step it
// matched. code may contain spaces ("123 456" as apps show it); otherwise
// it must be exactly TOTPDigits ASCII digits.
//
// Every candidate step is computed and compared in constant time, with no
// early return, so the time taken tells nothing about which step (if any)
// matched. When a code matches more than one step (a one-in-a-million
// coincidence), the newest is returned: recording it as used then also
// rules out the older one, whereas recording the older would leave the
// newer open to a replay of the same code.
//
// A match says the code is right, not that it may be accepted: the caller
// consumes the step in storage, once, and only if it is newer than the last
// accepted.
func MatchTOTP(secret []byte, code string, now time.Time, skew uint) (step int64, ok bool) {
	code = stripSpaces(code)
	if len(secret) == 0 || !sixDigits(code) {
		return 0, false
	}
	skew = min(skew, MaxTOTPSkew)
	b32 := TOTPSecretBase32(secret)
	center := TOTPStep(now)
	matched := 0
	for s := center - int64(skew); s <= center+int64(skew); s++ {
		if s < 0 {
			continue
		}
		want, err := totp.GenerateCodeCustom(b32, time.Unix(s*TOTPPeriod, 0),
			totp.ValidateOpts{Period: TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			// Cannot happen: the secret was base32-encoded just above.
			return 0, false
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		// Branch-free select: the step of the newest match so far.
		mask := -int64(eq)
		step = s&mask | step&^mask
		matched |= eq
	}
	if matched != 1 {
		return 0, false
	}
	return step, true
}

// IsTOTPShaped reports whether code, spaces removed, is TOTPDigits ASCII
// digits: one "code" field can then take a TOTP code or a recovery code,
// which never has that shape.
func IsTOTPShaped(code string) bool { return sixDigits(stripSpaces(code)) }

func sixDigits(s string) bool {
	if len(s) != TOTPDigits {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func stripSpaces(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// TOTPSecretBytes decodes a base32 TOTP secret as apps and otpauth URIs
// spell it: case, spaces and padding do not matter.
func TOTPSecretBytes(base32Secret string) ([]byte, error) {
	s := strings.TrimRight(strings.ToUpper(stripSpaces(base32Secret)), "=")
	if s == "" {
		return nil, errors.New("totp secret: empty")
	}
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("totp secret: not base32: %w", err)
	}
	return b, nil
}

// TOTPSecretBase32 encodes secret as authenticator apps expect it: base32,
// upper case, without padding.
func TOTPSecretBase32(secret []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
}

// TOTPURI is the otpauth:// URI (Google Authenticator's Key URI Format)
// that enrols secret in an app, labelled "issuer:account". Both names are
// percent-encoded, spaces as %20 (some apps show a "+" literally), and a
// colon inside either is encoded too so the label splits at the right
// place. An empty issuer leaves the label as the account alone.
func TOTPURI(issuer, account string, secret []byte) string {
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if issuer != "" {
		b.WriteString(uriEscape(issuer))
		b.WriteByte(':')
	}
	b.WriteString(uriEscape(account))
	b.WriteString("?secret=")
	b.WriteString(TOTPSecretBase32(secret))
	if issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(uriEscape(issuer))
	}
	fmt.Fprintf(&b, "&algorithm=SHA1&digits=%d&period=%d", TOTPDigits, TOTPPeriod)
	return b.String()
}

// uriEscape percent-encodes everything but unreserved characters. It is
// url.QueryEscape with %20 for a space: QueryEscape already encodes a
// literal "+" as %2B, so every "+" it leaves is a space.
func uriEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// qrQuietZone is the blank margin, in modules, the QR standard requires
// around a code; without it scanners misread codes shown on a dark page.
const qrQuietZone = 4

// QRCodePNG renders content as a QR code (error correction level M) in a
// size × size PNG, black on white with the standard quiet zone. Each module
// is a whole number of pixels, so the code is sharp; the remainder goes to
// the margin. It fails when size is too small for every module to get a
// pixel.
func QRCodePNG(content string, size int) ([]byte, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	modules := code.Bounds().Dx()
	scale := size / (modules + 2*qrQuietZone)
	if scale < 1 {
		return nil, fmt.Errorf("qr code: %d pixels is too small for %d modules and the quiet zone", size, modules)
	}
	offset := (size - modules*scale) / 2
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	origin := code.Bounds().Min
	for y := range modules {
		for x := range modules {
			if r, _, _, _ := code.At(origin.X+x, origin.Y+y).RGBA(); r >= 0x8000 {
				continue // a light module
			}
			for dy := range scale {
				row := img.Pix[(offset+y*scale+dy)*img.Stride:]
				for dx := range scale {
					row[offset+x*scale+dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	return buf.Bytes(), nil
}
