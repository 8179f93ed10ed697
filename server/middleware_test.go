package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/reqinfo"
)

func TestRequestID(t *testing.T) {
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name     string
		incoming []string // nil: header absent
		keep     bool
	}{
		{name: "absent", incoming: nil},
		{name: "empty", incoming: []string{""}},
		{name: "valid", incoming: []string{"abc-DEF_123.x"}, keep: true},
		{name: "max length", incoming: []string{strings.Repeat("a", 64)}, keep: true},
		{name: "too long", incoming: []string{strings.Repeat("a", 65)}},
		{name: "space", incoming: []string{"abc def"}},
		{name: "log injection", incoming: []string{"abc\nlevel=ERROR"}},
		{name: "slash", incoming: []string{"a/b"}},
		{name: "non-ascii", incoming: []string{"idé"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := Identify(nil, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = reqinfo.From(r.Context()).RequestID
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, v := range tt.incoming {
				req.Header.Add(RequestIDHeader, v)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)

			got := rr.Header().Get(RequestIDHeader)
			if got != seen {
				t.Fatalf("response header %q != context value %q", got, seen)
			}
			if tt.keep {
				if got != tt.incoming[0] {
					t.Fatalf("id = %q, want incoming %q kept", got, tt.incoming[0])
				}
				return
			}
			if !generated.MatchString(got) {
				t.Fatalf("id = %q, want 32 hex chars", got)
			}
		})
	}
}

func TestRequestIDUnique(t *testing.T) {
	a, b := newRequestID(), newRequestID()
	if a == b {
		t.Fatalf("two generated ids are equal: %q", a)
	}
}

// logLine decodes exactly one JSON log record from buf.
func logLine(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("want exactly one log line, got %d:\n%s", len(lines), buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("decode log line: %v\n%s", err, lines[0])
	}
	return m
}

func TestAccessLog(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "item "+r.PathValue("id"))
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /empty", func(w http.ResponseWriter, r *http.Request) {})

	trustAll, err := NewClientIP([]string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}

	type chain func(logger *slog.Logger, h http.Handler) http.Handler
	inside := func(logger *slog.Logger, h http.Handler) http.Handler {
		return Identify(trustAll, nil)(AccessLog(logger)(h))
	}
	// AccessLog outermost: request id and client ip context are invisible
	// to it, but the route must still come through.
	outside := func(logger *slog.Logger, h http.Handler) http.Handler {
		return AccessLog(logger)(Identify(trustAll, nil)(h))
	}

	tests := []struct {
		name      string
		chain     chain
		method    string
		target    string
		xff       string
		wantRoute string
		wantPath  string
		wantCode  int
		wantBytes int
		wantLevel string
		wantIP    string
		wantReqID bool
	}{
		{
			name: "matched route with query", chain: inside,
			method: "GET", target: "/items/42?code=SECRETCODE&access_token=SECRETTOKEN",
			wantRoute: "GET /items/{id}", wantPath: "/items/42", wantCode: 200, wantBytes: len("item 42"),
			wantLevel: "INFO", wantIP: "192.0.2.1", wantReqID: true,
		},
		{
			name: "forwarded client ip", chain: inside,
			method: "GET", target: "/items/7", xff: "203.0.113.9",
			wantRoute: "GET /items/{id}", wantPath: "/items/7", wantCode: 200, wantBytes: len("item 7"),
			wantLevel: "INFO", wantIP: "203.0.113.9", wantReqID: true,
		},
		{
			name: "server error logs warn", chain: inside,
			method: "POST", target: "/fail?state=SECRETSTATE",
			wantRoute: "POST /fail", wantPath: "/fail", wantCode: 503, wantBytes: len("boom\n"),
			wantLevel: "WARN", wantIP: "192.0.2.1", wantReqID: true,
		},
		{
			name: "unmatched", chain: inside,
			method: "GET", target: "/nope?token=SECRET",
			wantRoute: "", wantPath: "/nope", wantCode: 404, wantBytes: len("404 page not found\n"),
			wantLevel: "INFO", wantIP: "192.0.2.1", wantReqID: true,
		},
		{
			name: "handler writes nothing", chain: inside,
			method: "GET", target: "/empty",
			wantRoute: "GET /empty", wantPath: "/empty", wantCode: 200, wantBytes: 0,
			wantLevel: "INFO", wantIP: "192.0.2.1", wantReqID: true,
		},
		{
			name: "access log outermost still sees route", chain: outside,
			method: "GET", target: "/items/1?code=SECRET", xff: "203.0.113.9",
			wantRoute: "GET /items/{id}", wantPath: "/items/1", wantCode: 200, wantBytes: len("item 1"),
			// Falls back to the TCP peer: the resolved address lives in a
			// context AccessLog never sees in this order.
			wantLevel: "INFO", wantIP: "192.0.2.1", wantReqID: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			h := tt.chain(logger, mux)

			req := httptest.NewRequest(tt.method, tt.target, nil)
			req.RemoteAddr = "192.0.2.1:4321"
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)

			if strings.Contains(buf.String(), "SECRET") {
				t.Fatalf("log leaks query string: %s", buf.String())
			}
			line := logLine(t, &buf)
			checks := map[string]any{
				"level":     tt.wantLevel,
				"method":    tt.method,
				"route":     tt.wantRoute,
				"path":      tt.wantPath,
				"status":    float64(tt.wantCode),
				"bytes":     float64(tt.wantBytes),
				"client_ip": tt.wantIP,
			}
			for k, want := range checks {
				if line[k] != want {
					t.Errorf("%s = %v, want %v", k, line[k], want)
				}
			}
			if _, ok := line["duration_ms"].(float64); !ok {
				t.Errorf("duration_ms missing or not a number: %v", line["duration_ms"])
			}
			id, _ := line["request_id"].(string)
			if tt.wantReqID && id != rr.Header().Get(RequestIDHeader) {
				t.Errorf("request_id = %q, want %q", id, rr.Header().Get(RequestIDHeader))
			}
			if !tt.wantReqID && id != "" {
				t.Errorf("request_id = %q, want empty", id)
			}
			if rr.Code != tt.wantCode {
				t.Errorf("response code = %d, want %d", rr.Code, tt.wantCode)
			}
		})
	}
}

func TestAccessLogPanic(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	h := AccessLog(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("kaboom")
	}))
	func() {
		defer func() {
			if v := recover(); v != "kaboom" {
				t.Fatalf("recovered %v, want original panic to pass through", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	line := logLine(t, &buf)
	if line["status"] != float64(500) || line["panic"] != true || line["level"] != "WARN" {
		t.Fatalf("unexpected log line for panic: %v", line)
	}
}

func TestSecurityHeaders(t *testing.T) {
	const wantCSP = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; script-src 'self'; " +
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
	tests := []struct {
		name     string
		https    bool
		override bool
		wantHSTS string
		wantCSP  string
	}{
		{name: "http", https: false, wantHSTS: "", wantCSP: wantCSP},
		{name: "https", https: true, wantHSTS: "max-age=31536000", wantCSP: wantCSP},
		{name: "handler overrides csp", https: true, override: true, wantHSTS: "max-age=31536000", wantCSP: "default-src 'self'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := SecurityHeaders(tt.https)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.override {
					w.Header().Set("Content-Security-Policy", "default-src 'self'")
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/", nil))
			want := map[string]string{
				"Content-Security-Policy":    tt.wantCSP,
				"X-Content-Type-Options":     "nosniff",
				"X-Frame-Options":            "DENY",
				"Referrer-Policy":            "same-origin",
				"Cross-Origin-Opener-Policy": "same-origin",
				"Strict-Transport-Security":  tt.wantHSTS,
			}
			for k, v := range want {
				if got := rr.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if strings.Contains(rr.Header().Get("Content-Security-Policy"), "form-action") {
				t.Error("CSP must not contain form-action: it breaks the post-login redirect to the client")
			}
		})
	}
}

func TestRecoverer(t *testing.T) {
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		wantRepanic any // nil: must not panic
		wantCode    int
		wantBody    string
		wantLog     bool
	}{
		{
			name:     "no panic",
			handler:  func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
			wantCode: 200, wantBody: "ok",
		},
		{
			name: "panic before write",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Length", "1000")
				panic(errors.New("boom"))
			},
			wantCode: 500, wantBody: `{"error":"server_error"}` + "\n", wantLog: true,
		},
		{
			name: "panic after write aborts",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "partial")
				panic("late")
			},
			wantRepanic: http.ErrAbortHandler, wantCode: 200, wantBody: "partial", wantLog: true,
		},
		{
			name:        "abort handler passes through",
			handler:     func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) },
			wantRepanic: http.ErrAbortHandler, wantCode: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, nil))
			h := Identify(nil, nil)(Recoverer(logger)(tt.handler))
			rr := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set(RequestIDHeader, "req-1")

			func() {
				defer func() {
					if v := recover(); v != tt.wantRepanic {
						t.Fatalf("panic = %v, want %v", v, tt.wantRepanic)
					}
				}()
				h.ServeHTTP(rr, req)
			}()

			if rr.Code != tt.wantCode || rr.Body.String() != tt.wantBody {
				t.Fatalf("response = %d %q, want %d %q", rr.Code, rr.Body.String(), tt.wantCode, tt.wantBody)
			}
			if tt.wantCode == 500 {
				if ct := rr.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				if cl := rr.Header().Get("Content-Length"); cl != "" {
					t.Errorf("stale Content-Length %q kept", cl)
				}
			}
			if !tt.wantLog {
				if buf.Len() != 0 {
					t.Fatalf("unexpected log: %s", buf.String())
				}
				return
			}
			line := logLine(t, &buf)
			if line["level"] != "ERROR" || line["request_id"] != "req-1" {
				t.Errorf("log line = %v, want ERROR with request_id req-1", line)
			}
			if s, _ := line["stack"].(string); !strings.Contains(s, "goroutine") {
				t.Errorf("log line has no stack: %v", line["stack"])
			}
		})
	}
}

func TestResponseRecorder(t *testing.T) {
	tests := []struct {
		name       string
		handler    func(w http.ResponseWriter)
		wantStatus int
		wantBytes  int64
		wantFlush  bool
	}{
		{name: "nothing written", handler: func(w http.ResponseWriter) {}, wantStatus: 200},
		{
			name:       "explicit status",
			handler:    func(w http.ResponseWriter) { w.WriteHeader(201); _, _ = w.Write([]byte("abc")) },
			wantStatus: 201, wantBytes: 3,
		},
		{
			name: "second WriteHeader ignored",
			handler: func(w http.ResponseWriter) {
				w.WriteHeader(302)
				w.WriteHeader(500)
			},
			wantStatus: 302,
		},
		{
			name: "early hints are not the final status",
			handler: func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusTeapot)
			},
			wantStatus: http.StatusTeapot,
		},
		{
			name: "flush via interface",
			handler: func(w http.ResponseWriter) {
				_, _ = w.Write([]byte("ab"))
				w.(http.Flusher).Flush()
			},
			wantStatus: 200, wantBytes: 2, wantFlush: true,
		},
		{
			name: "flush via ResponseController",
			handler: func(w http.ResponseWriter) {
				if err := http.NewResponseController(w).Flush(); err != nil {
					panic(err)
				}
			},
			wantStatus: 200, wantFlush: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := httptest.NewRecorder()
			rec := wrapResponseWriter(rr)
			if wrapResponseWriter(rec) != rec {
				t.Fatal("wrapping a recorder twice must reuse it")
			}
			if rec.Unwrap() != rr {
				t.Fatal("Unwrap does not return the underlying writer")
			}
			tt.handler(rec)
			if rec.Status() != tt.wantStatus || rec.bytes != tt.wantBytes {
				t.Fatalf("status, bytes = %d, %d; want %d, %d", rec.Status(), rec.bytes, tt.wantStatus, tt.wantBytes)
			}
			if rr.Flushed != tt.wantFlush {
				t.Fatalf("flushed = %v, want %v", rr.Flushed, tt.wantFlush)
			}
		})
	}
}
