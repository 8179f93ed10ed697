package authn

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// benchHash is as cheap as argon2 goes, so the benchmarks measure what
// the policy checks and their database work add to a sign-in, not the hash.
var benchHash = hashing.Argon2{Memory: 8, Iterations: 1, Parallelism: 1}

// benchPolicy has every lockout rule on (account, device, address) with
// thresholds no benchmark reaches, so that every failure is counted and
// none is refused by a lock, which would be cheaper.
func benchPolicy() policies.Policy {
	pol := policies.Defaults()
	pol.Lockout.MaxFailures = 1 << 30
	pol.Lockout.Device.MaxFailures = 1 << 30
	pol.Lockout.IP.MaxFailures = 1 << 30
	return pol
}

// BenchmarkPasswordLoginPolicyCost runs one sign-in at a time through two
// pipelines over one database, one without the lockout and one with it
// (address, account and device rules on), alternately: a wrong password
// (gates, counting under the row locks, the audit event) or a right one
// (gates, the audit event). added_ms is the difference of their means,
// what the brute-force defence costs a sign-in beyond the password hash,
// which both pay alike. Alternating matters on a VM whose commit latency
// drifts: two runs one after the other would compare two different disks.
//
//	go test -run XXX -bench PasswordLoginPolicyCost ./authn/
func BenchmarkPasswordLoginPolicyCost(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		for _, password := range []string{"wrong", lockPass} {
			b.Run(fmt.Sprintf("%s/right=%v", be.Name, password == lockPass), func(b *testing.B) {
				st := storagetest.OpenWithClock(b, freshURL(b, be.Name), time.Now)
				rec := audit.NewRecorder(st, nil, time.Now)
				accounts := NewAccounts(AccountsConfig{Store: st, Sessions: st, Hasher: benchHash, Recorder: rec})
				pol := benchPolicy()
				opts := []PipelineOption{WithPolicies(func(string) policies.Policy { return pol }), WithTransactions(st)}
				logger := slog.New(slog.DiscardHandler)
				pipelines := [2]*Pipeline{
					NewPipeline(st, benchHash, logger, rec, opts...),
					NewPipeline(st, benchHash, logger, rec, append(opts, WithLockout(st, accounts, nil))...),
				}
				if _, err := accounts.Create(context.Background(), UserSpec{Username: "alice", Password: lockPass}, Actor{}); err != nil {
					b.Fatal(err)
				}
				attempt := Attempt{Username: "alice", Password: password, IP: "192.0.2.1", DeviceID: "dev"}
				var spent [2]time.Duration
				b.ResetTimer()
				for i := range b.N {
					for k := range 2 {
						which := (i + k) % 2 // off first, then on first, …
						start := time.Now()
						out, err := pipelines[which].PasswordLogin(context.Background(), attempt)
						spent[which] += time.Since(start)
						if err != nil {
							b.Fatal(err)
						}
						if out.OK != (password == lockPass) {
							b.Fatalf("attempt %d: %+v", i, out.Decision)
						}
					}
				}
				off, on := ms(spent[0])/float64(b.N), ms(spent[1])/float64(b.N)
				b.ReportMetric(off, "off_ms/op")
				b.ReportMetric(on, "on_ms/op")
				b.ReportMetric(on-off, "added_ms/op")
			})
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// freshURL is a new empty database of the backend: a benchmark function
// runs several times, each needing its own.
func freshURL(b testing.TB, backend string) string {
	if backend == "postgres" {
		return storagetest.RequirePostgres(b)
	}
	return storagetest.SQLiteURL(b)
}

// Shape of the parallel load: wrong passwords for benchUsers accounts from
// benchAddresses client addresses, neither a multiple of the other, so
// that attempts at once mostly touch different rows, as in an attack
// spread over many accounts and addresses (one address alone would be
// blocked after ip.max_failures; one account, locked after max_failures).
// The attempts name no device, as an attacker's script does not.
const (
	benchUsers     = 200
	benchAddresses = 251
)

// BenchmarkLockoutDecisions counts wrong passwords from many goroutines
// at once, each a full attempt with its lockout decision (account and
// address rules) under the rows' locks; decisions/s is the figure. Every
// failure must be counted exactly, and the benchmark checks that it was:
// a figure from lost counts would be worthless. lockout=off is the same
// load without the lockout, the pipeline's own ceiling on this machine.
// peak_rss_MiB is the process's peak during the load alone; heap_sys_MiB
// the heap after it.
//
//	go test -run XXX -bench LockoutDecisions -cpu 2 ./authn/
func BenchmarkLockoutDecisions(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		for _, withLockout := range []bool{true, false} {
			name := be.Name + "/lockout=off"
			if withLockout {
				name = be.Name + "/lockout=on"
			}
			b.Run(name, func(b *testing.B) {
				st := storagetest.OpenWithClock(b, freshURL(b, be.Name), time.Now)
				rec := audit.NewRecorder(st, nil, time.Now)
				accounts := NewAccounts(AccountsConfig{Store: st, Sessions: st, Hasher: benchHash, Recorder: rec})
				pol := benchPolicy()
				opts := []PipelineOption{WithPolicies(func(string) policies.Policy { return pol }), WithTransactions(st)}
				if withLockout {
					opts = append(opts, WithLockout(st, accounts, nil))
				}
				p := NewPipeline(st, benchHash, slog.New(slog.DiscardHandler), rec, opts...)
				users := make([]string, benchUsers)
				for i := range users {
					u, err := accounts.Create(context.Background(), UserSpec{Username: fmt.Sprintf("user%d", i), Password: lockPass}, Actor{})
					if err != nil {
						b.Fatal(err)
					}
					users[i] = u.ID
				}
				resetPeakRSS()
				var next atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := next.Add(1)
						a := Attempt{Username: fmt.Sprintf("user%d", n%benchUsers), Password: "wrong", IP: benchAddress(n)}
						out, err := p.PasswordLogin(context.Background(), a)
						if err != nil || out.Reason != ReasonBadPassword || out.Decision.Reason != ReasonBadPassword {
							b.Errorf("attempt %d: %+v, %v", n, out.Decision, err)
							return
						}
					}
				})
				elapsed := time.Since(start)
				b.StopTimer()
				if withLockout {
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
					checkCounted(b, st, users, int64(b.N))
				} else {
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "attempts/s")
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap_sys_MiB")
				if peak, ok := peakRSS(); ok {
					b.ReportMetric(peak, "peak_rss_MiB")
				}
			})
		}
	}
}

func benchAddress(n int64) string {
	return fmt.Sprintf("198.51.100.%d", n%benchAddresses)
}

// checkCounted fails b unless the stored counters of the accounts and of
// the addresses each add up to exactly n failures.
func checkCounted(tb testing.TB, st *storage.Store, users []string, n int64) {
	tb.Helper()
	ctx := context.Background()
	var accounts, addresses int64
	for _, id := range users {
		a, _, err := st.Lockout(ctx, id, "")
		if err != nil {
			tb.Fatal(err)
		}
		accounts += int64(a.Failures)
	}
	for i := range int64(benchAddresses) {
		a, err := st.AddressLockout(ctx, benchAddress(i))
		if err != nil {
			tb.Fatal(err)
		}
		addresses += int64(a.Failures)
	}
	if accounts != n || addresses != n {
		tb.Fatalf("%d parallel failures, counted %d on the accounts and %d on the addresses", n, accounts, addresses)
	}
}

// resetPeakRSS returns what the setup freed to the system and restarts
// the kernel's peak RSS from now (Linux), so that peakRSS tells the load's
// peak rather than the whole process's.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is the process's peak resident set since resetPeakRSS, in MiB.
func peakRSS() (float64, bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}

// The benchmark's load, small, as a test on each backend: many wrong
// passwords at once over a few accounts and addresses, every rule on,
// each counted exactly once on the account, the device and the address.
func TestParallelFailuresCountedOnEveryRow(t *testing.T) {
	for _, be := range storagetest.Backends(t) {
		t.Run(be.Name, func(t *testing.T) {
			st := storagetest.OpenWithClock(t, freshURL(t, be.Name), time.Now)
			rec := audit.NewRecorder(st, nil, time.Now)
			accounts := NewAccounts(AccountsConfig{Store: st, Sessions: st, Hasher: benchHash, Recorder: rec})
			pol := benchPolicy()
			p := NewPipeline(st, benchHash, slog.New(slog.DiscardHandler), rec,
				WithPolicies(func(string) policies.Policy { return pol }), WithTransactions(st), WithLockout(st, accounts, nil))
			users := make([]string, 3)
			for i := range users {
				u, err := accounts.Create(context.Background(), UserSpec{Username: fmt.Sprintf("user%d", i), Password: lockPass}, Actor{})
				if err != nil {
					t.Fatal(err)
				}
				users[i] = u.ID
			}
			const attempts = 120
			var wg sync.WaitGroup
			for n := range attempts {
				wg.Go(func() {
					a := Attempt{Username: fmt.Sprintf("user%d", n%3), Password: "wrong", IP: fmt.Sprintf("192.0.2.%d", n%2), DeviceID: fmt.Sprintf("dev%d", n%4)}
					if out, err := p.PasswordLogin(context.Background(), a); err != nil || out.Reason != ReasonBadPassword {
						t.Errorf("attempt %d: %+v, %v", n, out, err)
					}
				})
			}
			wg.Wait()
			var account, device, address int
			for _, id := range users {
				a, _, err := st.Lockout(context.Background(), id, "")
				if err != nil {
					t.Fatal(err)
				}
				account += a.Failures
				devices, err := st.DeviceLockouts(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range devices {
					device += d.Failures
				}
			}
			for i := range 2 {
				a, err := st.AddressLockout(context.Background(), fmt.Sprintf("192.0.2.%d", i))
				if err != nil {
					t.Fatal(err)
				}
				address += a.Failures
			}
			if account != attempts || device != attempts || address != attempts {
				t.Fatalf("%d parallel failures counted %d times on the accounts, %d on the devices, %d on the addresses",
					attempts, account, device, address)
			}
		})
	}
}

// Parallel wrong passwords for one account, each from a device of its
// own, from one address: the account locks at exactly max_failures, the
// failures refused under its lock are counted nowhere, and the devices
// they came from are not listed as having facts.
func TestParallelFailuresLockOnceAndCountNothingMore(t *testing.T) {
	for _, be := range storagetest.Backends(t) {
		t.Run(be.Name, func(t *testing.T) {
			e := newLockoutEnv(t, be.URL, nil)
			const attempts = 40
			var wg sync.WaitGroup
			for n := range attempts {
				wg.Go(func() {
					a := Attempt{Username: "alice", Password: "wrong", IP: "192.0.2.7", DeviceID: fmt.Sprintf("dev%d", n)}
					if _, err := e.pipeline.PasswordLogin(context.Background(), a); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			max := e.pol.Lockout.MaxFailures
			counted := 0
			for _, ev := range e.events(audit.TypeLoginFailed) {
				if ev.Reason == ReasonBadPassword {
					counted++
				}
			}
			if counted != max || len(e.events(audit.TypeAccountLocked)) != 1 {
				t.Fatalf("counted %d failures and %d locks, want exactly %d and 1", counted, len(e.events(audit.TypeAccountLocked)), max)
			}
			devices, err := e.st.DeviceLockouts(context.Background(), e.alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			// The failure that locked the account counted on its device
			// too, and the lock then reset the account's count.
			if len(devices) != max {
				t.Fatalf("%d devices with facts, want the %d whose failures were counted: %+v", len(devices), max, devices)
			}
			ad, err := e.st.AddressLockout(context.Background(), "192.0.2.7")
			if err != nil || ad.Failures != max {
				t.Fatalf("address counted %d failures (%v), want %d", ad.Failures, err, max)
			}
		})
	}
}
