package server

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/portcullis/portcullis/ipnets"
	"github.com/portcullis/portcullis/reqinfo"
)

// RequestIDHeader is the header carrying the request id in both directions,
// so a proxy-assigned id can be correlated with our logs and a client can
// quote it back in a bug report.
const RequestIDHeader = "X-Request-Id"

const maxRequestIDLen = 64

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error since Go 1.24; it crashes the
	// program instead of handing out predictable bytes.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// propagatePattern copies the route the mux recorded on an inner request
// copy back to the outer request. http.ServeMux sets r.Pattern on the
// *http.Request it is handed, so without this an AccessLog or Metrics placed
// outside a middleware that calls r.WithContext would always see "".
func propagatePattern(outer, inner *http.Request) {
	if outer != inner && outer.Pattern == "" {
		outer.Pattern = inner.Pattern
	}
}

// AccessLog writes one line per completed request. Place it inside Identify
// so it can see the request identity.
//
// Only r.URL.Path is logged, never the query string or RequestURI: on an
// authorization server those carry authorization codes, state and sometimes
// tokens.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := wrapResponseWriter(w)
			completed := false
			// Logging from a defer keeps the line for requests whose handler
			// panicked (including http.ErrAbortHandler) when a Recoverer sits
			// outside us; recover is deliberately not called so the outer
			// Recoverer still sees the original stack.
			defer func() {
				status := rec.Status()
				level := slog.LevelInfo
				attrs := make([]slog.Attr, 0, 10)
				if !completed {
					if !rec.wroteHeader {
						status = http.StatusInternalServerError
					}
					attrs = append(attrs, slog.Bool("panic", true))
				}
				if status >= 500 {
					level = slog.LevelWarn
				}
				attrs = append(attrs,
					slog.String("method", r.Method),
					// Read after next: the mux fills r.Pattern while serving.
					slog.String("route", r.Pattern),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Int64("bytes", rec.bytes),
					slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
					slog.String("request_id", reqinfo.From(r.Context()).RequestID),
					slog.String("client_ip", clientIPString(r)),
				)
				logger.LogAttrs(r.Context(), level, "http request", attrs...)
			}()
			next.ServeHTTP(rec, r)
			completed = true
		})
	}
}

// clientIPString prefers the address resolved by Identify, which honours
// trusted proxies, and falls back to the TCP peer.
func clientIPString(r *http.Request) string {
	if ip := reqinfo.From(r.Context()).IP; ip.IsValid() {
		return ip.String()
	}
	if ip := remoteAddr(r.RemoteAddr); ip.IsValid() {
		return ip.String()
	}
	return ""
}

// remoteAddr parses http.Request.RemoteAddr, which is normally host:port but
// may be a bare address in tests or behind unusual listeners.
func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ipnets.Normalize(ap.Addr())
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return ipnets.Normalize(a)
	}
	return netip.Addr{}
}

// The policy is deliberately strict because every HTML page this server
// renders (login, consent) is self-contained. There is no form-action
// directive: Chrome enforces form-action on every hop of the redirect chain
// that follows a form POST, and after login that chain must end at the
// client's redirect_uri, which we cannot enumerate here. Images are the
// one exception to self-containment: img-src admits any https: URL because
// the sign-in pages show the logo each client registered, wherever it is
// hosted (they load it without a Referer).
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; " +
	"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"

// SecurityHeaders sets defensive headers on every response. They are set
// before next runs, so a handler that needs a different policy can overwrite
// a header as long as it does so before writing the response.
func SecurityHeaders(https bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			// same-origin, not no-referrer: under no-referrer browsers send
			// "Origin: null" on our own form posts, which cross-origin
			// checks must then treat as foreign. same-origin still gives
			// other sites nothing (no code or state from our URLs leaks
			// through Referer when the browser follows a redirect_uri).
			h.Set("Referrer-Policy", "same-origin")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			// HSTS over plain HTTP is ignored by browsers and would only
			// mislead; sent only when we are reached over TLS.
			if https {
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Recoverer turns a panic into a logged 500 so one bad request cannot take
// the process down or leave a half-written response looking complete.
//
// If the handler had already started the response, a status can no longer be
// sent; the connection is then aborted with http.ErrAbortHandler so the client
// sees a truncated response rather than a syntactically complete wrong one.
// http.ErrAbortHandler itself is re-panicked untouched: net/http handles it
// silently and it is not a bug.
func Recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := wrapResponseWriter(w)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.Any("panic", v),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("request_id", reqinfo.From(r.Context()).RequestID),
					slog.String("stack", string(debug.Stack())),
				)
				if rec.wroteHeader {
					panic(http.ErrAbortHandler)
				}
				h := rec.Header()
				// Drop what the handler may have prepared for its own body.
				h.Del("Content-Length")
				h.Del("Content-Encoding")
				h.Del("Content-Disposition")
				h.Set("Content-Type", "application/json")
				h.Set("Cache-Control", "no-store")
				h.Set("X-Content-Type-Options", "nosniff")
				rec.WriteHeader(http.StatusInternalServerError)
				_, _ = rec.Write([]byte(`{"error":"server_error"}` + "\n"))
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// responseRecorder records the status and body size for logging and metrics.
// Unwrap lets http.ResponseController reach the underlying writer's optional
// interfaces (hijacking, deadlines, full-duplex).
type responseRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

var (
	_ http.Flusher = (*responseRecorder)(nil)
	_ interface {
		Unwrap() http.ResponseWriter
	} = (*responseRecorder)(nil)
)

// wrapResponseWriter reuses an existing recorder so stacking AccessLog,
// Metrics and Recoverer costs one wrapper, not three.
func wrapResponseWriter(w http.ResponseWriter) *responseRecorder {
	if rec, ok := w.(*responseRecorder); ok {
		return rec
	}
	return &responseRecorder{ResponseWriter: w}
}

func (rec *responseRecorder) WriteHeader(code int) {
	// 1xx responses other than 101 are informational (e.g. 103 Early Hints)
	// and are followed by the real status.
	if !rec.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rec.status = code
		rec.wroteHeader = true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *responseRecorder) Write(b []byte) (int, error) {
	if !rec.wroteHeader {
		rec.status = http.StatusOK
		rec.wroteHeader = true
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher; flushing commits the headers with 200 when
// nothing was written yet, exactly as net/http does.
func (rec *responseRecorder) Flush() {
	if !rec.wroteHeader {
		rec.status = http.StatusOK
		rec.wroteHeader = true
	}
	_ = http.NewResponseController(rec.ResponseWriter).Flush()
}

func (rec *responseRecorder) Unwrap() http.ResponseWriter {
	return rec.ResponseWriter
}

// Status is the status sent to the client; a handler that writes nothing
// results in 200.
func (rec *responseRecorder) Status() int {
	if !rec.wroteHeader {
		return http.StatusOK
	}
	return rec.status
}
