package storagetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// lockoutCases check the lockout facts: rows read as zero when missing,
// are written and cleared per account and device, and — the property the
// lockout rests on — counting under LockLockout is exact when many
// attempts race, which on PostgreSQL needs the row lock (SQLite's
// serialised writers would hide its absence).
func lockoutCases() []suiteCase {
	return []suiteCase{
		{"Lockout/MissingFactsReadAsZero", func(t *testing.T, s *storage.Store, _ *Clock) {
			createUser(t, s, "u1", "alice")
			a, d, err := s.Lockout(t.Context(), "u1", "dev")
			if err != nil || a.Failures != 0 || a.LockedAt != nil || d.Failures != 0 || d.DeviceID != "dev" || a.UserID != "u1" {
				t.Fatalf("Lockout = %+v, %+v, %v", a, d, err)
			}
			ad, err := s.AddressLockout(t.Context(), "192.0.2.1")
			if err != nil || ad.Failures != 0 || ad.IP != "192.0.2.1" {
				t.Fatalf("AddressLockout = %+v, %v", ad, err)
			}
		}},
		{"Lockout/SaveClearAndUnlock", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			now := clk.Now().UTC()
			save := func(dev string, locked bool) {
				t.Helper()
				err := s.InTx(t.Context(), func(ctx context.Context) error {
					a, d, err := s.LockLockout(ctx, "u1", dev)
					if err != nil {
						return err
					}
					a.Failures++
					a.WindowStart = &now
					d.Failures = 2
					if locked {
						d.LockedAt = &now
					}
					return s.SaveLockout(ctx, a, &d)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			save("phone", true)
			save("laptop", false)
			a, d, err := s.Lockout(t.Context(), "u1", "phone")
			if err != nil || a.Failures != 2 || a.WindowStart == nil || !a.WindowStart.Equal(now) || d.LockedAt == nil {
				t.Fatalf("after two saves: %+v %+v %v", a, d, err)
			}
			devices, err := s.DeviceLockouts(t.Context(), "u1")
			if err != nil || len(devices) != 2 || devices[0].DeviceID != "laptop" {
				t.Fatalf("DeviceLockouts = %+v, %v", devices, err)
			}
			if err := s.ClearLockout(t.Context(), "u1", "laptop"); err != nil {
				t.Fatal(err)
			}
			if a, d, _ := s.Lockout(t.Context(), "u1", "laptop"); a.Failures != 0 || d.Failures != 0 {
				t.Fatalf("after a success: %+v %+v", a, d)
			}
			if _, d, _ := s.Lockout(t.Context(), "u1", "phone"); d.LockedAt == nil {
				t.Fatal("a success on one device cleared another device's lock")
			}
			if ok, err := s.Unlock(t.Context(), "u1", "phone"); err != nil || !ok {
				t.Fatalf("Unlock(phone) = %v, %v", ok, err)
			}
			if ok, err := s.Unlock(t.Context(), "u1", ""); err != nil || ok {
				t.Fatalf("Unlock of nothing = %v, %v, want false", ok, err)
			}
		}},
		{"Lockout/LockLockoutNeedsATransaction", func(t *testing.T, s *storage.Store, _ *Clock) {
			createUser(t, s, "u1", "alice")
			if _, _, err := s.LockLockout(t.Context(), "u1", ""); err == nil {
				t.Fatal("LockLockout outside a transaction succeeded")
			}
			if _, err := s.LockAddress(t.Context(), "192.0.2.1"); err == nil {
				t.Fatal("LockAddress outside a transaction succeeded")
			}
		}},
		{"Concurrency/LockoutCountsExactly", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			const attempts, limit = 50, 5
			var counted, address atomic.Int64
			var wg sync.WaitGroup
			for range attempts {
				wg.Go(func() {
					err := s.InTx(context.Background(), func(ctx context.Context) error {
						a, _, err := s.LockLockout(ctx, "u1", "")
						if err != nil {
							return err
						}
						if a.Failures >= limit {
							return nil // locked: not counted again
						}
						a.Failures++
						counted.Add(1)
						return s.SaveLockout(ctx, a, nil)
					})
					if err != nil {
						t.Error(err)
					}
					err = s.InTx(context.Background(), func(ctx context.Context) error {
						a, err := s.LockAddress(ctx, "192.0.2.1")
						if err != nil {
							return err
						}
						a.Failures++
						address.Add(1)
						return s.SaveAddress(ctx, a)
					})
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			a, _, err := s.Lockout(t.Context(), "u1", "")
			if err != nil || a.Failures != limit || counted.Load() != limit {
				t.Fatalf("%d racing failures: stored %d, counted %d; want exactly %d (%v)", attempts, a.Failures, counted.Load(), limit, err)
			}
			ad, err := s.AddressLockout(t.Context(), "192.0.2.1")
			if err != nil || ad.Failures != attempts {
				t.Fatalf("address counted %d of %d racing failures (%v)", ad.Failures, attempts, err)
			}
			purged, err := s.PurgeAddressLockouts(t.Context(), clk.Now().Add(time.Second))
			if err != nil || purged != 1 {
				t.Fatalf("purge = %d, %v", purged, err)
			}
		}},
	}
}
