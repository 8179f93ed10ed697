package captcha

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image"
	"image/png"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const (
	secretA = "captcha-test-system-secret-number-one"
	secretB = "captcha-test-system-secret-number-two"
)

// clock is a manual clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// digitsQueue hands out the digits of the next challenges, so that a test
// knows the answers.
type digitsQueue struct {
	mu   sync.Mutex
	next []string
}

func (q *digitsQueue) draw(n int) ([]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.next) == 0 {
		return randomDigits(n)
	}
	s := q.next[0]
	q.next = q.next[1:]
	out := make([]byte, len(s))
	for i := range s {
		out[i] = s[i] - '0'
	}
	return out, nil
}

func newService(t *testing.T, store Store, clk *clock, q *digitsQueue, secrets ...string) *Service {
	t.Helper()
	s, err := New(Config{Store: store, SystemSecrets: secrets, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s.draw = q.draw
	return s
}

func answer(w *Widget, digits string) url.Values {
	return url.Values{FieldChallengeID: {w.ChallengeID}, FieldAnswer: {digits}}
}

// TestBuiltinEndToEnd runs the built-in captcha against each database: a
// right answer passes once, and nothing else ever passes.
func TestBuiltinEndToEnd(t *testing.T) {
	builtin := policies.Defaults().Captcha
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			clk := &clock{now: time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)}
			store := storagetest.OpenWithClock(t, b.URL, clk.Now)
			q := &digitsQueue{}
			svc := newService(t, store, clk, q, secretA)
			ctx := t.Context()
			widget := func(digits string) *Widget {
				t.Helper()
				q.next = append(q.next, digits)
				w, err := svc.Widget(ctx, builtin, policies.CaptchaOnLogin)
				if err != nil {
					t.Fatalf("Widget: %v", err)
				}
				return w
			}
			verify := func(form url.Values) bool {
				t.Helper()
				ok, err := svc.Verify(ctx, builtin, policies.CaptchaOnLogin, form, "192.0.2.1")
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return ok
			}

			t.Run("right answer once, replay refused", func(t *testing.T) {
				w := widget("042917")
				if !verify(answer(w, "042917")) {
					t.Fatal("the right answer was refused")
				}
				if verify(answer(w, "042917")) {
					t.Error("the right answer was accepted a second time")
				}
			})
			t.Run("wrong answer refused and consumes", func(t *testing.T) {
				w := widget("555123")
				if verify(answer(w, "555124")) {
					t.Fatal("a wrong answer was accepted")
				}
				if verify(answer(w, "555123")) {
					t.Error("the right answer after a wrong one was accepted")
				}
			})
			t.Run("empty answer consumes", func(t *testing.T) {
				w := widget("111111")
				if verify(answer(w, "")) {
					t.Fatal("an empty answer was accepted")
				}
				if verify(answer(w, "111111")) {
					t.Error("the right answer after an empty one was accepted")
				}
			})
			t.Run("expired refused", func(t *testing.T) {
				w := widget("900000")
				clk.Advance(DefaultChallengeTTL)
				if verify(answer(w, "900000")) {
					t.Error("the right answer was accepted after expiry")
				}
			})
			t.Run("just before expiry", func(t *testing.T) {
				w := widget("900001")
				clk.Advance(DefaultChallengeTTL - time.Second)
				if !verify(answer(w, "900001")) {
					t.Error("the right answer was refused a second before expiry")
				}
			})
			t.Run("what people type around digits", func(t *testing.T) {
				for _, typed := range []string{"123 456", " 123-456 ", "１２３４５６", "123\u00a0456"} {
					w := widget("123456")
					if !verify(answer(w, typed)) {
						t.Errorf("answer %q for 123456 refused", typed)
					}
				}
				w := widget("123456")
				if verify(answer(w, "123456x")) {
					t.Error("answer 123456x accepted")
				}
			})
			t.Run("missing or unknown id", func(t *testing.T) {
				w := widget("777777")
				for _, form := range []url.Values{
					{FieldAnswer: {"777777"}},
					{FieldChallengeID: {"someone-elses"}, FieldAnswer: {"777777"}},
					{FieldChallengeID: {w.ChallengeID + "\x00"}, FieldAnswer: {"777777"}},
					{},
				} {
					if verify(form) {
						t.Errorf("Verify(%v) = true", form)
					}
				}
				if !verify(answer(w, "777777")) {
					t.Error("the challenge did not survive answers to other ids")
				}
			})
			t.Run("an answer for another challenge", func(t *testing.T) {
				w1, w2 := widget("246810"), widget("135791")
				if verify(url.Values{FieldChallengeID: {w2.ChallengeID}, FieldAnswer: {"246810"}}) {
					t.Error("w1's digits answered w2")
				}
				if !verify(answer(w1, "246810")) {
					t.Error("w1 refused its own digits")
				}
			})
			t.Run("another instance checks the answer", func(t *testing.T) {
				// Same database, same secret, another process's memory.
				other := newService(t, storagetest.OpenWithClock(t, b.URL, clk.Now), clk, &digitsQueue{}, secretA)
				w := widget("314159")
				ok, err := other.Verify(ctx, builtin, policies.CaptchaOnLogin, answer(w, "314159"), "")
				if err != nil || !ok {
					t.Errorf("other instance: Verify = %v, %v; want true", ok, err)
				}
			})
			t.Run("rotated secret still checks", func(t *testing.T) {
				rotated := newService(t, store, clk, &digitsQueue{}, secretB, secretA)
				w := widget("271828")
				ok, err := rotated.Verify(ctx, builtin, policies.CaptchaOnLogin, answer(w, "271828"), "")
				if err != nil || !ok {
					t.Errorf("after rotation: Verify = %v, %v; want true", ok, err)
				}
				stranger := newService(t, store, clk, &digitsQueue{}, secretB)
				w = widget("271828")
				if ok, _ := stranger.Verify(ctx, builtin, policies.CaptchaOnLogin, answer(w, "271828"), ""); ok {
					t.Error("a service without the secret that drew the challenge accepted it")
				}
			})
			t.Run("parallel answers", func(t *testing.T) {
				w := widget("999999")
				var wins int
				var mu sync.Mutex
				var wg sync.WaitGroup
				for range 20 {
					wg.Go(func() {
						ok, err := svc.Verify(ctx, builtin, policies.CaptchaOnLogin, answer(w, "999999"), "")
						if err != nil {
							t.Errorf("Verify: %v", err)
						}
						if ok {
							mu.Lock()
							wins++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				if wins != 1 {
					t.Errorf("%d of 20 parallel right answers accepted, want 1", wins)
				}
			})
		})
	}
}

// TestBuiltinMedia: the picture is a PNG of the standard size, the
// recording a WAVE file, both inside the page as data: URLs.
func TestBuiltinMedia(t *testing.T) {
	clk := &clock{now: time.Now()}
	svc := newService(t, &memStore{}, clk, &digitsQueue{}, secretA)
	w, err := svc.Widget(t.Context(), policies.Defaults().Captcha, policies.CaptchaOnLogin)
	if err != nil {
		t.Fatal(err)
	}
	img, format, err := image.Decode(bytes.NewReader(w.PNG))
	if err != nil || format != "png" {
		t.Fatalf("picture: %v, format %q", err, format)
	}
	if b := img.Bounds(); b.Dx() != imageWidth || b.Dy() != imageHeight {
		t.Errorf("picture is %dx%d, want %dx%d", b.Dx(), b.Dy(), imageWidth, imageHeight)
	}
	if len(w.WAV) < 44 || string(w.WAV[:4]) != "RIFF" || string(w.WAV[8:12]) != "WAVE" {
		t.Fatalf("recording does not start with a RIFF/WAVE header: %q", w.WAV[:min(12, len(w.WAV))])
	}
	if w.Field != FieldAnswer || w.Digits != digitCount || w.ChallengeID == "" {
		t.Errorf("widget = field %q, %d digits, id %q", w.Field, w.Digits, w.ChallengeID)
	}

	page := w.Template("")
	if page.ChallengeID != w.ChallengeID || page.Digits != digitCount || page.ScriptURL != "" {
		t.Errorf("template data = %+v", page)
	}
	for name, got := range map[string]string{"image/png": string(page.ImageURL), "audio/wav": string(page.AudioURL)} {
		b64, ok := strings.CutPrefix(got, "data:"+name+";base64,")
		if !ok {
			t.Errorf("%s URL starts %q", name, got[:min(40, len(got))])
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Errorf("%s URL: %v", name, err)
		}
		if want := map[string][]byte{"image/png": w.PNG, "audio/wav": w.WAV}[name]; !bytes.Equal(raw, want) {
			t.Errorf("%s URL does not hold the widget's bytes", name)
		}
	}
	if _, err := png.Decode(bytes.NewReader(w.PNG)); err != nil {
		t.Errorf("png.Decode: %v", err)
	}

	// Two challenges never share an id, and the hash is not the digits.
	w2, err := svc.Widget(t.Context(), policies.Defaults().Captcha, policies.CaptchaOnLogin)
	if err != nil {
		t.Fatal(err)
	}
	if w2.ChallengeID == w.ChallengeID {
		t.Error("two challenges share an id")
	}
}

// TestAnswerHash: keyed, bound to the id, and hex SHA-256 sized.
func TestAnswerHash(t *testing.T) {
	k1, k2 := []byte("key-one-key-one-key-one-key-one-"), []byte("key-two-key-two-key-two-key-two-")
	base := answerHash(k1, "id", "123456")
	if len(base) != 64 || strings.Contains(base, "123456") {
		t.Errorf("hash %q", base)
	}
	for name, other := range map[string]string{
		"another key":    answerHash(k2, "id", "123456"),
		"another id":     answerHash(k1, "id2", "123456"),
		"another answer": answerHash(k1, "id", "123457"),
		// The separator keeps id and answer apart.
		"shifted boundary": answerHash(k1, "id1", "23456"),
	} {
		if other == base {
			t.Errorf("%s gives the same hash", name)
		}
	}
}

func TestRandomDigits(t *testing.T) {
	var counts [10]int
	for range 2000 {
		d, err := randomDigits(digitCount)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != digitCount {
			t.Fatalf("%d digits", len(d))
		}
		for _, x := range d {
			if x > 9 {
				t.Fatalf("digit %d", x)
			}
			counts[x]++
		}
	}
	// 12000 digits: each about 1200; a digit missing or doubled is a bug,
	// not chance.
	for i, c := range counts {
		if c < 900 || c > 1500 {
			t.Errorf("digit %d drawn %d times of 12000", i, c)
		}
	}
}

// memStore is a Store in memory, for tests that need no database.
type memStore struct {
	mu   sync.Mutex
	rows map[string]storage.CaptchaChallenge
	fail error
}

func (m *memStore) CreateCaptchaChallenge(_ context.Context, c *storage.CaptchaChallenge) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.rows == nil {
		m.rows = map[string]storage.CaptchaChallenge{}
	}
	m.rows[c.ID] = *c
	return nil
}

func (m *memStore) RedeemCaptchaChallenge(_ context.Context, id string, candidates []string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, m.fail
	}
	row, ok := m.rows[id]
	delete(m.rows, id)
	for _, c := range candidates {
		if ok && c == row.AnswerHash {
			return true, nil
		}
	}
	return false, nil
}

// TestBuiltinStoreDown: a database that cannot answer is ErrUnavailable,
// never a pass or a plain refusal.
func TestBuiltinStoreDown(t *testing.T) {
	down := fmtErr("storage: database unavailable")
	svc := newService(t, &memStore{fail: down}, &clock{now: time.Now()}, &digitsQueue{}, secretA)
	builtin := policies.Defaults().Captcha
	if _, err := svc.Widget(t.Context(), builtin, policies.CaptchaOnLogin); !errors.Is(err, ErrUnavailable) || !errors.Is(err, down) {
		t.Errorf("Widget = %v, want ErrUnavailable wrapping the store's error", err)
	}
	ok, err := svc.Verify(t.Context(), builtin, policies.CaptchaOnLogin, url.Values{FieldChallengeID: {"x"}, FieldAnswer: {"1"}}, "")
	if ok || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify = %v, %v; want false, ErrUnavailable", ok, err)
	}
}

type fmtErr string

func (e fmtErr) Error() string { return string(e) }

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no store":        {SystemSecrets: []string{secretA}},
		"no secret":       {Store: &memStore{}},
		"an empty secret": {Store: &memStore{}, SystemSecrets: []string{""}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
