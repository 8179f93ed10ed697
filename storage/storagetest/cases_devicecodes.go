package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// deviceCodeCases check the device authorization grant's requests
// (RFC 8628): lookup by user code while pending and live, one decision per
// request under parallel answers, the polling interval's growth on polls
// that come too soon — exactly, under parallel polls — and one redemption
// per approval.
func deviceCodeCases() []suiteCase {
	const lifetime = 10 * time.Minute
	newCode := func(t *testing.T, s *storage.Store, clk *Clock, clientID, name string, interval int) *storage.DeviceCode {
		t.Helper()
		d := &storage.DeviceCode{
			DeviceCodeHash: "dc-" + name, UserCodeHash: "uc-" + name, ClientID: clientID,
			Scopes: []string{"openid", "offline_access"}, Audience: []string{"https://api.test"},
			Interval: interval, ExpiresAt: clk.Now().Add(lifetime),
		}
		must(t, "CreateDeviceCode("+name+")", s.CreateDeviceCode(t.Context(), d))
		return d
	}
	approve := func(t *testing.T, s *storage.Store, clk *Clock, name, userID string) {
		t.Helper()
		must(t, "approve "+name, s.DecideDeviceCode(t.Context(), "uc-"+name, true, userID,
			clk.Now().Add(-time.Minute), []string{"pwd", "otp"}, "urn:mfa", clk.Now()))
	}
	// status reads a code's status by polling it: the only read by device
	// code there is.
	status := func(t *testing.T, s *storage.Store, clk *Clock, clientID, name string) *storage.DeviceCode {
		t.Helper()
		d, _, err := s.PollDeviceCode(t.Context(), "dc-"+name, clientID, clk.Now())
		must(t, "PollDeviceCode("+name+")", err)
		return d
	}
	return []suiteCase{
		{"DeviceCodes/CreateLookup", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			newCode(t, s, clk, "tv", "a", 7)
			d, err := s.DeviceCodeByUserCode(ctx, "uc-a", clk.Now())
			must(t, "DeviceCodeByUserCode", err)
			if d.DeviceCodeHash != "dc-a" || d.UserCodeHash != "uc-a" || d.ClientID != "tv" ||
				!slices.Equal(d.Scopes, []string{"openid", "offline_access"}) || !slices.Equal(d.Audience, []string{"https://api.test"}) ||
				d.Status != storage.DeviceCodePending || d.UserID != "" || d.AuthTime != nil || len(d.AMR) != 0 || d.ACR != "" ||
				d.Interval != 7 || d.LastPolledAt != nil || !d.CreatedAt.Equal(epoch()) || !d.ExpiresAt.Equal(epoch().Add(lifetime)) ||
				d.DecidedAt != nil || d.RedeemedAt != nil {
				t.Errorf("DeviceCodeByUserCode = %+v", d)
			}
			_, err = s.DeviceCodeByUserCode(ctx, "uc-nope", clk.Now())
			wantErr(t, "unknown user code", err, storage.ErrNotFound)
			_, err = s.DeviceCodeByUserCode(ctx, "dc-a", clk.Now())
			wantErr(t, "device code hash as user code", err, storage.ErrNotFound)
			_, err = s.DeviceCodeByUserCode(ctx, "uc-\x00", clk.Now())
			wantErr(t, "unstorable user code", err, storage.ErrNotFound)

			// No interval given: RFC 8628's default.
			if d := newCode(t, s, clk, "tv", "b", 0); d.Interval != 5 {
				t.Errorf("default interval = %d, want 5", d.Interval)
			}
			if d, _ := s.DeviceCodeByUserCode(ctx, "uc-b", clk.Now()); d == nil || d.Interval != 5 {
				t.Errorf("stored default interval: %+v", d)
			}

			now := clk.Now()
			valid := func() storage.DeviceCode {
				return storage.DeviceCode{DeviceCodeHash: "dc-x", UserCodeHash: "uc-x", ClientID: "tv", ExpiresAt: now.Add(lifetime)}
			}
			for _, tc := range []struct {
				name string
				edit func(*storage.DeviceCode)
				want error // nil: any error
			}{
				{"no device code hash", func(d *storage.DeviceCode) { d.DeviceCodeHash = "" }, nil},
				{"no user code hash", func(d *storage.DeviceCode) { d.UserCodeHash = "" }, nil},
				{"no client", func(d *storage.DeviceCode) { d.ClientID = "" }, nil},
				{"NUL in a scope", func(d *storage.DeviceCode) { d.Scopes = []string{"a\x00"} }, nil},
				{"already approved", func(d *storage.DeviceCode) { d.Status = storage.DeviceCodeApproved }, nil},
				{"with a user", func(d *storage.DeviceCode) { d.UserID = "u1" }, nil},
				{"already polled", func(d *storage.DeviceCode) { d.LastPolledAt = &now }, nil},
				{"negative interval", func(d *storage.DeviceCode) { d.Interval = -1 }, nil},
				{"no expiry", func(d *storage.DeviceCode) { d.ExpiresAt = time.Time{} }, nil},
				{"unknown client", func(d *storage.DeviceCode) { d.ClientID = "nobody" }, storage.ErrNotFound},
			} {
				d := valid()
				tc.edit(&d)
				err := s.CreateDeviceCode(ctx, &d)
				if tc.want == nil && err == nil {
					t.Errorf("%s: created", tc.name)
				} else if tc.want != nil {
					wantErr(t, tc.name, err, tc.want)
				}
			}
			if _, err := s.DeviceCodeByUserCode(ctx, "uc-x", clk.Now()); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("a refused device code was stored: %v", err)
			}
		}},
		{"DeviceCodes/Expiry", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			createUser(t, s, "u1", "alice")
			newCode(t, s, clk, "tv", "a", 5)
			exp := clk.Now().Add(lifetime)
			if _, err := s.DeviceCodeByUserCode(ctx, "uc-a", exp.Add(-time.Second)); err != nil {
				t.Errorf("lookup a second before expiry: %v", err)
			}
			_, err := s.DeviceCodeByUserCode(ctx, "uc-a", exp)
			wantErr(t, "lookup at expiry", err, storage.ErrNotFound)
			_, err = s.DeviceCodeByUserCode(ctx, "uc-a", exp.Add(time.Hour))
			wantErr(t, "lookup after expiry", err, storage.ErrNotFound)
			wantErr(t, "approve after expiry", s.DecideDeviceCode(ctx, "uc-a", true, "u1", clk.Now(), nil, "", exp), storage.ErrNotFound)
			wantErr(t, "deny after expiry", s.DecideDeviceCode(ctx, "uc-a", false, "", time.Time{}, nil, "", exp), storage.ErrNotFound)
			// The client still learns the status; it judges the expiry.
			d, _, err := s.PollDeviceCode(ctx, "dc-a", "tv", exp.Add(time.Hour))
			must(t, "poll after expiry", err)
			if d.Status != storage.DeviceCodePending || !d.ExpiresAt.Equal(exp) {
				t.Errorf("expired code = %+v, want still pending, expiring at %v", d, exp)
			}
		}},
		{"DeviceCodes/CodeConflict", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			newCode(t, s, clk, "tv", "a", 5)
			exp := clk.Now().Add(lifetime)
			wantErr(t, "taken user code", s.CreateDeviceCode(ctx, &storage.DeviceCode{
				DeviceCodeHash: "dc-other", UserCodeHash: "uc-a", ClientID: "tv", ExpiresAt: exp,
			}), storage.ErrConflict)
			wantErr(t, "taken device code", s.CreateDeviceCode(ctx, &storage.DeviceCode{
				DeviceCodeHash: "dc-a", UserCodeHash: "uc-other", ClientID: "tv", ExpiresAt: exp,
			}), storage.ErrConflict)
			// A new draw goes through.
			newCode(t, s, clk, "tv", "b", 5)
		}},
		{"DeviceCodes/ApproveThenDeny", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			createUser(t, s, "u1", "alice")
			newCode(t, s, clk, "tv", "a", 5)
			clk.Advance(time.Minute)
			wantErr(t, "approve for an unknown account",
				s.DecideDeviceCode(ctx, "uc-a", true, "nobody", clk.Now(), []string{"pwd"}, "", clk.Now()), storage.ErrNotFound)
			if err := s.DecideDeviceCode(ctx, "uc-a", true, "", clk.Now(), nil, "", clk.Now()); err == nil {
				t.Error("approved without a user")
			}
			approve(t, s, clk, "a", "u1")
			wantErr(t, "deny after approval",
				s.DecideDeviceCode(ctx, "uc-a", false, "u1", clk.Now(), nil, "", clk.Now()), storage.ErrAlreadyUsed)
			wantErr(t, "approve again",
				s.DecideDeviceCode(ctx, "uc-a", true, "u1", clk.Now(), nil, "", clk.Now()), storage.ErrAlreadyUsed)
			wantErr(t, "decide an unknown code",
				s.DecideDeviceCode(ctx, "uc-nope", true, "u1", clk.Now(), nil, "", clk.Now()), storage.ErrNotFound)
			_, err := s.DeviceCodeByUserCode(ctx, "uc-a", clk.Now())
			wantErr(t, "lookup of a decided code", err, storage.ErrNotFound)
			d := status(t, s, clk, "tv", "a")
			if d.Status != storage.DeviceCodeApproved || d.UserID != "u1" || d.AuthTime == nil ||
				!d.AuthTime.Equal(clk.Now().Add(-time.Minute)) || !slices.Equal(d.AMR, []string{"pwd", "otp"}) ||
				d.ACR != "urn:mfa" || d.DecidedAt == nil || !d.DecidedAt.Equal(clk.Now()) || d.RedeemedAt != nil {
				t.Errorf("approved code = %+v", d)
			}
		}},
		{"DeviceCodes/DenyIsFinal", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			createUser(t, s, "u1", "alice")
			newCode(t, s, clk, "tv", "a", 5)
			must(t, "deny", s.DecideDeviceCode(ctx, "uc-a", false, "u1", clk.Now(), []string{"pwd"}, "x", clk.Now()))
			wantErr(t, "approve after deny",
				s.DecideDeviceCode(ctx, "uc-a", true, "u1", clk.Now(), []string{"pwd"}, "", clk.Now()), storage.ErrAlreadyUsed)
			wantErr(t, "deny again",
				s.DecideDeviceCode(ctx, "uc-a", false, "", time.Time{}, nil, "", clk.Now()), storage.ErrAlreadyUsed)
			d := status(t, s, clk, "tv", "a")
			if d.Status != storage.DeviceCodeDenied || d.UserID != "" || d.AuthTime != nil || d.DecidedAt == nil {
				t.Errorf("denied code = %+v, want denied with no user", d)
			}
			wantErr(t, "redeem a denied code", s.RedeemDeviceCode(ctx, "dc-a", clk.Now()), storage.ErrAlreadyUsed)
		}},
		{"DeviceCodes/ParallelDecisionsOneWins", func(t *testing.T, s *storage.Store, clk *Clock) {
			createClient(t, s, "tv")
			for i := range racers {
				createUser(t, s, fmt.Sprintf("u%d", i), fmt.Sprintf("user%d", i))
			}
			newCode(t, s, clk, "tv", "a", 5)
			// Half approve, each as another account, half deny.
			winner := checkOneWinner(t, race(func(i int) error {
				return s.DecideDeviceCode(t.Context(), "uc-a", i%2 == 0, fmt.Sprintf("u%d", i),
					clk.Now(), []string{"pwd"}, "", clk.Now())
			}))
			d := status(t, s, clk, "tv", "a")
			if winner%2 == 0 {
				if d.Status != storage.DeviceCodeApproved || d.UserID != fmt.Sprintf("u%d", winner) {
					t.Errorf("code = %+v, want approved by the winner u%d", d, winner)
				}
			} else if d.Status != storage.DeviceCodeDenied || d.UserID != "" {
				t.Errorf("code = %+v, want denied by the winner %d", d, winner)
			}
		}},
		{"DeviceCodes/PollOtherClient", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			createClient(t, s, "other")
			newCode(t, s, clk, "tv", "a", 5)
			_, _, err := s.PollDeviceCode(ctx, "dc-a", "other", clk.Now())
			wantErr(t, "poll by another client", err, storage.ErrNotFound)
			_, _, err = s.PollDeviceCode(ctx, "dc-nope", "tv", clk.Now())
			wantErr(t, "poll of an unknown code", err, storage.ErrNotFound)
			_, _, err = s.PollDeviceCode(ctx, "uc-a", "tv", clk.Now())
			wantErr(t, "poll by user code", err, storage.ErrNotFound)
			// The other client's poll counted for nothing: the owner's
			// first poll, at the same instant, is on time.
			d, slow, err := s.PollDeviceCode(ctx, "dc-a", "tv", clk.Now())
			must(t, "poll by its client", err)
			if slow || d.Interval != 5 || d.LastPolledAt == nil || !d.LastPolledAt.Equal(clk.Now()) {
				t.Errorf("first poll: slowDown %v, %+v; want on time, interval 5, polled now", slow, d)
			}
		}},
		{"DeviceCodes/PollInterval", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			newCode(t, s, clk, "tv", "a", 5)
			poll := func(wantSlow bool, wantInterval int) {
				t.Helper()
				d, slow, err := s.PollDeviceCode(ctx, "dc-a", "tv", clk.Now())
				must(t, "PollDeviceCode", err)
				if slow != wantSlow || d.Interval != wantInterval || d.LastPolledAt == nil || !d.LastPolledAt.Equal(clk.Now()) {
					t.Errorf("poll at +%v: slowDown %v, interval %d, last polled %v; want %v, %d, now",
						clk.Now().Sub(epoch()), slow, d.Interval, d.LastPolledAt, wantSlow, wantInterval)
				}
			}
			poll(false, 5) // the first poll is never too soon
			for range 3 {
				clk.Advance(5 * time.Second) // exactly the interval is on time
				poll(false, 5)
			}
			clk.Advance(7 * time.Second)
			poll(false, 5)
			clk.Advance(5*time.Second - time.Millisecond)
			poll(true, 10)
			clk.Advance(time.Second)
			poll(true, 15)
			clk.Advance(14 * time.Second) // measured from the last poll, even a slow one
			poll(true, 20)
			clk.Advance(20 * time.Second)
			poll(false, 20) // the interval stays grown
			clk.Advance(20 * time.Second)
			poll(false, 20)
		}},
		{"DeviceCodes/ParallelPollsSlowDownExactly", func(t *testing.T, s *storage.Store, clk *Clock) {
			createClient(t, s, "tv")
			const initial = 5
			newCode(t, s, clk, "tv", "a", initial)
			slows := make([]bool, racers)
			intervals := make([]int, racers)
			for i, err := range race(func(i int) error {
				d, slow, err := s.PollDeviceCode(t.Context(), "dc-a", "tv", clk.Now())
				if err == nil {
					slows[i], intervals[i] = slow, d.Interval
				}
				return err
			}) {
				must(t, fmt.Sprintf("poll %d", i), err)
			}
			var nSlow int
			for _, slow := range slows {
				if slow {
					nSlow++
				}
			}
			// All at one instant: the first is on time, every later one too
			// soon, and each too-soon poll adds 5 seconds — none lost.
			if nSlow != racers-1 {
				t.Errorf("%d of %d parallel polls slowed down, want %d", nSlow, racers, racers-1)
			}
			// Read back without polling (the code is still pending).
			d, err := s.DeviceCodeByUserCode(t.Context(), "uc-a", clk.Now())
			must(t, "DeviceCodeByUserCode", err)
			if want := initial + slowDownStepSeconds*nSlow; d.Interval != want {
				t.Errorf("interval after %d slow parallel polls = %d, want %d", nSlow, d.Interval, want)
			}
			if want := initial + slowDownStepSeconds*(racers-1); d.Interval != want {
				t.Errorf("interval = %d, want %d = %d + 5·%d", d.Interval, want, initial, racers-1)
			}
			if d.LastPolledAt == nil || !d.LastPolledAt.Equal(clk.Now()) {
				t.Errorf("last polled at %v, want %v", d.LastPolledAt, clk.Now())
			}
			// The polls were counted one after the other: each saw a
			// distinct interval, initial + 5·k for k = 0 … racers-1.
			slices.Sort(intervals)
			for k, got := range intervals {
				if want := initial + slowDownStepSeconds*k; got != want {
					t.Errorf("parallel polls returned intervals %v, want %d, %d, … by steps of 5", intervals, initial, initial+5)
					break
				}
			}
		}},
		{"DeviceCodes/RedeemOnce", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			createUser(t, s, "u1", "alice")
			newCode(t, s, clk, "tv", "a", 5)
			wantErr(t, "redeem a pending code", s.RedeemDeviceCode(ctx, "dc-a", clk.Now()), storage.ErrAlreadyUsed)
			wantErr(t, "redeem an unknown code", s.RedeemDeviceCode(ctx, "dc-nope", clk.Now()), storage.ErrNotFound)
			approve(t, s, clk, "a", "u1")
			clk.Advance(time.Second)
			checkOneWinner(t, race(func(int) error {
				return s.RedeemDeviceCode(t.Context(), "dc-a", clk.Now())
			}))
			d := status(t, s, clk, "tv", "a")
			if d.Status != storage.DeviceCodeRedeemed || d.RedeemedAt == nil || !d.RedeemedAt.Equal(clk.Now()) || d.UserID != "u1" {
				t.Errorf("redeemed code = %+v", d)
			}
			wantErr(t, "redeem again", s.RedeemDeviceCode(ctx, "dc-a", clk.Now()), storage.ErrAlreadyUsed)
			wantErr(t, "decide a redeemed code",
				s.DecideDeviceCode(ctx, "uc-a", false, "", time.Time{}, nil, "", clk.Now()), storage.ErrAlreadyUsed)
		}},
		{"DeviceCodes/DeletedUserOrClient", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			createClient(t, s, "tv2")
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			newCode(t, s, clk, "tv", "a", 5)
			newCode(t, s, clk, "tv", "b", 5)
			newCode(t, s, clk, "tv2", "c", 5)
			approve(t, s, clk, "a", "u1")
			approve(t, s, clk, "b", "u2")
			must(t, "DeleteUser", s.DeleteUser(ctx, "u1"))
			// An approval by a deleted account is gone with it.
			_, _, err := s.PollDeviceCode(ctx, "dc-a", "tv", clk.Now())
			wantErr(t, "poll a code approved by a deleted user", err, storage.ErrNotFound)
			wantErr(t, "redeem a code approved by a deleted user", s.RedeemDeviceCode(ctx, "dc-a", clk.Now()), storage.ErrNotFound)
			must(t, "redeem another user's code", s.RedeemDeviceCode(ctx, "dc-b", clk.Now()))
			must(t, "DeleteClient", s.DeleteClient(ctx, "tv2"))
			_, err = s.DeviceCodeByUserCode(ctx, "uc-c", clk.Now())
			wantErr(t, "lookup a deleted client's code", err, storage.ErrNotFound)
		}},
		{"DeviceCodes/PurgeExpired", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "tv")
			createUser(t, s, "u1", "alice")
			newCode(t, s, clk, "tv", "old", 5)
			newCode(t, s, clk, "tv", "old-redeemed", 5)
			approve(t, s, clk, "old-redeemed", "u1")
			must(t, "redeem", s.RedeemDeviceCode(ctx, "dc-old-redeemed", clk.Now()))
			clk.Advance(time.Minute)
			newCode(t, s, clk, "tv", "live", 5)
			cutoff := epoch().Add(lifetime + time.Second) // after old*, before live
			n, err := s.DeleteExpiredDeviceCodes(ctx, cutoff)
			must(t, "DeleteExpiredDeviceCodes", err)
			if n != 2 {
				t.Errorf("purged %d, want 2", n)
			}
			for _, name := range []string{"old", "old-redeemed"} {
				_, _, err := s.PollDeviceCode(ctx, "dc-"+name, "tv", clk.Now())
				wantErr(t, "poll purged "+name, err, storage.ErrNotFound)
			}
			if _, err := s.DeviceCodeByUserCode(ctx, "uc-live", clk.Now()); err != nil {
				t.Errorf("live code after purge: %v", err)
			}
			if n, _ := s.DeleteExpiredDeviceCodes(ctx, cutoff); n != 0 {
				t.Errorf("second purge removed %d, want 0", n)
			}
		}},
	}
}

// slowDownStepSeconds is what RFC 8628 §3.5 adds to the interval per
// too-soon poll.
const slowDownStepSeconds = 5
