package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/server"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// Benchmarks of the hot paths against the whole in-process server over
// loopback HTTP, on each backend. Figures for the README come from the load
// command against the real binary; these exist for profiling
// (go test -bench . -cpuprofile).

// benchFixture starts a server on a fresh database of the named backend:
// the benchmark function runs several times, each needing its own.
func benchFixture(b *testing.B, backend string) (*instance, string, string) {
	dbURL := storagetest.SQLiteURL(b)
	if backend == "postgres" {
		var ok bool
		if dbURL, ok = storagetest.PostgresURL(b); !ok {
			b.Skip("PostgreSQL not reachable")
		}
	}
	in := start(b, dbURL, &testClock{})
	secret := in.createClient(oauth.ClientSpec{ID: "bench", GrantTypes: []string{"client_credentials"}, Scopes: []string{"profile"}})
	return in, "bench", secret
}

func BenchmarkClientCredentials(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			in, id, secret := benchFixture(b, be.Name)
			form := url.Values{"grant_type": {"client_credentials"}}.Encode()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					postForm(b, in.issuer+"/oauth2/token", id, secret, form)
				}
			})
		})
	}
}

func BenchmarkIntrospect(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			in, id, secret := benchFixture(b, be.Name)
			cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: in.issuer + "/oauth2/token"}
			tok, err := cc.Token(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			form := url.Values{"token": {tok.AccessToken}}.Encode()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					postForm(b, in.issuer+"/oauth2/introspect", id, secret, form)
				}
			})
		})
	}
}

func postForm(b *testing.B, u, id, secret, form string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	var buf [512]byte
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("%s: status %d", u, resp.StatusCode)
	}
}

// BenchmarkLoginBurstMemory sends 500 wrong-password sign-ins at once
// under the production hashing parameters and the default hashing budget,
// and reports the process's peak RSS during the burst and its RSS a few
// seconds after. The process holds the 500 test browsers too, so the
// figures overstate the server's own memory a little. Linux only (it
// reads /proc/self/status and resets the peak through clear_refs).
//
//	go test -run XXX -bench LoginBurstMemory -benchtime 1x ./server/
func BenchmarkLoginBurstMemory(b *testing.B) {
	const parallel = 500
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		b.Skip("needs Linux /proc")
	}
	production := func(c *config.Config) {
		c.Hashing.MemoryKiB, c.Hashing.Iterations = hashing.DefaultArgon2.Memory, hashing.DefaultArgon2.Iterations
	}
	in := start(b, storagetest.SQLiteURL(b), &testClock{}, production)
	f := fixtureOn(b, in, true)
	// As the serve command does.
	cfg := config.Default()
	production(cfg)
	prev := debug.SetMemoryLimit(-1)
	b.ReportMetric(float64(server.SetMemoryLimit(cfg)>>20), "soft_limit_MiB")
	defer debug.SetMemoryLimit(prev)
	authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	for range b.N {
		b.StopTimer()
		browsers := make([]*browser, parallel)
		forms := make([]url.Values, parallel)
		for i := range browsers {
			browsers[i] = f.browser()
			_, page := browsers[i].get(authURL)
			forms[i] = hiddenFields(page)
			forms[i].Set("username", "alice")
			forms[i].Set("password", "wrong password")
		}
		runtime.GC()
		debug.FreeOSMemory()
		before := procStatusMiB(b, "VmRSS")
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Skipf("cannot reset peak RSS: %v", err)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		var busy, wrong, other atomic.Int64
		for i := range browsers {
			wg.Go(func() {
				resp, err := browsers[i].c.PostForm(f.issuer+"/login", forms[i])
				if err != nil {
					other.Add(1)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					wrong.Add(1)
				case http.StatusServiceUnavailable:
					busy.Add(1)
				default:
					other.Add(1)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		peak := procStatusMiB(b, "VmHWM")
		time.Sleep(3 * time.Second)
		after := procStatusMiB(b, "VmRSS")
		budget := float64(f.srv.HashLimiter().Stats().BudgetKiB) / 1024
		b.ReportMetric(before, "rss_before_MiB")
		b.ReportMetric(peak, "peak_rss_MiB")
		b.ReportMetric(after, "rss_3s_after_MiB")
		b.ReportMetric(budget, "budget_MiB")
		b.ReportMetric(float64(wrong.Load()), "wrong_password")
		b.ReportMetric(float64(busy.Load()), "busy_503")
		b.ReportMetric(float64(other.Load()), "other")
		b.StartTimer()
	}
}

// procStatusMiB reads a "kB" field of /proc/self/status, in MiB.
func procStatusMiB(b *testing.B, field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
