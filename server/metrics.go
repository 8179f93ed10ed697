package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
)

// Metrics owns a private Prometheus registry. The global default registry is
// avoided so that several servers in one process (tests, the CLI) never
// collide on registration, and so nothing a dependency registers globally
// leaks into our /metrics output.
//
// Every label is drawn from a bounded set: routes are mux patterns, methods
// and grant types outside the known set collapse to "other". Unbounded label
// values would let any client grow the series count without limit.
type Metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	tokensIssued   *prometheus.CounterVec
	tokensFailures *prometheus.CounterVec
}

// routeUnmatched labels requests the mux did not route (404s, redirects),
// so scans of random paths land in one series.
const routeUnmatched = "unmatched"

// NewMetrics creates the collectors and registers them, together with the Go
// runtime and process collectors, on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portcullis_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern.",
			// Finer than prometheus.DefBuckets at the low end, where
			// discovery and JWKS live, and up to 10s for slow password
			// hashing under load.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_tokens_issued_total",
			Help: "Successful token endpoint responses, by grant type.",
		}, []string{"grant_type"}),
		tokensFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_token_errors_total",
			Help: "Failed token endpoint responses, by grant type and OAuth error code.",
		}, []string{"grant_type", "error"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests,
		m.duration,
		m.tokensIssued,
		m.tokensFailures,
	)
	return m
}

// WatchAudit exports the batched audit writer's counts, read from stats
// (the recorder's Stats) at each scrape: the recorder stays the one place
// that counts, so the metrics cannot drift from what it logs, and package
// audit needs no Prometheus. Call it once per Metrics; a second call panics
// on the duplicate registration, a wiring mistake.
func (m *Metrics) WatchAudit(stats func() audit.Stats) {
	if m == nil || stats == nil {
		return
	}
	dropped := func(reason string, count func(audit.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portcullis_audit_events_dropped_total",
			Help: "Batched audit events (token.issued, token.refreshed) never stored, by reason: " +
				"queue_full (queue full and the direct write failed), retries_exhausted (the database " +
				"did not come back in time), refused (the database refused the row), shutdown " +
				"(unwritten when the server stopped). Each was logged when recorded.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(count(stats())) })
	}
	m.registry.MustRegister(
		dropped(audit.DropQueueFull, func(s audit.Stats) uint64 { return s.DroppedQueueFull }),
		dropped(audit.DropRetriesExhausted, func(s audit.Stats) uint64 { return s.DroppedRetriesExhausted }),
		dropped(audit.DropRefused, func(s audit.Stats) uint64 { return s.DroppedRefused }),
		dropped(audit.DropShutdown, func(s audit.Stats) uint64 { return s.DroppedShutdown }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portcullis_audit_write_retries_total",
			Help: "Batched audit writes that failed for a database outage and were tried again.",
		}, func() float64 { return float64(stats().Retries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portcullis_audit_queue_depth",
			Help: "Batched audit events waiting to be written, lost if the process dies now.",
		}, func() float64 { return float64(stats().Queued) }),
	)
}

// WatchHashing exports the password hashing limiter: the memory budget,
// what is in use, and how many hashes were refused (503) for want of it.
func (m *Metrics) WatchHashing(l *hashing.Limiter) {
	if m == nil || l == nil {
		return
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portcullis_hashing_memory_budget_bytes",
			Help: "Memory password hashes running at once may hold (hashing.max_memory_mib, at most two hashes per CPU).",
		}, func() float64 { return float64(l.Stats().BudgetKiB) * 1024 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portcullis_hashing_memory_in_use_bytes",
			Help: "Memory held by password hashes running now.",
		}, func() float64 { return float64(l.Stats().InUseKiB) * 1024 }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portcullis_hashing_refused_total",
			Help: "Password checks refused with 503 because hashing memory stayed full for hashing.queue_timeout.",
		}, func() float64 { return float64(l.Stats().Refused) }),
	)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		// Also exposes promhttp's own error counters on our registry.
		Registry: m.registry,
	})
}

// Middleware records request count and latency. The route label is
// r.Pattern, which the mux sets during ServeHTTP, so it is read after next
// returns.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := wrapResponseWriter(w)
		completed := false
		// Deferred so requests that panic are still counted, as 500s.
		defer func() {
			status := rec.Status()
			if !completed && !rec.wroteHeader {
				status = http.StatusInternalServerError
			}
			route := r.Pattern
			if route == "" {
				route = routeUnmatched
			}
			m.requests.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(status)).Inc()
			m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
		completed = true
	})
}

// TokenIssued counts a successful token response. Safe on a nil *Metrics so
// handlers can be built without metrics in tests.
func (m *Metrics) TokenIssued(grantType string) {
	if m == nil {
		return
	}
	m.tokensIssued.WithLabelValues(grantTypeLabel(grantType)).Inc()
}

// TokenFailed counts a failed token response. errorCode should be the OAuth
// "error" value the server produced (a bounded, server-chosen set); the grant
// type comes from the client and is therefore normalised. Safe on a nil
// *Metrics.
func (m *Metrics) TokenFailed(grantType, errorCode string) {
	if m == nil {
		return
	}
	if errorCode == "" {
		errorCode = "unknown"
	}
	m.tokensFailures.WithLabelValues(grantTypeLabel(grantType), errorCode).Inc()
}

func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	default:
		return "other"
	}
}

// grantTypeLabel maps the client-supplied grant_type onto the registered
// grant types (RFC 6749, 7523, 8628, 8693) so garbage values share one series.
func grantTypeLabel(grantType string) string {
	switch grantType {
	case "authorization_code", "client_credentials", "refresh_token", "password", "implicit",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:device_code",
		"urn:ietf:params:oauth:grant-type:token-exchange":
		return grantType
	default:
		return "other"
	}
}
