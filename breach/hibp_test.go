package breach

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// rangeServer is a fake range API. It answers each request with what
// respond returns and records the paths and Add-Padding headers it saw.
type rangeServer struct {
	*httptest.Server

	mu       sync.Mutex
	paths    []string
	paddings []string
}

func newRangeServer(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *rangeServer {
	t.Helper()
	s := &rangeServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.paddings = append(s.paddings, r.Header.Get("Add-Padding"))
		s.mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rangeServer) requests() (paths, paddings []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...), append([]string(nil), s.paddings...)
}

// hexSHA1 is the uppercase hex SHA-1 of password.
func hexSHA1(password string) string {
	sum := sha1.Sum([]byte(password))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// rangeBody answers a range query the way the real API does: the suffixes
// under prefix (uppercase, CRLF), with padding lines of count 0 mixed in.
func rangeBody(lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\n"
}

// fakeSuffix makes a well-formed suffix that is not the one looked for.
func fakeSuffix(i int) string {
	return fmt.Sprintf("%035X", i)
}

func TestHIBPBreached(t *testing.T) {
	const password = "correct horse battery staple"
	full := hexSHA1(password)
	prefix, suffix := full[:5], full[5:]

	tests := []struct {
		name     string
		body     string
		minCount int
		want     bool
	}{
		{"hit", rangeBody(fakeSuffix(1)+":3", suffix+":1234", fakeSuffix(2)+":7"), 0, true},
		{"hit lowercase hex", rangeBody(strings.ToLower(suffix) + ":2"), 0, true},
		{"hit LF only", fakeSuffix(1) + ":3\n" + suffix + ":9\n", 0, true},
		{"hit without final newline", fakeSuffix(1) + ":3\r\n" + suffix + ":9", 0, true},
		{"miss", rangeBody(fakeSuffix(1)+":3", fakeSuffix(2)+":7"), 0, false},
		{"empty answer", "", 0, false},
		{"padding line for the suffix", rangeBody(fakeSuffix(1)+":3", suffix+":0"), 0, false},
		{"padding lines around a hit", rangeBody(fakeSuffix(1)+":0", suffix+":5", fakeSuffix(2)+":0"), 0, true},
		{"below min count", rangeBody(suffix + ":4"), 5, false},
		{"at min count", rangeBody(suffix + ":5"), 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, tt.body)
			})
			h := &HIBP{BaseURL: srv.URL + "/range/", Client: srv.Client(), MinCount: tt.minCount}
			got, err := h.Breached(context.Background(), password)
			if err != nil {
				t.Fatalf("Breached() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("Breached() = %v, want %v", got, tt.want)
			}

			// Only the 5-character prefix may leave; nothing of the
			// suffix, and padding must have been asked for.
			paths, paddings := srv.requests()
			if len(paths) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(paths))
			}
			if want := "/range/" + prefix; paths[0] != want {
				t.Errorf("request path = %q, want %q", paths[0], want)
			}
			if strings.Contains(strings.ToUpper(paths[0]), suffix[:5]) {
				t.Errorf("request path %q leaks part of the suffix", paths[0])
			}
			if paddings[0] != "true" {
				t.Errorf("Add-Padding = %q, want true", paddings[0])
			}
		})
	}
}

func TestHIBPBaseURLWithoutSlash(t *testing.T) {
	srv := newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {})
	h := &HIBP{BaseURL: srv.URL + "/range", Client: srv.Client()}
	if _, err := h.Breached(context.Background(), "x"); err != nil {
		t.Fatalf("Breached() error = %v", err)
	}
	paths, _ := srv.requests()
	if want := "/range/" + hexSHA1("x")[:5]; len(paths) != 1 || paths[0] != want {
		t.Errorf("paths = %q, want [%q]", paths, want)
	}
}

func TestHIBPErrors(t *testing.T) {
	const password = "hunter2"
	suffix := hexSHA1(password)[5:]

	tests := []struct {
		name    string
		respond func(w http.ResponseWriter, r *http.Request)
		maxBody int64
		check   func(t *testing.T, err error)
	}{
		{
			name: "500",
			respond: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			},
			check: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != http.StatusInternalServerError {
					t.Errorf("error = %v, want StatusError 500", err)
				}
			},
		},
		{
			name: "429",
			respond: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusTooManyRequests)
			},
			check: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != http.StatusTooManyRequests {
					t.Errorf("error = %v, want StatusError 429", err)
				}
			},
		},
		{
			name: "malformed line",
			respond: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, rangeBody(suffix+":3", "<html>maintenance</html>"))
			},
			check: wantErrIs(ErrMalformedResponse),
		},
		{
			name: "short suffix",
			respond: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, rangeBody(suffix[1:]+":3"))
			},
			check: wantErrIs(ErrMalformedResponse),
		},
		{
			name: "non-hex suffix",
			respond: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, rangeBody("Z"+suffix[1:]+":3"))
			},
			check: wantErrIs(ErrMalformedResponse),
		},
		{
			name: "bad count",
			respond: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, rangeBody(suffix+":many"))
			},
			check: wantErrIs(ErrMalformedResponse),
		},
		{
			name: "negative count",
			respond: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, rangeBody(suffix+":-1"))
			},
			check: wantErrIs(ErrMalformedResponse),
		},
		{
			name: "too large",
			respond: func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < 100; i++ {
					fmt.Fprint(w, fakeSuffix(i)+":0\r\n")
				}
			},
			maxBody: 1000,
			check:   wantErrIs(ErrResponseTooLarge),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRangeServer(t, tt.respond)
			h := &HIBP{BaseURL: srv.URL, Client: srv.Client(), MaxResponseBytes: tt.maxBody}
			got, err := h.Breached(context.Background(), password)
			if err == nil {
				t.Fatal("Breached() error = nil, want an error")
			}
			if got {
				t.Error("Breached() = true alongside an error")
			}
			if strings.Contains(err.Error(), hexSHA1(password)[:5]) {
				t.Errorf("error %q reveals the prefix", err)
			}
			tt.check(t, err)
		})
	}
}

func wantErrIs(target error) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("error = %v, want %v", err, target)
		}
	}
}

// slowServer answers only after far longer than any test's timeout, or
// when the client gives up.
func slowServer(t *testing.T) *rangeServer {
	return newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
}

func TestHIBPTimeout(t *testing.T) {
	srv := slowServer(t)
	h := &HIBP{BaseURL: srv.URL, Client: srv.Client(), Timeout: 50 * time.Millisecond}
	start := time.Now()
	got, err := h.Breached(context.Background(), "hunter2")
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Breached() took %v, want about the 50ms timeout", elapsed)
	}
	if got {
		t.Error("Breached() = true on a timeout")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want context.DeadlineExceeded", err)
	}
	if err != nil && strings.Contains(err.Error(), hexSHA1("hunter2")[:5]) {
		t.Errorf("error %q reveals the prefix", err)
	}
}

func TestHIBPCallerContext(t *testing.T) {
	srv := slowServer(t)
	h := &HIBP{BaseURL: srv.URL, Client: srv.Client(), Timeout: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Breached(ctx, "hunter2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want context.DeadlineExceeded", err)
	}
}

func TestHIBPUserAgent(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	srv := newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		mu.Unlock()
	})
	for _, ua := range []string{"", "custom/1"} {
		h := &HIBP{BaseURL: srv.URL, Client: srv.Client(), UserAgent: ua}
		if _, err := h.Breached(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{DefaultHIBPUserAgent, "custom/1"}
	if fmt.Sprint(agents) != fmt.Sprint(want) {
		t.Errorf("User-Agent = %q, want %q", agents, want)
	}
}
