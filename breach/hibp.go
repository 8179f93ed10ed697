package breach

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero fields of HIBP.
const (
	DefaultHIBPBaseURL = "https://api.pwnedpasswords.com/range/"
	// DefaultHIBPTimeout bounds a whole range query: a person is waiting
	// on a form.
	DefaultHIBPTimeout = 3 * time.Second
	// DefaultHIBPMaxResponseBytes bounds the body read. A padded range
	// answer is 800 to 1,000 lines of about 40 bytes; 1 MiB leaves room
	// for growth while keeping a misbehaving server from filling memory.
	DefaultHIBPMaxResponseBytes = 1 << 20
	// DefaultHIBPUserAgent names the client, as the range API asks.
	DefaultHIBPUserAgent = "portcullis-breach-check"
)

// hibpPrefixLen is how many hex characters of the SHA-1 leave the server.
// The rest stay here: the k-anonymity model of the range API.
const (
	hibpPrefixLen = 5
	hibpSuffixLen = 2*sha1.Size - hibpPrefixLen
)

// Errors a range query can wrap, besides those of the transport and the
// context (a timeout wraps context.DeadlineExceeded).
var (
	ErrMalformedResponse = errors.New("breach: malformed range response")
	ErrResponseTooLarge  = errors.New("breach: range response too large")
)

// StatusError is a range answer whose HTTP status is not 200.
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("breach: range query answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// HIBP checks passwords against the Have I Been Pwned Pwned Passwords range
// API. Only the first 5 hex characters of the password's SHA-1 are sent;
// the answer lists every known suffix under that prefix, and the match is
// made here. Responses are requested padded (Add-Padding), so their size
// does not hint at the prefix either. The zero value is ready to use with
// the defaults; an HIBP is safe for concurrent use as long as its fields
// are not changed.
type HIBP struct {
	// BaseURL is the range endpoint; the prefix is appended to it.
	// "" means DefaultHIBPBaseURL.
	BaseURL string
	// Client sends the query; nil means http.DefaultClient.
	Client *http.Client
	// Timeout bounds each query on top of the caller's context; zero
	// means DefaultHIBPTimeout, negative means only the context bounds it.
	Timeout time.Duration
	// MinCount is how many times a password must have been seen for it
	// to count as breached; zero or less means once. Raising it lets
	// passwords seen only rarely through, for operators who want to
	// refuse only the well-known ones.
	MinCount int
	// MaxResponseBytes bounds the body read; zero or less means
	// DefaultHIBPMaxResponseBytes.
	MaxResponseBytes int64
	// UserAgent is sent with each query; "" means DefaultHIBPUserAgent.
	UserAgent string
}

// Breached reports whether the range API lists password at least MinCount
// times. An error (transport, timeout, a status other than 200, a body too
// large or malformed) comes back wrapped with false: whether to accept the
// password then is the caller's decision (see Checker).
func (h *HIBP) Breached(ctx context.Context, password string) (bool, error) {
	return h.breachedDigest(ctx, sha1.Sum([]byte(password)))
}

func (h *HIBP) breachedDigest(ctx context.Context, digest [sha1.Size]byte) (bool, error) {
	var hexBuf [2 * sha1.Size]byte
	hex.Encode(hexBuf[:], digest[:])
	hexDigest := bytes.ToUpper(hexBuf[:])
	prefix, suffix := string(hexDigest[:hibpPrefixLen]), hexDigest[hibpPrefixLen:]

	if timeout := h.timeout(); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	// The prefix is left out of every error: logged next to an account it
	// would narrow the password's hash to one in a million.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.rangeURL(prefix), nil)
	if err != nil {
		return false, fmt.Errorf("breach: build range request: %w", err)
	}
	req.Header.Set("Add-Padding", "true")
	req.Header.Set("User-Agent", h.userAgent())

	resp, err := h.client().Do(req)
	if err != nil {
		return false, fmt.Errorf("breach: range query: %w", redactURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return false, fmt.Errorf("breach: range query: %w", &StatusError{StatusCode: resp.StatusCode})
	}

	limit := h.maxResponseBytes()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return false, fmt.Errorf("breach: read range response: %w", err)
	}
	if int64(len(body)) > limit {
		return false, fmt.Errorf("breach: read range response: %w (over %d bytes)", ErrResponseTooLarge, limit)
	}
	count, err := findSuffix(body, suffix)
	if err != nil {
		return false, fmt.Errorf("breach: parse range response: %w", err)
	}
	return count >= h.minCount(), nil
}

// findSuffix returns the count of suffix in a range answer, 0 when it is
// absent. Padding lines carry a count of 0, so they never match. Every line
// is checked, so a garbled answer is an error rather than a quiet miss.
func findSuffix(body, suffix []byte) (int, error) {
	found := 0
	for lineNo := 1; len(body) > 0; lineNo++ {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		hash, countText, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(hash) != hibpSuffixLen || !isHex(hash) {
			return 0, fmt.Errorf("%w: line %d is not SUFFIX:COUNT", ErrMalformedResponse, lineNo)
		}
		count, err := strconv.Atoi(string(countText))
		if err != nil || count < 0 {
			return 0, fmt.Errorf("%w: line %d has a bad count", ErrMalformedResponse, lineNo)
		}
		if count > 0 && bytes.EqualFold(hash, suffix) {
			found = count
		}
	}
	return found, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// redactURL drops the URL, and so the prefix, from a transport error while
// keeping what it wraps, so that errors.Is still finds a timeout.
func redactURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr.Err != nil {
		return fmt.Errorf("%s: %w", uerr.Op, uerr.Err)
	}
	return err
}

func (h *HIBP) rangeURL(prefix string) string {
	base := h.BaseURL
	if base == "" {
		base = DefaultHIBPBaseURL
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + prefix
}

func (h *HIBP) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return http.DefaultClient
}

func (h *HIBP) timeout() time.Duration {
	if h.Timeout == 0 {
		return DefaultHIBPTimeout
	}
	return h.Timeout
}

func (h *HIBP) minCount() int {
	if h.MinCount <= 0 {
		return 1
	}
	return h.MinCount
}

func (h *HIBP) maxResponseBytes() int64 {
	if h.MaxResponseBytes <= 0 {
		return DefaultHIBPMaxResponseBytes
	}
	return h.MaxResponseBytes
}

func (h *HIBP) userAgent() string {
	if h.UserAgent == "" {
		return DefaultHIBPUserAgent
	}
	return h.UserAgent
}
