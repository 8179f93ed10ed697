package storagetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// captchaCases check the built-in captcha's challenges: each is worth
// exactly one guess, right or wrong, under any number of parallel
// redemptions, and none outlives its expiry on the store's clock.
func captchaCases() []suiteCase {
	const (
		right = "hash-of-the-right-answer"
		wrong = "hash-of-a-wrong-answer"
	)
	create := func(t *testing.T, s *storage.Store, clk *Clock, id string, ttl time.Duration) {
		t.Helper()
		must(t, "CreateCaptchaChallenge", s.CreateCaptchaChallenge(t.Context(), &storage.CaptchaChallenge{
			ID: id, AnswerHash: right, ExpiresAt: clk.Now().Add(ttl),
		}))
	}
	redeem := func(t *testing.T, s *storage.Store, id string, candidates ...string) bool {
		t.Helper()
		ok, err := s.RedeemCaptchaChallenge(t.Context(), id, candidates)
		must(t, "RedeemCaptchaChallenge", err)
		return ok
	}
	return []suiteCase{
		{"Captcha/RightAnswerOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			create(t, s, clk, "c1", 10*time.Minute)
			if !redeem(t, s, "c1", right) {
				t.Fatal("the right answer was refused")
			}
			if redeem(t, s, "c1", right) {
				t.Error("the right answer was accepted twice")
			}
		}},
		{"Captcha/WrongAnswerConsumes", func(t *testing.T, s *storage.Store, clk *Clock) {
			create(t, s, clk, "c1", 10*time.Minute)
			if redeem(t, s, "c1", wrong) {
				t.Fatal("a wrong answer was accepted")
			}
			if redeem(t, s, "c1", right) {
				t.Error("the right answer after a wrong one was accepted: a challenge must be worth one guess")
			}
		}},
		{"Captcha/AnyCandidateMatches", func(t *testing.T, s *storage.Store, clk *Clock) {
			// One candidate per system secret: the one that drew the
			// challenge may be the older.
			create(t, s, clk, "c1", 10*time.Minute)
			if !redeem(t, s, "c1", wrong, right) {
				t.Error("the right answer as the second candidate was refused")
			}
			create(t, s, clk, "c2", 10*time.Minute)
			if redeem(t, s, "c2") {
				t.Error("no candidate at all was accepted")
			}
		}},
		{"Captcha/Expiry", func(t *testing.T, s *storage.Store, clk *Clock) {
			create(t, s, clk, "c1", 10*time.Minute)
			create(t, s, clk, "c2", 10*time.Minute)
			clk.Advance(10*time.Minute - time.Second)
			if !redeem(t, s, "c1", right) {
				t.Fatal("refused a second before expiry")
			}
			clk.Advance(time.Second)
			if redeem(t, s, "c2", right) {
				t.Error("accepted at the instant of expiry")
			}
		}},
		{"Captcha/UnknownAndUnstorableIDs", func(t *testing.T, s *storage.Store, clk *Clock) {
			create(t, s, clk, "c1", 10*time.Minute)
			// Form input: none of it may be an error (which would read
			// as an outage), and none may touch c1.
			for _, id := range []string{"", "nope", "c1\x00", "c1\xff", strings.Repeat("c", 4096)} {
				if redeem(t, s, id, right) {
					t.Errorf("RedeemCaptchaChallenge(%q) = true", id)
				}
			}
			if !redeem(t, s, "c1", right) {
				t.Error("c1 was used up by redemptions of other ids")
			}
		}},
		{"Captcha/DuplicateID", func(t *testing.T, s *storage.Store, clk *Clock) {
			create(t, s, clk, "c1", 10*time.Minute)
			err := s.CreateCaptchaChallenge(t.Context(), &storage.CaptchaChallenge{ID: "c1", AnswerHash: wrong, ExpiresAt: clk.Now().Add(time.Minute)})
			wantErr(t, "second challenge c1", err, storage.ErrConflict)
		}},
		{"Captcha/DeleteExpired", func(t *testing.T, s *storage.Store, clk *Clock) {
			create(t, s, clk, "old", time.Minute)
			create(t, s, clk, "new", time.Hour)
			clk.Advance(2 * time.Minute)
			n, err := s.DeleteExpiredCaptchaChallenges(t.Context(), clk.Now())
			must(t, "DeleteExpiredCaptchaChallenges", err)
			if n != 1 {
				t.Errorf("deleted %d challenges, want 1", n)
			}
			if !redeem(t, s, "new", right) {
				t.Error("the purge took a live challenge")
			}
		}},
		{"Concurrency/CaptchaRedeemedOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			create(t, s, clk, "c1", 10*time.Minute)
			errs := race(func(int) error {
				ok, err := s.RedeemCaptchaChallenge(t.Context(), "c1", []string{right})
				if err == nil && !ok {
					return storage.ErrAlreadyUsed
				}
				return err
			})
			checkOneWinner(t, errs)
		}},
		{"Concurrency/CaptchaOneGuessUnderRace", func(t *testing.T, s *storage.Store, clk *Clock) {
			// Half the racers guess wrong: whoever comes first uses the
			// challenge up, so at most one right answer gets through and
			// none after a wrong one.
			create(t, s, clk, "c1", 10*time.Minute)
			errs := race(func(i int) error {
				guess := right
				if i%2 == 1 {
					guess = wrong
				}
				ok, err := s.RedeemCaptchaChallenge(t.Context(), "c1", []string{guess})
				if err == nil && !ok {
					return storage.ErrAlreadyUsed
				}
				return err
			})
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, storage.ErrAlreadyUsed):
					t.Errorf("racer %d: %v", i, err)
				}
			}
			if wins > 1 {
				t.Errorf("%d right answers accepted for one challenge", wins)
			}
			if redeem(t, s, "c1", right) {
				t.Error("the challenge survived the race")
			}
		}},
	}
}
