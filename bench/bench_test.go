package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Credentials with characters that RFC 6749 2.3.1 encoding must protect.
const (
	testClientID     = "bench client:1"
	testClientSecret = "s3cr:t+/é"
	testScope        = "read write"
	testToken        = "tok-123"
)

type fakeConfig struct {
	inactive   bool // introspect answers active:false
	jwksStatus int  // 0 means 200
}

// fakeServer imitates the four endpoints the scenarios hit and counts what
// it served, so the test can compare the generator's accounting against
// ground truth.
type fakeServer struct {
	*httptest.Server
	token, introspect, discovery, jwks atomic.Int64
	conns                              atomic.Int64
}

func newFakeServer(t *testing.T, cfg fakeConfig) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	authOK := func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		if !ok {
			return false
		}
		id, err1 := url.QueryUnescape(u)
		secret, err2 := url.QueryUnescape(p)
		return err1 == nil && err2 == nil && id == testClientID && secret == testClientSecret
	}
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		f.token.Add(1)
		if !authOK(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		if r.PostFormValue("grant_type") != "client_credentials" || r.PostFormValue("scope") != testScope {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"access_token": testToken, "token_type": "bearer", "expires_in": 3600})
	})
	mux.HandleFunc("POST /oauth2/introspect", func(w http.ResponseWriter, r *http.Request) {
		f.introspect.Add(1)
		if !authOK(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		active := r.PostFormValue("token") == testToken && !cfg.inactive
		writeJSON(w, http.StatusOK, map[string]any{"active": active})
	})
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		f.discovery.Add(1)
		writeJSON(w, http.StatusOK, map[string]string{"issuer": "http://example.test"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		f.jwks.Add(1)
		if cfg.jwksStatus != 0 {
			http.Error(w, "broken", cfg.jwksStatus)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
	})
	f.Server = httptest.NewUnstartedServer(mux)
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) served(scenario string) int64 {
	switch scenario {
	case ScenarioClientCredentials:
		return f.token.Load()
	case ScenarioIntrospect:
		return f.introspect.Load()
	case ScenarioDiscovery:
		return f.discovery.Load()
	case ScenarioJWKS:
		return f.jwks.Load()
	}
	return -1
}

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		cfg       fakeConfig
		scenarios []string
		secret    string
		warmup    time.Duration
		// wantAllErrors lists scenarios where every request must be an
		// error; every other scenario must have none.
		wantAllErrors map[string]bool
		wantStatus    map[string]int // status every request of the scenario got
	}{
		{
			name:       "all healthy",
			scenarios:  DefaultScenarios(),
			secret:     testClientSecret,
			wantStatus: map[string]int{ScenarioClientCredentials: 200, ScenarioIntrospect: 200, ScenarioDiscovery: 200, ScenarioJWKS: 200},
		},
		{
			name:          "server errors counted",
			cfg:           fakeConfig{jwksStatus: http.StatusInternalServerError},
			scenarios:     []string{ScenarioDiscovery, ScenarioJWKS},
			secret:        testClientSecret,
			wantAllErrors: map[string]bool{ScenarioJWKS: true},
			wantStatus:    map[string]int{ScenarioDiscovery: 200, ScenarioJWKS: 500},
		},
		{
			name:          "inactive introspection counted",
			cfg:           fakeConfig{inactive: true},
			scenarios:     []string{ScenarioIntrospect},
			secret:        testClientSecret,
			wantAllErrors: map[string]bool{ScenarioIntrospect: true},
			wantStatus:    map[string]int{ScenarioIntrospect: 200},
		},
		{
			name:          "rejected client credentials counted",
			scenarios:     []string{ScenarioClientCredentials},
			secret:        "wrong",
			wantAllErrors: map[string]bool{ScenarioClientCredentials: true},
			wantStatus:    map[string]int{ScenarioClientCredentials: 401},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t, tt.cfg)
			const concurrency = 4
			var out bytes.Buffer
			results, err := Run(t.Context(), Options{
				URL:          f.URL + "/", // trailing slash must not double up
				ClientID:     testClientID,
				ClientSecret: tt.secret,
				Scope:        testScope,
				Concurrency:  concurrency,
				Duration:     100 * time.Millisecond,
				// No warm-up: every request the server saw must then be
				// accounted for exactly.
				Warmup:    0,
				Scenarios: tt.scenarios,
			}, &out)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if len(results) != len(tt.scenarios) {
				t.Fatalf("got %d results, want %d", len(results), len(tt.scenarios))
			}
			total := 0
			for i, r := range results {
				if r.Scenario != tt.scenarios[i] {
					t.Fatalf("result %d is %s, want %s", i, r.Scenario, tt.scenarios[i])
				}
				if r.Requests == 0 {
					t.Fatalf("%s: no requests recorded", r.Scenario)
				}
				total += r.Requests
				served := f.served(r.Scenario)
				if r.Scenario == ScenarioClientCredentials && contains(tt.scenarios, ScenarioIntrospect) {
					served-- // the token fetched for introspect
				}
				if int64(r.Requests) != served {
					t.Errorf("%s: recorded %d requests, server served %d", r.Scenario, r.Requests, served)
				}
				wantErrs := 0
				if tt.wantAllErrors[r.Scenario] {
					wantErrs = r.Requests
				}
				if r.Errors != wantErrs || r.TransportErrors != 0 {
					t.Errorf("%s: errors = %d (transport %d), want %d", r.Scenario, r.Errors, r.TransportErrors, wantErrs)
				}
				code := tt.wantStatus[r.Scenario]
				if len(r.StatusCodes) != 1 || r.StatusCodes[code] != r.Requests {
					t.Errorf("%s: status codes = %v, want all %d", r.Scenario, r.StatusCodes, code)
				}
				if r.P50 <= 0 || r.P50 > r.P90 || r.P90 > r.P99 || r.P99 > r.Max {
					t.Errorf("%s: percentiles not ordered: p50=%s p90=%s p99=%s max=%s", r.Scenario, r.P50, r.P90, r.P99, r.Max)
				}
				if r.RPS <= 0 || r.Elapsed < 100*time.Millisecond {
					t.Errorf("%s: rps=%f elapsed=%s", r.Scenario, r.RPS, r.Elapsed)
				}
				if !strings.Contains(out.String(), r.Scenario) {
					t.Errorf("report lacks a line for %s:\n%s", r.Scenario, out.String())
				}
			}
			// Keep-alive must hold: connections stay near the worker count
			// while requests number in the hundreds at least. Slack of 2x
			// avoids depending on pool timing.
			if conns := f.conns.Load(); conns > 2*concurrency {
				t.Errorf("opened %d connections for %d requests; want reuse (<= %d)", conns, total, 2*concurrency)
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRunWarmupNotMeasured(t *testing.T) {
	f := newFakeServer(t, fakeConfig{})
	results, err := Run(t.Context(), Options{
		URL:         f.URL,
		Concurrency: 2,
		Duration:    50 * time.Millisecond,
		Warmup:      50 * time.Millisecond,
		Scenarios:   []string{ScenarioDiscovery},
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if served := f.discovery.Load(); int64(results[0].Requests) >= served {
		t.Fatalf("recorded %d of %d served requests; warm-up must be excluded", results[0].Requests, served)
	}
}

func TestRunJSON(t *testing.T) {
	f := newFakeServer(t, fakeConfig{})
	var out bytes.Buffer
	results, err := Run(t.Context(), Options{
		URL:         f.URL,
		Concurrency: 2,
		Duration:    30 * time.Millisecond,
		Scenarios:   []string{ScenarioJWKS},
		JSON:        true,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var report struct {
		URL         string   `json:"url"`
		Concurrency int      `json:"concurrency"`
		Results     []Result `json:"results"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &report); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out.String())
	}
	if report.URL != f.URL || report.Concurrency != 2 || len(report.Results) != 1 ||
		report.Results[0].Requests != results[0].Requests || report.Results[0].StatusCodes[200] != results[0].Requests {
		t.Fatalf("JSON report %+v does not match results %+v", report, results)
	}
}

func TestRunSetupErrors(t *testing.T) {
	f := newFakeServer(t, fakeConfig{})
	base := Options{
		URL:          f.URL,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		Scope:        testScope,
		Concurrency:  1,
		Duration:     10 * time.Millisecond,
	}
	tests := []struct {
		name    string
		modify  func(o *Options)
		wantErr string
	}{
		{"unknown scenario", func(o *Options) { o.Scenarios = []string{"nope"} }, "unknown scenario"},
		{"missing client id", func(o *Options) { o.ClientID = ""; o.Scenarios = []string{ScenarioIntrospect} }, "needs a client id"},
		{"bad scheme", func(o *Options) { o.URL = "ftp://x" }, "invalid url"},
		{"no host", func(o *Options) { o.URL = "http://" }, "invalid url"},
		{"zero concurrency", func(o *Options) { o.Concurrency = 0 }, "concurrency"},
		{"zero duration", func(o *Options) { o.Duration = 0 }, "duration"},
		{"negative warmup", func(o *Options) { o.Warmup = -time.Second }, "warmup"},
		{
			"introspect token refused",
			func(o *Options) { o.ClientSecret = "wrong"; o.Scenarios = []string{ScenarioIntrospect} },
			"obtain access token: token endpoint returned 401",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.modify(&o)
			_, err := Run(t.Context(), o, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	tests := []struct {
		id, secret string
		want       string // decoded "user:pass" as sent
	}{
		{"plain", "secret", "plain:secret"},
		{"a:b", "c d", "a%3Ab:c+d"},
		{"id", "p@ss/+=é", "id:p%40ss%2F%2B%3D%C3%A9"},
		{"", "ignored", ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got := basicAuth(tt.id, tt.secret)
			if tt.want == "" {
				if got != "" {
					t.Fatalf("basicAuth = %q, want empty", got)
				}
				return
			}
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.Header.Set("Authorization", got)
			u, p, ok := req.BasicAuth()
			if !ok || u+":"+p != tt.want {
				t.Fatalf("decoded %q:%q (ok=%v), want %q", u, p, ok, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	oneToHundred := make([]int, 100)
	for i := range oneToHundred {
		oneToHundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", ms(7), 50, 7 * time.Millisecond},
		{"single p99", ms(7), 99, 7 * time.Millisecond},
		{"1..100 p50", ms(oneToHundred...), 50, 50 * time.Millisecond},
		{"1..100 p90", ms(oneToHundred...), 90, 90 * time.Millisecond},
		{"1..100 p99", ms(oneToHundred...), 99, 99 * time.Millisecond},
		{"1..100 p100", ms(oneToHundred...), 100, 100 * time.Millisecond},
		{"1..10 p50", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
		{"1..10 p90", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{"1..10 p99 rounds up", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"four p50", ms(10, 20, 30, 40), 50, 20 * time.Millisecond},
		{"four p51", ms(10, 20, 30, 40), 51, 30 * time.Millisecond},
		{"p0 is min", ms(3, 4), 0, 3 * time.Millisecond},
		{"outlier only in max", ms(1, 1, 1, 1, 1, 1, 1, 1, 1, 1000), 90, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("percentile(%v, %v) = %s, want %s", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	stats := []workerStats{
		{latencies: []time.Duration{3, 1}, statuses: map[int]int{200: 1, 500: 1}, errors: 1},
		{latencies: []time.Duration{2, 4}, statuses: map[int]int{200: 1}, errors: 1, transportErrors: 1},
	}
	r := summarize("x", 2*time.Second, stats)
	if r.Requests != 4 || r.Errors != 2 || r.TransportErrors != 1 || r.RPS != 2 ||
		r.StatusCodes[200] != 2 || r.StatusCodes[500] != 1 || r.P50 != 2 || r.Max != 4 {
		t.Fatalf("summarize = %+v", r)
	}
}
