package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/portcullis/portcullis/storage"
)

// racers is how many requests redeem the same single-use object at once;
// more than the store's default pool (16), so some also queue for a
// connection.
const racers = 20

func concurrencyCases() []suiteCase {
	return []suiteCase{
		{"Concurrency/AuthorizeCodeRedeemedOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			req := newRequest(createClient(t, s, "app"), "req-1", "u1", clk.Now())
			must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, "code-sig", req))

			// Each racer is a token request as fosite runs it: invalidate the
			// code and issue the access token in one transaction.
			errs := race(func(i int) error {
				return inTx(t, s, func(ctx context.Context) error {
					if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err != nil {
						return err
					}
					return s.CreateAccessTokenSession(ctx, fmt.Sprintf("at-%d", i), req)
				})
			})
			winner := checkOneWinner(t, errs)

			_, err := s.GetAuthorizeCodeSession(ctx, "code-sig", &openid.DefaultSession{})
			wantErr(t, "code after the race", err, fosite.ErrInvalidatedAuthorizeCode)
			checkOnlyWinnerWrote(t, winner, func(i int) error {
				_, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("at-%d", i), &openid.DefaultSession{})
				return err
			})
		}},
		{"Concurrency/RefreshTokenRotatedOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			req := newRequest(createClient(t, s, "app"), "req-1", "u1", clk.Now())
			must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, "at-0", req))
			must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, "rt-0", "at-0", req))

			errs := race(func(i int) error {
				return inTx(t, s, func(ctx context.Context) error {
					if err := s.RotateRefreshToken(ctx, "req-1", "rt-0"); err != nil {
						return err
					}
					if err := s.CreateAccessTokenSession(ctx, fmt.Sprintf("at-%d", i+1), req); err != nil {
						return err
					}
					return s.CreateRefreshTokenSession(ctx, fmt.Sprintf("rt-%d", i+1), fmt.Sprintf("at-%d", i+1), req)
				})
			})
			winner := checkOneWinner(t, errs)

			_, err := s.GetRefreshTokenSession(ctx, "rt-0", &openid.DefaultSession{})
			wantErr(t, "rotated refresh token", err, fosite.ErrInactiveToken)
			_, err = s.GetAccessTokenSession(ctx, "at-0", &openid.DefaultSession{})
			wantErr(t, "access token of the rotated refresh token", err, fosite.ErrInactiveToken)
			checkOnlyWinnerWrote(t, winner, func(i int) error {
				_, err := s.GetRefreshTokenSession(ctx, fmt.Sprintf("rt-%d", i+1), &openid.DefaultSession{})
				return err
			})
		}},
	}
}

// race runs attempt in racers goroutines, released together once all have
// started so that they really contend, and returns each one's error.
func race(attempt func(i int) error) []error {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, racers)
	for i := range racers {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = attempt(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// inTx runs fn between BeginTX and Commit, rolling back when fn fails, the
// way fosite's token endpoint handlers drive a fositestorage.Transactional.
func inTx(t *testing.T, s *storage.Store, fn func(ctx context.Context) error) error {
	txCtx, err := s.BeginTX(t.Context())
	if err != nil {
		return err
	}
	if err := fn(txCtx); err != nil {
		if rbErr := s.Rollback(txCtx); rbErr != nil {
			t.Errorf("Rollback: %v", rbErr)
		}
		return err
	}
	return s.Commit(txCtx)
}

// checkOneWinner asserts exactly one attempt succeeded and every other one
// lost with ErrAlreadyUsed, and returns the winner's index.
func checkOneWinner(t *testing.T, errs []error) int {
	t.Helper()
	winner, wins, used := -1, 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
			wins++
		case errors.Is(err, storage.ErrAlreadyUsed):
			used++
		default:
			t.Errorf("racer %d: unexpected error: %v", i, err)
		}
	}
	if wins != 1 || used != racers-1 {
		t.Fatalf("%d of %d racers succeeded and %d got ErrAlreadyUsed; want exactly 1 and %d", wins, racers, used, racers-1)
	}
	return winner
}

// checkOnlyWinnerWrote asserts the losers' writes were rolled back with
// their transactions: only the winner's token exists.
func checkOnlyWinnerWrote(t *testing.T, winner int, get func(i int) error) {
	t.Helper()
	for i := range racers {
		err := get(i)
		switch {
		case i == winner && err != nil:
			t.Errorf("winner %d's token: %v", i, err)
		case i != winner && !errors.Is(err, fosite.ErrNotFound):
			t.Errorf("loser %d's token: err = %v, want fosite.ErrNotFound", i, err)
		}
	}
}
