package captcha

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	dchest "github.com/dchest/captcha"

	"github.com/portcullis/portcullis/storage"
)

const (
	// digitCount is how many digits a picture shows: a million answers,
	// and each challenge takes one guess.
	digitCount = 6
	// The picture's size: dchest/captcha's standard, which fits a phone.
	imageWidth, imageHeight = dchest.StdWidth, dchest.StdHeight
	// audioLanguage matches the pages, which are in English.
	audioLanguage = "en"
	// answerKeyPurpose derives the key the answer hashes are keyed with.
	answerKeyPurpose = "portcullis/captcha-answer/v1"
	// maxAnswer bounds what is hashed from a posted answer.
	maxAnswer = 64
)

// builtinWidget stores a new challenge and draws it. The digits are drawn
// here, from crypto/rand, and handed to dchest/captcha's image and audio
// writers; its own store, which keeps answers in process memory, is never
// used, since another instance could not check them.
func (s *Service) builtinWidget(ctx context.Context, w *Widget) (*Widget, error) {
	digits, err := s.draw(digitCount)
	if err != nil {
		return nil, err
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	now := s.now()
	err = s.store.CreateCaptchaChallenge(ctx, &storage.CaptchaChallenge{
		ID: id, AnswerHash: answerHash(s.keys[0], id, digitString(digits)), CreatedAt: now, ExpiresAt: now.Add(s.ttl),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: store challenge: %w", ErrUnavailable, err)
	}
	var png, wav bytes.Buffer
	// The id seeds the noise, so the same challenge draws the same way.
	if _, err := dchest.NewImage(id, digits, imageWidth, imageHeight).WriteTo(&png); err != nil {
		return nil, fmt.Errorf("draw captcha picture: %w", err)
	}
	if _, err := dchest.NewAudio(id, digits, audioLanguage).WriteTo(&wav); err != nil {
		return nil, fmt.Errorf("record captcha audio: %w", err)
	}
	w.Field, w.ChallengeID, w.Digits, w.PNG, w.WAV = FieldAnswer, id, digitCount, png.Bytes(), wav.Bytes()
	return w, nil
}

// verifyBuiltin redeems challenge id with answer. Any answer uses the
// challenge up; only a missing id leaves nothing to redeem.
func (s *Service) verifyBuiltin(ctx context.Context, id, answer string) (bool, error) {
	if id == "" {
		return false, nil
	}
	answer = normalizeAnswer(answer)
	candidates := make([]string, len(s.keys))
	for i, k := range s.keys {
		candidates[i] = answerHash(k, id, answer)
	}
	ok, err := s.store.RedeemCaptchaChallenge(ctx, id, candidates)
	if err != nil {
		return false, fmt.Errorf("%w: redeem challenge: %w", ErrUnavailable, err)
	}
	return ok, nil
}

// answerHash is the stored form of an answer: an HMAC under a key derived
// from the system secret, bound to the challenge id. A plain hash of six
// digits is undone by trying a million; the key makes the table useless
// without the secret, and the id makes one challenge's hash say nothing
// about another's.
func answerHash(key []byte, id, answer string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(answer))
	return hex.EncodeToString(m.Sum(nil))
}

// normalizeAnswer forgives what people type around digits: spaces
// (phones group digits, people copy them in threes), dashes and
// full-width digits from East Asian keyboards.
func normalizeAnswer(s string) string {
	if len(s) > maxAnswer {
		s = s[:maxAnswer]
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '０' && r <= '９':
			b.WriteRune('0' + (r - '０'))
		case r == ' ' || r == '-' || r == '\u00a0' || r == '\u3000':
		default:
			// Anything else cannot be right; keep it so that it is not.
			b.WriteRune(r)
		}
	}
	return b.String()
}

// randomDigits returns n digits 0–9, uniformly: bytes of 250 and above are
// drawn again, so that no digit is likelier than another.
func randomDigits(n int) ([]byte, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("draw captcha digits: %w", err)
		}
		for _, b := range buf {
			if b < 250 && len(out) < n {
				out = append(out, b%10)
			}
		}
	}
	return out, nil
}

func digitString(digits []byte) string {
	b := make([]byte, len(digits))
	for i, d := range digits {
		b[i] = '0' + d
	}
	return string(b)
}

// randomID is a challenge id: 128 random bits, URL-safe.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw captcha id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func dataURL(mediaType string, b []byte) string {
	return "data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(b)
}
