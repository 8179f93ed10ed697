package storagetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// passwordCases check what is kept of passwords: the write with its facts
// and time, a history trimmed to what the policy needs, the marks an
// administrator sets, and a login flow moved to its password-change stage
// exactly once.
func passwordCases() []suiteCase {
	set := func(t *testing.T, s *storage.Store, clk *Clock, userID, hash string, keep int) {
		t.Helper()
		must(t, "SetPassword", s.SetPassword(t.Context(), userID, storage.PasswordWrite{
			Hash: hash, Facts: `{"length":12}`, At: clk.Now(), Keep: keep,
		}))
	}
	history := func(t *testing.T, s *storage.Store, userID string) []string {
		t.Helper()
		entries, err := s.PasswordHistory(t.Context(), userID, 100)
		must(t, "PasswordHistory", err)
		out := make([]string, len(entries))
		for i, e := range entries {
			out[i] = e.PasswordHash
		}
		return out
	}
	return []suiteCase{
		{"Passwords/SetRecordsFactsAndTime", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			must(t, "SetPasswordMustChange", s.SetPasswordMustChange(t.Context(), "u1", true))
			clk.Advance(time.Hour)
			set(t, s, clk, "u1", "h1", 0)
			u, err := s.User(t.Context(), "u1")
			must(t, "User", err)
			if u.PasswordHash != "h1" || u.PasswordFacts != `{"length":12}` || u.PasswordMustChange {
				t.Errorf("after SetPassword: hash %q facts %q must change %v", u.PasswordHash, u.PasswordFacts, u.PasswordMustChange)
			}
			if u.PasswordChangedAt == nil || !u.PasswordChangedAt.Equal(clk.Now()) {
				t.Errorf("password_changed_at = %v, want %v", u.PasswordChangedAt, clk.Now())
			}
			if err := s.SetPassword(t.Context(), "nobody", storage.PasswordWrite{Hash: "x", At: clk.Now()}); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("SetPassword of an unknown user: %v, want ErrNotFound", err)
			}
		}},
		{"Passwords/HistoryKeepsNewest", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			set(t, s, clk, "u2", "bob-1", 3)
			for i := 1; i <= 5; i++ {
				set(t, s, clk, "u1", fmt.Sprintf("h%d", i), 3)
				// Same instant twice: the trim must still keep exactly 3.
				if i%2 == 0 {
					clk.Advance(time.Minute)
				}
			}
			if got := fmt.Sprint(history(t, s, "u1")); got != "[h5 h4 h3]" {
				t.Errorf("history = %s, want [h5 h4 h3]", got)
			}
			if got := fmt.Sprint(history(t, s, "u2")); got != "[bob-1]" {
				t.Errorf("another user's history = %s, want [bob-1]", got)
			}
			set(t, s, clk, "u1", "h6", 0)
			if got := history(t, s, "u1"); len(got) != 0 {
				t.Errorf("history after a write that keeps none = %v, want empty", got)
			}
		}},
		{"Passwords/Expiry", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			at := clk.Now().Add(48 * time.Hour)
			must(t, "SetUserExpiry", s.SetUserExpiry(t.Context(), "u1", &at))
			u, err := s.User(t.Context(), "u1")
			must(t, "User", err)
			if u.ExpiresAt == nil || !u.ExpiresAt.Equal(at) {
				t.Fatalf("expires_at = %v, want %v", u.ExpiresAt, at)
			}
			must(t, "SetUserExpiry", s.SetUserExpiry(t.Context(), "u1", nil))
			if u, _ = s.User(t.Context(), "u1"); u.ExpiresAt != nil {
				t.Errorf("expires_at after clearing = %v, want nil", u.ExpiresAt)
			}
			if err := s.SetUserExpiry(t.Context(), "nobody", nil); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("SetUserExpiry of an unknown user: %v, want ErrNotFound", err)
			}
		}},
		{"Passwords/FlowStageOnceUnderConcurrency", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			now := clk.Now()
			must(t, "CreateLoginFlow", s.CreateLoginFlow(t.Context(), &storage.LoginFlow{
				ID: "f1", BrowserBinding: "b", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
			}))
			const n = 20
			var (
				wg        sync.WaitGroup
				mu        sync.Mutex
				won, lost int
			)
			for range n {
				wg.Go(func() {
					err := s.StageLoginFlow(t.Context(), "f1", "u1", storage.FlowStagePasswordChange)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						won++
					case errors.Is(err, storage.ErrAlreadyUsed):
						lost++
					default:
						t.Errorf("StageLoginFlow: %v", err)
					}
				})
			}
			wg.Wait()
			if won != 1 || lost != n-1 {
				t.Errorf("%d parallel stagings: %d won, %d refused; want 1 and %d", n, won, lost, n-1)
			}
			f, err := s.LoginFlow(t.Context(), "f1")
			must(t, "LoginFlow", err)
			if f.Stage != storage.FlowStagePasswordChange || f.UserID != "u1" || f.CompletedAt != nil {
				t.Errorf("staged flow: stage %q user %q completed %v", f.Stage, f.UserID, f.CompletedAt)
			}
			must(t, "CompleteLoginFlow", s.CompleteLoginFlow(t.Context(), "f1", "u1", []string{"pwd"}, clk.Now()))
			if err := s.StageLoginFlow(t.Context(), "f1", "u1", storage.FlowStagePasswordChange); !errors.Is(err, storage.ErrAlreadyUsed) {
				t.Errorf("staging a completed flow: %v, want ErrAlreadyUsed", err)
			}
		}},
	}
}
