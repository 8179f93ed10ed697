package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Scenario names accepted in Options.Scenarios.
const (
	ScenarioClientCredentials = "client_credentials"
	ScenarioIntrospect        = "introspect"
	ScenarioDiscovery         = "discovery"
	ScenarioJWKS              = "jwks"
)

// DefaultScenarios returns the scenarios run when Options.Scenarios is empty.
func DefaultScenarios() []string {
	return []string{ScenarioClientCredentials, ScenarioIntrospect, ScenarioDiscovery, ScenarioJWKS}
}

const (
	defaultTimeout = 30 * time.Second
	// Responses larger than this are not buffered for inspection; a real
	// introspection response is a few hundred bytes.
	maxInspectedBody = 1 << 20
)

// Options configures Run. Zero values other than URL, Concurrency and
// Duration get sensible defaults.
type Options struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// ClientID and ClientSecret authenticate via HTTP Basic; required by the
	// client_credentials and introspect scenarios.
	ClientID     string
	ClientSecret string
	// Scope is sent with client_credentials requests when non-empty.
	Scope string
	// Concurrency is the number of workers, each with one request in flight.
	Concurrency int
	// Duration is the measured period per scenario.
	Duration time.Duration
	// Warmup is run before each scenario and not measured, so connection
	// setup, JIT-like caches and the server's lazy initialisation do not
	// pollute the figures.
	Warmup time.Duration
	// Scenarios to run in order; empty means DefaultScenarios.
	Scenarios []string
	// Timeout bounds each request; 0 means 30s.
	Timeout time.Duration
	// JSON makes Run finish with one machine-readable JSON line.
	JSON bool
	// HTTPClient overrides the client built from Concurrency and Timeout.
	HTTPClient *http.Client
}

// Result is the outcome of one scenario's measured period.
type Result struct {
	Scenario string `json:"scenario"`
	// Requests is every request completed during the measured period,
	// successful or not.
	Requests int `json:"requests"`
	// Errors counts non-2xx responses, responses failing the scenario's check
	// and transport failures.
	Errors int `json:"errors"`
	// TransportErrors is the subset of Errors that produced no response.
	TransportErrors int           `json:"transport_errors"`
	Elapsed         time.Duration `json:"elapsed_ns"`
	RPS             float64       `json:"rps"`
	P50             time.Duration `json:"p50_ns"`
	P90             time.Duration `json:"p90_ns"`
	P99             time.Duration `json:"p99_ns"`
	Max             time.Duration `json:"max_ns"`
	// StatusCodes counts responses by HTTP status.
	StatusCodes map[int]int `json:"status_codes"`
}

// Run executes the scenarios one after another against opts.URL, writing a
// human-readable line per scenario to out as it completes. If ctx is
// cancelled, the results gathered so far are returned with ctx's error.
func Run(ctx context.Context, opts Options, out io.Writer) ([]Result, error) {
	opts, base, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		client = newHTTPClient(opts.Concurrency, opts.Timeout)
		defer client.CloseIdleConnections()
	}

	if _, err := fmt.Fprintf(out, "portcullis-bench %s concurrency=%d duration=%s warmup=%s\n",
		base, opts.Concurrency, opts.Duration, opts.Warmup); err != nil {
		return nil, fmt.Errorf("write report: %w", err)
	}
	if _, err := fmt.Fprintf(out, "%-20s %9s %7s %10s %10s %10s %10s %10s  %s\n",
		"scenario", "requests", "errors", "req/s", "p50", "p90", "p99", "max", "status codes"); err != nil {
		return nil, fmt.Errorf("write report: %w", err)
	}

	results := make([]Result, 0, len(opts.Scenarios))
	for _, name := range opts.Scenarios {
		t, err := newTarget(ctx, client, opts, base, name)
		if err != nil {
			return results, fmt.Errorf("scenario %s: %w", name, err)
		}
		res := runScenario(ctx, client, opts, name, t)
		results = append(results, res)
		if _, err := io.WriteString(out, formatResult(res)); err != nil {
			return results, fmt.Errorf("write report: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return results, fmt.Errorf("scenario %s interrupted: %w", name, err)
		}
	}

	if opts.JSON {
		line, err := json.Marshal(struct {
			URL         string   `json:"url"`
			Concurrency int      `json:"concurrency"`
			DurationNS  int64    `json:"duration_ns"`
			WarmupNS    int64    `json:"warmup_ns"`
			Results     []Result `json:"results"`
		}{base, opts.Concurrency, int64(opts.Duration), int64(opts.Warmup), results})
		if err != nil {
			return results, fmt.Errorf("encode json report: %w", err)
		}
		if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
			return results, fmt.Errorf("write json report: %w", err)
		}
	}
	return results, nil
}

func normalize(opts Options) (Options, string, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return opts, "", fmt.Errorf("invalid url %q: %w", opts.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return opts, "", fmt.Errorf("invalid url %q: want http(s)://host[:port][/prefix]", opts.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return opts, "", fmt.Errorf("invalid url %q: must not have a query or fragment", opts.URL)
	}
	base := strings.TrimRight(u.String(), "/")

	if opts.Concurrency < 1 {
		return opts, "", fmt.Errorf("concurrency must be at least 1, got %d", opts.Concurrency)
	}
	if opts.Duration <= 0 {
		return opts, "", fmt.Errorf("duration must be positive, got %s", opts.Duration)
	}
	if opts.Warmup < 0 {
		return opts, "", fmt.Errorf("warmup must not be negative, got %s", opts.Warmup)
	}
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	if len(opts.Scenarios) == 0 {
		opts.Scenarios = DefaultScenarios()
	}
	for _, s := range opts.Scenarios {
		switch s {
		case ScenarioClientCredentials, ScenarioIntrospect:
			if opts.ClientID == "" {
				return opts, "", fmt.Errorf("scenario %s needs a client id", s)
			}
		case ScenarioDiscovery, ScenarioJWKS:
		default:
			return opts, "", fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(DefaultScenarios(), ", "))
		}
	}
	return opts, base, nil
}

// newHTTPClient builds a client whose pool keeps one idle connection per
// worker, so the steady state measures requests rather than TCP handshakes.
// HTTP/2 stays off (a custom DialContext disables it unless forced): one
// connection per worker models independent clients better than multiplexing
// every worker over a single connection.
func newHTTPClient(concurrency int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		// A proxy from the environment would be measured instead of the server.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// Decompression costs generator CPU and the server's compression
		// is not what is being measured.
		DisableCompression: true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect is an answer worth counting, not something to chase.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// target is one prepared request, cheap to replay: the body and
// Authorization header are encoded once.
type target struct {
	method string
	url    string
	body   string
	auth   string
	// check, if set, inspects a 2xx body and reports whether it counts as
	// a success.
	check func(body []byte) bool
}

func newTarget(ctx context.Context, client *http.Client, opts Options, base, scenario string) (*target, error) {
	auth := basicAuth(opts.ClientID, opts.ClientSecret)
	tokenTarget := func() *target {
		form := url.Values{"grant_type": {"client_credentials"}}
		if opts.Scope != "" {
			form.Set("scope", opts.Scope)
		}
		return &target{method: http.MethodPost, url: base + "/oauth2/token", body: form.Encode(), auth: auth}
	}
	switch scenario {
	case ScenarioClientCredentials:
		return tokenTarget(), nil
	case ScenarioIntrospect:
		tok, err := fetchToken(ctx, client, tokenTarget())
		if err != nil {
			return nil, fmt.Errorf("obtain access token: %w", err)
		}
		return &target{
			method: http.MethodPost,
			url:    base + "/oauth2/introspect",
			body:   url.Values{"token": {tok}}.Encode(),
			auth:   auth,
			check:  introspectionActive,
		}, nil
	case ScenarioDiscovery:
		return &target{method: http.MethodGet, url: base + "/.well-known/openid-configuration"}, nil
	case ScenarioJWKS:
		return &target{method: http.MethodGet, url: base + "/.well-known/jwks.json"}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", scenario)
}

// basicAuth encodes client credentials as RFC 6749 section 2.3.1 requires:
// each part form-urlencoded before joining with ':' and base64-encoding, so
// a ':' or non-ASCII byte in the id or secret survives the round trip.
// http.Request.SetBasicAuth does not do this.
func basicAuth(id, secret string) string {
	if id == "" {
		return ""
	}
	raw := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(raw))
}

func introspectionActive(body []byte) bool {
	var v struct {
		Active bool `json:"active"`
	}
	return json.Unmarshal(body, &v) == nil && v.Active
}

func fetchToken(ctx context.Context, client *http.Client, t *target) (string, error) {
	var buf bytes.Buffer
	status, err := t.do(ctx, client, &buf, true)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("token endpoint returned %d: %s", status, snippet(buf.Bytes()))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(buf.Bytes(), &tok); err != nil {
		return "", fmt.Errorf("decode token response: %w", err)
	}
	if tok.AccessToken == "" {
		return "", errors.New("token response has no access_token")
	}
	return tok.AccessToken, nil
}

func snippet(b []byte) string {
	const limit = 200
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}

// do sends the request and drains the response so the connection goes back
// to the pool. With keep set, the body is left in buf. status is 0 when no
// response arrived.
func (t *target) do(ctx context.Context, client *http.Client, buf *bytes.Buffer, keep bool) (status int, err error) {
	var body io.Reader
	if t.body != "" {
		body = strings.NewReader(t.body)
	}
	req, err := http.NewRequestWithContext(ctx, t.method, t.url, body)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	if t.body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if t.auth != "" {
		req.Header.Set("Authorization", t.auth)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if keep {
		buf.Reset()
		_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxInspectedBody))
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read response body: %w", err)
	}
	return resp.StatusCode, nil
}

// workerStats is owned by one worker, so recording needs no locking.
type workerStats struct {
	latencies       []time.Duration
	statuses        map[int]int
	errors          int
	transportErrors int
}

func runScenario(ctx context.Context, client *http.Client, opts Options, name string, t *target) Result {
	if opts.Warmup > 0 {
		runPhase(ctx, client, opts.Concurrency, opts.Warmup, t)
	}
	start := time.Now()
	stats := runPhase(ctx, client, opts.Concurrency, opts.Duration, t)
	// Measured until the last in-flight request finished, not until the
	// deadline, so requests/s is not inflated by work completed late.
	elapsed := time.Since(start)
	return summarize(name, elapsed, stats)
}

// runPhase runs a closed loop on every worker until d has passed. Requests
// started before the deadline are allowed to finish and are recorded; the
// deadline is deliberately not put on the request context, which would turn
// them into spurious errors.
func runPhase(ctx context.Context, client *http.Client, concurrency int, d time.Duration, t *target) []workerStats {
	deadline := time.Now().Add(d)
	stats := make([]workerStats, concurrency)
	done := ctx.Done()
	var wg sync.WaitGroup
	for i := range stats {
		s := &stats[i]
		s.latencies = make([]time.Duration, 0, 1024)
		s.statuses = make(map[int]int, 4)
		wg.Go(func() {
			var buf bytes.Buffer
			for {
				select {
				case <-done:
					return
				default:
				}
				start := time.Now()
				if !start.Before(deadline) {
					return
				}
				status, err := t.do(ctx, client, &buf, t.check != nil)
				lat := time.Since(start)
				if err != nil && ctx.Err() != nil {
					// Cut short by the caller; not the server's fault.
					return
				}
				s.latencies = append(s.latencies, lat)
				switch {
				case status == 0:
					s.transportErrors++
					s.errors++
					continue
				case err != nil, status < 200 || status > 299:
					s.errors++
				case t.check != nil && !t.check(buf.Bytes()):
					s.errors++
				}
				s.statuses[status]++
			}
		})
	}
	wg.Wait()
	return stats
}

func summarize(name string, elapsed time.Duration, stats []workerStats) Result {
	res := Result{Scenario: name, Elapsed: elapsed, StatusCodes: map[int]int{}}
	n := 0
	for i := range stats {
		n += len(stats[i].latencies)
	}
	all := make([]time.Duration, 0, n)
	for i := range stats {
		s := &stats[i]
		all = append(all, s.latencies...)
		res.Errors += s.errors
		res.TransportErrors += s.transportErrors
		for code, c := range s.statuses {
			res.StatusCodes[code] += c
		}
	}
	slices.Sort(all)
	res.Requests = len(all)
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	res.P50 = percentile(all, 50)
	res.P90 = percentile(all, 90)
	res.P99 = percentile(all, 99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	return res
}

// percentile returns the nearest-rank p-th percentile of sorted: the
// smallest value with at least p% of samples at or below it. Exact, with no
// interpolation, so every reported figure is a latency that was observed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// p*n before dividing keeps integer inputs exact (0.99*100 is not 99 in
	// floating point).
	rank := int(math.Ceil(p * float64(n) / 100))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func formatResult(r Result) string {
	codes := make([]int, 0, len(r.StatusCodes))
	for c := range r.StatusCodes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, 0, len(codes)+1)
	for _, c := range codes {
		parts = append(parts, strconv.Itoa(c)+"="+strconv.Itoa(r.StatusCodes[c]))
	}
	if r.TransportErrors > 0 {
		parts = append(parts, "transport="+strconv.Itoa(r.TransportErrors))
	}
	return fmt.Sprintf("%-20s %9d %7d %10.1f %10s %10s %10s %10s  %s\n",
		r.Scenario, r.Requests, r.Errors, r.RPS,
		formatLatency(r.P50), formatLatency(r.P90), formatLatency(r.P99), formatLatency(r.Max),
		strings.Join(parts, " "))
}

func formatLatency(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}
