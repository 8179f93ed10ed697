package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
