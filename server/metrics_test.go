package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/config"
)

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	// A second instance must not collide: each has its own registry.
	_ = NewMetrics()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	})
	// Identify outside Metrics exercises pattern propagation as well.
	h := Identify(nil, nil)(m.Middleware(mux))

	requests := []struct {
		method, target string
	}{
		{"GET", "/things/1"},
		{"GET", "/things/2?code=x"},
		{"POST", "/oauth2/token"},
		{"GET", "/random/scan/1"},
		{"GET", "/random/scan/2"},
		{"BREW", "/things/3"},
		{"GET", "/panic"},
	}
	for _, r := range requests {
		func() {
			defer func() { _ = recover() }()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.target, nil))
		}()
	}
	m.TokenIssued("client_credentials")
	m.TokenIssued("client_credentials")
	m.TokenFailed("authorization_code", "invalid_grant")
	m.TokenFailed("made_up_grant", "unsupported_grant_type")

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := string(body)

	tests := []struct {
		name string
		want string
	}{
		{"matched route", `portcullis_http_requests_total{code="200",method="GET",route="GET /things/{id}"} 2`},
		{"status code", `portcullis_http_requests_total{code="400",method="POST",route="POST /oauth2/token"} 1`},
		{"unmatched collapsed", `portcullis_http_requests_total{code="404",method="GET",route="unmatched"} 2`},
		{"unknown method collapsed", `portcullis_http_requests_total{code="405",method="other",route="unmatched"} 1`},
		{"panic counted as 500", `portcullis_http_requests_total{code="500",method="GET",route="GET /panic"} 1`},
		{"histogram by route", `portcullis_http_request_duration_seconds_count{route="GET /things/{id}"} 2`},
		{"histogram bucket", `portcullis_http_request_duration_seconds_bucket{route="POST /oauth2/token",le="+Inf"} 1`},
		{"tokens issued", `portcullis_tokens_issued_total{grant_type="client_credentials"} 2`},
		{"token errors", `portcullis_token_errors_total{error="invalid_grant",grant_type="authorization_code"} 1`},
		{"unknown grant collapsed", `portcullis_token_errors_total{error="unsupported_grant_type",grant_type="other"} 1`},
		{"go collector", "go_goroutines "},
		{"process collector", "process_start_time_seconds "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out, tt.want) {
				t.Fatalf("metrics output lacks %q:\n%s", tt.want, grepPortcullis(out))
			}
		})
	}
	if strings.Contains(out, "code=x") {
		t.Fatal("query string leaked into metrics")
	}
}

func TestMetricsNilSafe(t *testing.T) {
	var m *Metrics
	m.TokenIssued("client_credentials")
	m.TokenFailed("client_credentials", "invalid_client")
	m.WatchAudit(func() audit.Stats { return audit.Stats{} })
}

// TestMetricsAuditStats: the audit metrics are the recorder's own counts,
// read at each scrape, so they move with it and never count twice.
func TestMetricsAuditStats(t *testing.T) {
	stats := audit.Stats{Queued: 12, Retries: 3, DroppedQueueFull: 1, DroppedRetriesExhausted: 500, DroppedRefused: 2, DroppedShutdown: 40}
	m := NewMetrics()
	m.WatchAudit(func() audit.Stats { return stats })
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	tests := []struct {
		name string
		want string
	}{
		{"dropped on a full queue", `portcullis_audit_events_dropped_total{reason="queue_full"} 1`},
		{"dropped after retries", `portcullis_audit_events_dropped_total{reason="retries_exhausted"} 500`},
		{"refused", `portcullis_audit_events_dropped_total{reason="refused"} 2`},
		{"dropped at shutdown", `portcullis_audit_events_dropped_total{reason="shutdown"} 40`},
		{"retries", "portcullis_audit_write_retries_total 3"},
		{"queue depth", "portcullis_audit_queue_depth 12"},
		{"counter type", "# TYPE portcullis_audit_events_dropped_total counter"},
		{"gauge type", "# TYPE portcullis_audit_queue_depth gauge"},
	}
	out := scrape()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out, tt.want) {
				t.Fatalf("metrics output lacks %q:\n%s", tt.want, grepPortcullis(out))
			}
		})
	}
	stats.Queued, stats.DroppedShutdown = 0, 41
	if out := scrape(); !strings.Contains(out, "portcullis_audit_queue_depth 0") ||
		!strings.Contains(out, `portcullis_audit_events_dropped_total{reason="shutdown"} 41`) {
		t.Errorf("a second scrape does not follow the recorder:\n%s", grepPortcullis(out))
	}
}

func grepPortcullis(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "portcullis_") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// newListenerTestServer is a whole server on a fresh SQLite database, for
// the tests of where /metrics is served.
func newListenerTestServer(t *testing.T, mutate ...func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Database.URL = "sqlite://" + filepath.Join(t.TempDir(), "portcullis.db")
	cfg.Secrets.System = []string{"listener-test-secret-0123456789abcdef"}
	cfg.Hashing.MemoryKiB, cfg.Hashing.Iterations = 8192, 1
	cfg.Server.ShutdownTimeout = config.Duration{Duration: 5 * time.Second}
	for _, m := range mutate {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	s, err := New(t.Context(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestMetricsOnlyOnTheMetricsHandler: /metrics and pprof ask for no
// authentication, so the public handler never serves them, and pprof is
// served only when asked for.
func TestMetricsOnlyOnTheMetricsHandler(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		s := newListenerTestServer(t, func(c *config.Config) { c.Server.Pprof = pprof })
		// Without pprof its paths do not exist; with it, good requests
		// succeed and bad ones are refused.
		profiled, badProfile := http.StatusNotFound, http.StatusNotFound
		if pprof {
			profiled, badProfile = http.StatusOK, http.StatusBadRequest
		}
		tests := []struct {
			name    string
			handler http.Handler
			target  string
			want    int
		}{
			{"public metrics", s.Handler(), "/metrics", http.StatusNotFound},
			{"public pprof index", s.Handler(), "/debug/pprof/", http.StatusNotFound},
			{"public pprof profile", s.Handler(), "/debug/pprof/goroutine", http.StatusNotFound},
			{"metrics", s.MetricsHandler(), "/metrics", http.StatusOK},
			{"nothing else on the metrics listener", s.MetricsHandler(), "/health/alive", http.StatusNotFound},
			{"pprof index", s.MetricsHandler(), "/debug/pprof/", profiled},
			{"goroutine dump", s.MetricsHandler(), "/debug/pprof/goroutine?debug=1", profiled},
			{"heap profile", s.MetricsHandler(), "/debug/pprof/heap?gc=1", profiled},
			{"unknown profile", s.MetricsHandler(), "/debug/pprof/nope", http.StatusNotFound},
			{"cpu profile too long", s.MetricsHandler(), "/debug/pprof/profile?seconds=61", badProfile},
			{"trace of no time", s.MetricsHandler(), "/debug/pprof/trace?seconds=0", badProfile},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("pprof=%v/%s", pprof, tt.name), func(t *testing.T) {
				rec := httptest.NewRecorder()
				tt.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.target, nil))
				if rec.Code != tt.want {
					t.Fatalf("GET %s = %d, want %d\n%s", tt.target, rec.Code, tt.want, rec.Body.String())
				}
			})
		}
		// The public handler's requests, the refused /metrics among them,
		// are what the metrics handler reports.
		rec := httptest.NewRecorder()
		s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if want := `portcullis_http_requests_total{code="404",method="GET",route="unmatched"} 3`; !strings.Contains(rec.Body.String(), want) {
			t.Errorf("pprof=%v: metrics lack %q:\n%s", pprof, want, grepPortcullis(rec.Body.String()))
		}
	}
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func refused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = conn.Close()
	}
	return err != nil
}

// TestListenAndServeMetricsListener runs both listeners as serve does.
func TestListenAndServeMetricsListener(t *testing.T) {
	t.Run("both listeners, shut down together", func(t *testing.T) {
		public, metrics := freeAddr(t), freeAddr(t)
		s := newListenerTestServer(t, func(c *config.Config) {
			c.Server.Listen, c.Server.MetricsListen, c.Server.Pprof = public, metrics, true
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.ListenAndServe(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for refused(public) || refused(metrics) {
			if time.Now().After(deadline) {
				t.Fatal("listeners not up within 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := getStatus(t, "http://"+public+"/health/alive"); got != http.StatusOK {
			t.Fatalf("public /health/alive = %d", got)
		}
		if got := getStatus(t, "http://"+public+"/metrics"); got != http.StatusNotFound {
			t.Fatalf("public /metrics = %d, want 404", got)
		}
		if got := getStatus(t, "http://"+metrics+"/metrics"); got != http.StatusOK {
			t.Fatalf("metrics listener /metrics = %d, want 200", got)
		}

		// A CPU profile in flight must not hold shutdown up: it ends with
		// the listener's context.
		profile := make(chan int, 1)
		go func() {
			resp, err := http.Get("http://" + metrics + "/debug/pprof/profile?seconds=60")
			if err != nil {
				profile <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			profile <- resp.StatusCode
		}()
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ListenAndServe = %v, want nil after a graceful shutdown", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ListenAndServe did not return within 10s of cancel")
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("shutdown took %s; the profile held it up", took)
		}
		if code := <-profile; code != http.StatusOK && code != http.StatusConflict {
			t.Errorf("CPU profile across shutdown = %d, want 200 (or 409 when the test itself is profiled)", code)
		}
		if !refused(public) || !refused(metrics) {
			t.Error("a listener is still open after ListenAndServe returned")
		}
	})

	t.Run("metrics port taken", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		public := freeAddr(t)
		s := newListenerTestServer(t, func(c *config.Config) {
			c.Server.Listen, c.Server.MetricsListen = public, taken.Addr().String()
		})
		done := make(chan error, 1)
		go func() { done <- s.ListenAndServe(t.Context()) }()
		select {
		case err := <-done:
			if err == nil || !strings.HasPrefix(err.Error(), "server.metrics_listen: ") {
				t.Fatalf("ListenAndServe = %v, want an error naming server.metrics_listen", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ListenAndServe kept running with its metrics port taken")
		}
		if !refused(public) {
			t.Error("the public listener was left open")
		}
	})

	t.Run("metrics listener off", func(t *testing.T) {
		public := freeAddr(t)
		s := newListenerTestServer(t, func(c *config.Config) { c.Server.Listen, c.Server.MetricsListen = public, "" })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.ListenAndServe(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for refused(public) {
			if time.Now().After(deadline) {
				t.Fatal("public listener not up within 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := getStatus(t, "http://"+public+"/metrics"); got != http.StatusNotFound {
			t.Fatalf("public /metrics = %d, want 404", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("ListenAndServe = %v", err)
		}
	})
}
