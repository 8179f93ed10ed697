package authn

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// benchHash is as cheap as argon2id goes, so the benchmarks measure what
// the policy checks and their database work add to a sign-in, not the hash.
var benchHash = hashing.Argon2{Memory: 8, Iterations: 1, Parallelism: 1}

// BenchmarkPasswordLoginPolicyCost runs one sign-in at a time with and
// without the lockout, a wrong password (gates, counting under the row
// lock, the audit event) and a right one (gates, the audit event); the
// difference between the two variants is what the brute-force defence
// costs a sign-in beyond the password hash.
//
//	go test -run XXX -bench PasswordLoginPolicyCost ./authn/
func BenchmarkPasswordLoginPolicyCost(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		for _, withLockout := range []bool{false, true} {
			for _, password := range []string{"wrong", lockPass} {
				name := fmt.Sprintf("%s/lockout=%v/right=%v", be.Name, withLockout, password == lockPass)
				b.Run(name, func(b *testing.B) {
					st := storagetest.OpenWithClock(b, freshURL(b, be.Name), time.Now)
					rec := audit.NewRecorder(st, nil, time.Now)
					accounts := NewAccounts(AccountsConfig{Store: st, Sessions: st, Hasher: benchHash, Recorder: rec})
					pol := policies.Defaults()
					pol.Lockout.MaxFailures = 1 << 30 // count every failure, never lock
					pol.Lockout.Device.MaxFailures = 1 << 30
					pol.Lockout.IP.MaxFailures = 1 << 30
					opts := []PipelineOption{WithPolicies(func(string) policies.Policy { return pol }), WithTransactions(st)}
					if withLockout {
						opts = append(opts, WithLockout(st, accounts, nil))
					}
					p := NewPipeline(st, benchHash, slog.New(slog.DiscardHandler), rec, opts...)
					if _, err := accounts.Create(context.Background(), UserSpec{Username: "alice", Password: lockPass}, Actor{}); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					for range b.N {
						if _, err := p.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: password, IP: "192.0.2.1", DeviceID: "dev"}); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// freshURL is a new empty database of the backend: a benchmark function
// runs several times, each needing its own.
func freshURL(b *testing.B, backend string) string {
	if backend == "postgres" {
		return storagetest.RequirePostgres(b)
	}
	return storagetest.SQLiteURL(b)
}

// BenchmarkLockoutDecisions counts wrong passwords for 200 accounts from
// many goroutines at once, each a full attempt with its lockout decision
// under the account's row lock; decisions/s is the figure, with the
// process's memory (benchmark included) after the load.
//
//	go test -run XXX -bench LockoutDecisions -cpu 2 ./authn/
func BenchmarkLockoutDecisions(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			st := storagetest.OpenWithClock(b, freshURL(b, be.Name), time.Now)
			rec := audit.NewRecorder(st, nil, time.Now)
			accounts := NewAccounts(AccountsConfig{Store: st, Sessions: st, Hasher: benchHash, Recorder: rec})
			pol := policies.Defaults()
			pol.Lockout.MaxFailures = 1 << 30
			pol.Lockout.Device.MaxFailures = 1 << 30
			pol.Lockout.IP.MaxFailures = 0
			p := NewPipeline(st, benchHash, slog.New(slog.DiscardHandler), rec,
				WithPolicies(func(string) policies.Policy { return pol }), WithTransactions(st), WithLockout(st, accounts, nil))
			const users = 200
			for i := range users {
				if _, err := accounts.Create(context.Background(), UserSpec{Username: fmt.Sprintf("user%d", i), Password: lockPass}, Actor{}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := fmt.Sprintf("user%d", next.Add(1)%users)
					if _, err := p.PasswordLogin(context.Background(), Attempt{Username: u, Password: "wrong", IP: "192.0.2.1"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap_sys_MiB")
			if data, err := os.ReadFile("/proc/self/status"); err == nil {
				for line := range strings.SplitSeq(string(data), "\n") {
					if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
						b.ReportMetric(kb/1024, "peak_rss_MiB")
					}
				}
			}
		})
	}
}
