package storagetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// accountLinkCases check the one-time links mailed to people (each works
// once, for its kind only, until it expires or is superseded, under any
// number of parallel uses) and the rate budgets (parallel attempts get
// distinct counts and exactly the limit passes).
func accountLinkCases() []suiteCase {
	create := func(t *testing.T, s *storage.Store, clk *Clock, userID, kind, token string, ttl time.Duration) *storage.AccountLink {
		t.Helper()
		l := &storage.AccountLink{
			Kind: kind, TokenHash: storage.HashLinkToken(token), UserID: userID,
			Email: userID + "@example.test", ExpiresAt: clk.Now().Add(ttl),
		}
		must(t, "CreateAccountLink", s.CreateAccountLink(t.Context(), l))
		return l
	}
	use := func(t *testing.T, s *storage.Store, kind, token string) (*storage.AccountLink, error) {
		t.Helper()
		return s.UseAccountLink(t.Context(), kind, storage.HashLinkToken(token))
	}
	// usable reports whether a link can still be used, using it up.
	usable := func(t *testing.T, s *storage.Store, kind, token string) bool {
		t.Helper()
		_, err := use(t, s, kind, token)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("UseAccountLink(%s): %v", kind, err)
		}
		return err == nil
	}
	take := func(t *testing.T, s *storage.Store, key string, window time.Duration, limit int64) (bool, int64) {
		t.Helper()
		ok, n, err := s.TakeRateBudget(t.Context(), key, window, limit)
		must(t, "TakeRateBudget", err)
		return ok, n
	}
	const reset, verify = storage.AccountLinkReset, storage.AccountLinkVerifyEmail
	return []suiteCase{
		{"AccountLinks/UseOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			want := create(t, s, clk, "u1", verify, "tok-1", time.Hour)
			clk.Advance(time.Minute)
			got, err := use(t, s, verify, "tok-1")
			must(t, "UseAccountLink", err)
			if got.ID != want.ID || got.ID == "" || got.Kind != verify || got.UserID != "u1" ||
				got.Email != "u1@example.test" || got.TokenHash != storage.HashLinkToken("tok-1") {
				t.Errorf("used link = %+v, want %+v", got, want)
			}
			if !got.CreatedAt.Equal(epoch()) || !got.ExpiresAt.Equal(epoch().Add(time.Hour)) {
				t.Errorf("created/expires = %v/%v, want %v/%v", got.CreatedAt, got.ExpiresAt, epoch(), epoch().Add(time.Hour))
			}
			if got.UsedAt == nil || !got.UsedAt.Equal(clk.Now()) {
				t.Errorf("used at = %v, want the store clock %v", got.UsedAt, clk.Now())
			}
			_, err = use(t, s, verify, "tok-1")
			wantErr(t, "second use", err, storage.ErrNotFound)
		}},
		{"AccountLinks/KindMustMatch", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			create(t, s, clk, "u1", verify, "tok-1", time.Hour)
			for _, kind := range []string{reset, storage.AccountLinkActivation, "", "VERIFY_EMAIL"} {
				_, err := s.PeekAccountLink(t.Context(), kind, storage.HashLinkToken("tok-1"))
				wantErr(t, "peek as "+kind, err, storage.ErrNotFound)
				_, err = use(t, s, kind, "tok-1")
				wantErr(t, "use as "+kind, err, storage.ErrNotFound)
			}
			if !usable(t, s, verify, "tok-1") {
				t.Error("uses as other kinds consumed the link")
			}
		}},
		{"AccountLinks/Expiry", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			create(t, s, clk, "u1", reset, "tok-1", time.Hour)
			create(t, s, clk, "u1", reset, "tok-2", time.Hour)
			clk.Advance(time.Hour - time.Second)
			if !usable(t, s, reset, "tok-1") {
				t.Fatal("refused a second before expiry")
			}
			clk.Advance(time.Second)
			_, err := s.PeekAccountLink(t.Context(), reset, storage.HashLinkToken("tok-2"))
			wantErr(t, "peek at the instant of expiry", err, storage.ErrNotFound)
			if usable(t, s, reset, "tok-2") {
				t.Error("used at the instant of expiry")
			}
		}},
		{"AccountLinks/PeekDoesNotConsume", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			want := create(t, s, clk, "u1", reset, "tok-1", time.Hour)
			for i := range 2 {
				got, err := s.PeekAccountLink(t.Context(), reset, storage.HashLinkToken("tok-1"))
				must(t, "PeekAccountLink", err)
				if got.ID != want.ID || got.UserID != "u1" || got.Email != want.Email || got.UsedAt != nil {
					t.Errorf("peek %d = %+v, want %+v unused", i, got, want)
				}
			}
			if !usable(t, s, reset, "tok-1") {
				t.Fatal("peeking consumed the link")
			}
			_, err := s.PeekAccountLink(t.Context(), reset, storage.HashLinkToken("tok-1"))
			wantErr(t, "peek after use", err, storage.ErrNotFound)
		}},
		{"AccountLinks/InvalidateUserAndKindOnly", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			create(t, s, clk, "u1", reset, "u1-reset-a", time.Hour)
			create(t, s, clk, "u1", reset, "u1-reset-b", 2*time.Hour)
			create(t, s, clk, "u1", reset, "u1-reset-used", time.Hour)
			create(t, s, clk, "u1", reset, "u1-reset-expired", time.Minute)
			create(t, s, clk, "u1", verify, "u1-verify", time.Hour)
			create(t, s, clk, "u2", reset, "u2-reset", time.Hour)
			if !usable(t, s, reset, "u1-reset-used") {
				t.Fatal("fresh link refused")
			}
			clk.Advance(2 * time.Minute)

			n, err := s.InvalidateAccountLinks(t.Context(), "u1", reset)
			must(t, "InvalidateAccountLinks", err)
			if n != 2 {
				t.Errorf("invalidated %d links, want the 2 live ones", n)
			}
			for _, tok := range []string{"u1-reset-a", "u1-reset-b"} {
				if usable(t, s, reset, tok) {
					t.Errorf("%s survived invalidation", tok)
				}
			}
			if !usable(t, s, verify, "u1-verify") {
				t.Error("invalidating reset links killed a verification link")
			}
			if !usable(t, s, reset, "u2-reset") {
				t.Error("invalidating u1's links killed u2's")
			}
			if n, err := s.InvalidateAccountLinks(t.Context(), "u1", reset); err != nil || n != 0 {
				t.Errorf("second InvalidateAccountLinks = %d, %v; want 0, nil", n, err)
			}
			if _, err := s.InvalidateAccountLinks(t.Context(), "u1", "resets"); err == nil {
				t.Error("InvalidateAccountLinks accepted an unknown kind: a typo would leave links working")
			}
		}},
		{"AccountLinks/UnknownAndUnstorableTokens", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			create(t, s, clk, "u1", reset, "tok-1", time.Hour)
			h := storage.HashLinkToken("tok-1")
			// Straight from a URL: none may be an error other than not
			// found (anything else reads as an outage), none may touch tok-1.
			for _, hash := range []string{"", "nope", h + "\x00", h[:10] + "\xff", strings.Repeat("a", 4096)} {
				if _, err := s.PeekAccountLink(t.Context(), reset, hash); !errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable) {
					t.Errorf("PeekAccountLink(%q) = %v, want ErrNotFound", hash, err)
				}
				if _, err := s.UseAccountLink(t.Context(), reset, hash); !errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable) {
					t.Errorf("UseAccountLink(%q) = %v, want ErrNotFound", hash, err)
				}
			}
			if _, err := s.UseAccountLink(t.Context(), reset, "tok-1"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the raw token worked in place of its hash: %v", err)
			}
			if !usable(t, s, reset, "tok-1") {
				t.Error("tok-1 was used up by other lookups")
			}
		}},
		{"AccountLinks/CreateRefusals", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			create(t, s, clk, "u1", reset, "tok-1", time.Hour)
			link := func(mod func(l *storage.AccountLink)) *storage.AccountLink {
				l := &storage.AccountLink{Kind: verify, TokenHash: storage.HashLinkToken("fresh"), UserID: "u1", ExpiresAt: clk.Now().Add(time.Hour)}
				mod(l)
				return l
			}
			err := s.CreateAccountLink(t.Context(), link(func(l *storage.AccountLink) { l.TokenHash = storage.HashLinkToken("tok-1") }))
			wantErr(t, "duplicate token hash", err, storage.ErrConflict)
			err = s.CreateAccountLink(t.Context(), link(func(l *storage.AccountLink) { l.UserID = "ghost" }))
			wantErr(t, "unknown user", err, storage.ErrNotFound)
			for name, mod := range map[string]func(l *storage.AccountLink){
				"unknown kind":     func(l *storage.AccountLink) { l.Kind = "login" },
				"no token hash":    func(l *storage.AccountLink) { l.TokenHash = "" },
				"no user":          func(l *storage.AccountLink) { l.UserID = "" },
				"no expiry":        func(l *storage.AccountLink) { l.ExpiresAt = time.Time{} },
				"NUL in email":     func(l *storage.AccountLink) { l.Email = "a\x00@example.test" },
				"invalid UTF-8 id": func(l *storage.AccountLink) { l.ID = "id\xff" },
			} {
				if err := s.CreateAccountLink(t.Context(), link(mod)); err == nil || errors.Is(err, storage.ErrUnavailable) {
					t.Errorf("%s: CreateAccountLink = %v, want a refusal that is not an outage", name, err)
				}
			}
			if usable(t, s, verify, "fresh") {
				t.Error("a refused link was stored")
			}
		}},
		{"AccountLinks/DeleteExpired", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			create(t, s, clk, "u1", reset, "old", time.Minute)
			create(t, s, clk, "u1", reset, "new", time.Hour)
			clk.Advance(2 * time.Minute)
			n, err := s.DeleteExpiredAccountLinks(t.Context(), clk.Now())
			must(t, "DeleteExpiredAccountLinks", err)
			if n != 1 {
				t.Errorf("deleted %d links, want 1", n)
			}
			if !usable(t, s, reset, "new") {
				t.Error("the purge took a live link")
			}
		}},
		{"AccountLinks/GoWithTheirUser", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			create(t, s, clk, "u1", reset, "tok-1", time.Hour)
			must(t, "DeleteUser", s.DeleteUser(t.Context(), "u1"))
			if usable(t, s, reset, "tok-1") {
				t.Error("a deleted user's reset link still works")
			}
		}},
		{"AccountLinks/Tokens", func(t *testing.T, _ *storage.Store, _ *Clock) {
			tok1, hash1 := storage.NewAccountLinkToken()
			tok2, hash2 := storage.NewAccountLinkToken()
			if tok1 == tok2 || hash1 == hash2 {
				t.Error("two new tokens are equal")
			}
			if len(tok1) < 43 || hash1 != storage.HashLinkToken(tok1) || hash1 == tok1 {
				t.Errorf("token %q (hash %q): want 256 bits and hash = HashLinkToken(token)", tok1, hash1)
			}
			if got := storage.HashLinkToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
				t.Errorf("HashLinkToken(abc) = %q, want its lower-case hex SHA-256", got)
			}
		}},
		{"Concurrency/AccountLinkUsedOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			create(t, s, clk, "u1", reset, "tok-1", time.Hour)
			errs := race(func(int) error {
				_, err := s.UseAccountLink(t.Context(), reset, storage.HashLinkToken("tok-1"))
				return err
			})
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable):
					t.Errorf("racer %d: %v, want ErrNotFound", i, err)
				}
			}
			if wins != 1 {
				t.Errorf("%d of %d parallel uses succeeded, want exactly 1", wins, racers)
			}
		}},

		{"RateBudget/CountsAndWindows", func(t *testing.T, s *storage.Store, clk *Clock) {
			// The clock starts at 05:06:07, inside the minute from 05:06:00.
			for want := int64(1); want <= 3; want++ {
				ok, n := take(t, s, "register:ip:192.0.2.1", time.Minute, 2)
				if n != want || ok != (want <= 2) {
					t.Errorf("take %d = %v, %d; want %v, %d", want, ok, n, want <= 2, want)
				}
			}
			clk.Advance(52 * time.Second) // 05:06:59, the same window
			if ok, n := take(t, s, "register:ip:192.0.2.1", time.Minute, 2); ok || n != 4 {
				t.Errorf("take at the end of the window = %v, %d; want false, 4", ok, n)
			}
			clk.Advance(time.Second) // 05:07:00, a new window
			if ok, n := take(t, s, "register:ip:192.0.2.1", time.Minute, 2); !ok || n != 1 {
				t.Errorf("first take of a new window = %v, %d; want true, 1", ok, n)
			}
		}},
		{"RateBudget/KeysIndependent", func(t *testing.T, s *storage.Store, _ *Clock) {
			take(t, s, "a", time.Hour, 1)
			take(t, s, "a", time.Hour, 1)
			for _, key := range []string{"b", "A", "a ", strings.Repeat("k", storage.MaxRateKeyLen)} {
				if ok, n := take(t, s, key, time.Hour, 1); !ok || n != 1 {
					t.Errorf("first take of %.10q = %v, %d; want true, 1", key, ok, n)
				}
			}
		}},
		{"RateBudget/BadInput", func(t *testing.T, s *storage.Store, _ *Clock) {
			for _, tc := range []struct {
				name   string
				key    string
				window time.Duration
				limit  int64
			}{
				{"empty key", "", time.Minute, 5},
				{"NUL in key", "ip\x00", time.Minute, 5},
				{"invalid UTF-8 key", "ip\xff", time.Minute, 5},
				{"key too long", strings.Repeat("k", storage.MaxRateKeyLen+1), time.Minute, 5},
				{"zero window", "ip", 0, 5},
				{"sub-second window", "ip", time.Millisecond, 5},
				{"negative limit", "ip", time.Minute, -1},
			} {
				if _, _, err := s.TakeRateBudget(t.Context(), tc.key, tc.window, tc.limit); err == nil || errors.Is(err, storage.ErrUnavailable) {
					t.Errorf("%s: TakeRateBudget = %v, want a refusal that is not an outage", tc.name, err)
				}
			}
			if ok, n := take(t, s, "ip", time.Minute, 5); !ok || n != 1 {
				t.Errorf("after refusals, take = %v, %d; want true, 1 (refused input must count nothing)", ok, n)
			}
			if ok, n := take(t, s, "zero", time.Minute, 0); ok || n != 1 {
				t.Errorf("limit 0: take = %v, %d; want false, 1", ok, n)
			}
		}},
		{"RateBudget/DeleteExpired", func(t *testing.T, s *storage.Store, clk *Clock) {
			take(t, s, "old", time.Minute, 5)
			take(t, s, "long", time.Hour, 5)
			clk.Advance(2 * time.Minute)
			take(t, s, "new", time.Minute, 5)
			n, err := s.DeleteExpiredRateCounters(t.Context(), clk.Now())
			must(t, "DeleteExpiredRateCounters", err)
			if n != 1 {
				t.Errorf("deleted %d counters, want 1", n)
			}
			if _, n := take(t, s, "long", time.Hour, 5); n != 2 {
				t.Errorf("count of a live window after the purge = %d, want 2", n)
			}
			if _, n := take(t, s, "new", time.Minute, 5); n != 2 {
				t.Errorf("count of a live window after the purge = %d, want 2", n)
			}
		}},
		{"Concurrency/RateBudgetExactLimit", func(t *testing.T, s *storage.Store, _ *Clock) {
			const limit = 5
			allowed := make([]bool, racers)
			counts := make([]int64, racers)
			errs := race(func(i int) error {
				var err error
				allowed[i], counts[i], err = s.TakeRateBudget(t.Context(), "register:ip:192.0.2.1", time.Hour, limit)
				return err
			})
			passed := 0
			for i, err := range errs {
				if err != nil {
					t.Fatalf("racer %d: %v", i, err)
				}
				if allowed[i] != (counts[i] <= limit) {
					t.Errorf("racer %d: allowed = %v with count %d of limit %d", i, allowed[i], counts[i], limit)
				}
				if allowed[i] {
					passed++
				}
			}
			if passed != limit {
				t.Errorf("%d of %d parallel takes allowed, want exactly %d", passed, racers, limit)
			}
			slices.Sort(counts)
			for i, n := range counts {
				if n != int64(i+1) {
					t.Fatalf("counts = %v, want 1..%d each once", counts, racers)
				}
			}
		}},
	}
}
