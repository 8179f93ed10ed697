package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

// cheapArgon2 keeps tests fast; production parameters are far higher.
var cheapArgon2 = hashing.Argon2{Memory: 64, Iterations: 1, Parallelism: 1}

// manualClock is a clock tests move by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingStore counts session writes on a real store, to show what did or
// did not happen.
type countingStore struct {
	*storage.Store
	creates atomic.Int32
	touches atomic.Int32
}

func (s *countingStore) CreateBrowserSession(ctx context.Context, bs *storage.BrowserSession) error {
	s.creates.Add(1)
	return s.Store.CreateBrowserSession(ctx, bs)
}

func (s *countingStore) TouchBrowserSession(ctx context.Context, id string, at time.Time) error {
	s.touches.Add(1)
	return s.Store.TouchBrowserSession(ctx, id, at)
}

// openAuthnStore opens a migrated SQLite database in a temporary directory.
func openAuthnStore(t *testing.T, clock *manualClock) *countingStore {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "authn.db"), storage.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return &countingStore{Store: st}
}

// addUser creates a user with password under hasher.
func addUser(t *testing.T, st *countingStore, hasher hashing.Argon2, username, password string, disabled bool) *storage.User {
	t.Helper()
	u, err := NewUser(UserSpec{Username: username, Password: password}, hasher)
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = disabled
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// responseCookie returns the cookie named name set by rec, or nil.
func responseCookie(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSessionsStartCookie(t *testing.T) {
	tests := []struct {
		name       string
		cfg        SessionConfig
		remoteAddr string
		wantName   string
		wantMaxAge int
		wantIP     string
	}{
		{
			name:       "defaults",
			cfg:        SessionConfig{Lifetime: time.Hour},
			remoteAddr: "192.0.2.1:4567",
			wantName:   DefaultSessionCookieName, wantMaxAge: 3600, wantIP: "192.0.2.1",
		},
		{
			name:       "secure with custom name",
			cfg:        SessionConfig{CookieName: "__Host-sid", Lifetime: 2 * time.Hour, Secure: true},
			remoteAddr: "[2001:db8::1]:443",
			wantName:   "__Host-sid", wantMaxAge: 7200, wantIP: "2001:db8::1",
		},
		{
			name:       "browser cookie",
			cfg:        SessionConfig{Browser: true, Lifetime: time.Hour},
			remoteAddr: "192.0.2.1:4567",
			wantName:   DefaultSessionCookieName, wantMaxAge: 0, wantIP: "192.0.2.1",
		},
		{
			name: "trusted client IP",
			cfg: SessionConfig{Lifetime: time.Hour, ClientIP: func(*http.Request) string {
				return "198.51.100.7"
			}},
			remoteAddr: "10.0.0.1:4567",
			wantName:   DefaultSessionCookieName, wantMaxAge: 3600, wantIP: "198.51.100.7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newManualClock()
			st := openAuthnStore(t, clock)
			u := addUser(t, st, cheapArgon2, "alice", "correct horse", false)
			s := NewSessions(st, st, tt.cfg, clock.Now)

			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			req.RemoteAddr = tt.remoteAddr
			req.Header.Set("User-Agent", strings.Repeat("é", 200)+"\x01")
			rec := httptest.NewRecorder()
			bs, err := s.Start(req.Context(), rec, req, u)
			if err != nil {
				t.Fatal(err)
			}

			ck := responseCookie(rec, tt.wantName)
			if ck == nil {
				t.Fatalf("no %s cookie in %v", tt.wantName, rec.Header()["Set-Cookie"])
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure != tt.cfg.Secure {
				t.Errorf("cookie attributes: %s", ck)
			}
			if ck.MaxAge != tt.wantMaxAge {
				t.Errorf("Max-Age = %d, want %d", ck.MaxAge, tt.wantMaxAge)
			}
			if !validSecret(ck.Value) {
				t.Errorf("cookie value %q is not 32 random bytes", ck.Value)
			}
			sum := sha256.Sum256([]byte(ck.Value))
			if bs.ID != hex.EncodeToString(sum[:]) || bs.ID == ck.Value {
				t.Errorf("row id %q is not the SHA-256 of the cookie", bs.ID)
			}
			if want := clock.Now().Add(tt.cfg.Lifetime); !bs.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", bs.ExpiresAt, want)
			}
			if bs.IP != tt.wantIP {
				t.Errorf("IP = %q, want %q", bs.IP, tt.wantIP)
			}
			if len(bs.UserAgent) > maxUserAgentLen || strings.ContainsRune(bs.UserAgent, '\x01') || !strings.HasPrefix(bs.UserAgent, "éé") {
				t.Errorf("user agent not cleaned and truncated: %d bytes %q", len(bs.UserAgent), bs.UserAgent)
			}

			req2 := httptest.NewRequest(http.MethodGet, "/", nil)
			req2.AddCookie(ck)
			id, err := s.Current(req2)
			if err != nil || id == nil || id.User.ID != u.ID {
				t.Fatalf("Current = %+v, %v; want user %s", id, err, u.ID)
			}
		})
	}
}

func TestSessionsStartReplacesExistingSession(t *testing.T) {
	clock := newManualClock()
	st := openAuthnStore(t, clock)
	alice := addUser(t, st, cheapArgon2, "alice", "correct horse", false)
	mallory := addUser(t, st, cheapArgon2, "mallory", "correct horse", false)
	s := NewSessions(st, st, SessionConfig{Lifetime: time.Hour}, clock.Now)

	// The attacker signs in and plants their session cookie in the victim's
	// browser.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	if _, err := s.Start(req.Context(), rec, req, mallory); err != nil {
		t.Fatal(err)
	}
	planted := responseCookie(rec, DefaultSessionCookieName)

	// The victim signs in with that cookie present.
	req = httptest.NewRequest(http.MethodPost, "/login", nil)
	req.AddCookie(planted)
	rec = httptest.NewRecorder()
	if _, err := s.Start(req.Context(), rec, req, alice); err != nil {
		t.Fatal(err)
	}
	fresh := responseCookie(rec, DefaultSessionCookieName)
	if fresh == nil || fresh.Value == planted.Value {
		t.Fatalf("sign-in kept the planted session id")
	}

	tests := []struct {
		name   string
		cookie *http.Cookie
		want   string
	}{
		{"planted cookie is dead", planted, ""},
		{"new cookie is the victim", fresh, alice.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.AddCookie(tt.cookie)
			id, err := s.Current(req)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if id != nil {
				got = id.User.ID
			}
			if got != tt.want {
				t.Errorf("Current user = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSessionsCurrent(t *testing.T) {
	const lifetime = time.Hour
	tests := []struct {
		name     string
		disabled bool
		// act runs after sign-in, with the session cookie.
		act      func(t *testing.T, s *Sessions, clock *manualClock, ck *http.Cookie)
		noCookie bool
		cookie   string // replaces the session cookie's value when set
		wantUser bool
	}{
		{name: "valid session", wantUser: true},
		{name: "no cookie", noCookie: true},
		{name: "junk cookie", cookie: "not-a-session"},
		{name: "well-formed unknown cookie", cookie: randomSecret()},
		{name: "disabled user", disabled: true},
		{
			name: "after End",
			act: func(t *testing.T, s *Sessions, _ *manualClock, ck *http.Cookie) {
				req := httptest.NewRequest(http.MethodPost, "/logout", nil)
				req.AddCookie(ck)
				rec := httptest.NewRecorder()
				if err := s.End(rec, req); err != nil {
					t.Fatal(err)
				}
				gone := responseCookie(rec, DefaultSessionCookieName)
				if gone == nil || gone.MaxAge >= 0 || gone.Value != "" {
					t.Errorf("End did not expire the cookie: %v", rec.Header()["Set-Cookie"])
				}
			},
		},
		{
			name: "just before expiry",
			act: func(_ *testing.T, _ *Sessions, clock *manualClock, _ *http.Cookie) {
				clock.Advance(lifetime - time.Second)
			},
			wantUser: true,
		},
		{
			name: "at expiry",
			act: func(_ *testing.T, _ *Sessions, clock *manualClock, _ *http.Cookie) {
				clock.Advance(lifetime)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newManualClock()
			st := openAuthnStore(t, clock)
			u := addUser(t, st, cheapArgon2, "alice", "correct horse", tt.disabled)
			s := NewSessions(st, st, SessionConfig{Lifetime: lifetime}, clock.Now)
			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			rec := httptest.NewRecorder()
			if _, err := s.Start(req.Context(), rec, req, u); err != nil {
				t.Fatal(err)
			}
			ck := responseCookie(rec, DefaultSessionCookieName)
			if tt.act != nil {
				tt.act(t, s, clock, ck)
			}
			if tt.cookie != "" {
				ck.Value = tt.cookie
			}
			req = httptest.NewRequest(http.MethodGet, "/", nil)
			if !tt.noCookie {
				req.AddCookie(ck)
			}
			id, err := s.Current(req)
			if err != nil {
				t.Fatal(err)
			}
			if (id != nil) != tt.wantUser {
				t.Fatalf("Current = %+v, want a user: %v", id, tt.wantUser)
			}
			if id != nil && (id.User.ID != u.ID || id.Session.UserID != u.ID) {
				t.Errorf("Current = %+v, want user %s", id, u.ID)
			}
		})
	}
}

func TestSessionsTouchAtMostOncePerMinute(t *testing.T) {
	clock := newManualClock()
	st := openAuthnStore(t, clock)
	u := addUser(t, st, cheapArgon2, "alice", "correct horse", false)
	s := NewSessions(st, st, SessionConfig{Lifetime: time.Hour}, clock.Now)
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	rec := httptest.NewRecorder()
	if _, err := s.Start(req.Context(), rec, req, u); err != nil {
		t.Fatal(err)
	}
	ck := responseCookie(rec, DefaultSessionCookieName)

	steps := []struct {
		advance     time.Duration
		wantTouches int32
	}{
		{0, 0},
		{30 * time.Second, 0},
		{30 * time.Second, 1}, // a minute after sign-in
		{10 * time.Second, 1},
		{50 * time.Second, 2},
	}
	for i, step := range steps {
		clock.Advance(step.advance)
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(ck)
		id, err := s.Current(req)
		if err != nil || id == nil {
			t.Fatalf("step %d: Current = %v, %v", i, id, err)
		}
		if got := st.touches.Load(); got != step.wantTouches {
			t.Fatalf("step %d: %d touches, want %d", i, got, step.wantTouches)
		}
	}
	bs, err := st.BrowserSession(context.Background(), sessionID(ck.Value))
	if err != nil {
		t.Fatal(err)
	}
	if !bs.LastSeenAt.Equal(clock.Now()) {
		t.Errorf("LastSeenAt = %v, want %v", bs.LastSeenAt, clock.Now())
	}
}

func TestSessionsEndWithoutCookie(t *testing.T) {
	clock := newManualClock()
	st := openAuthnStore(t, clock)
	s := NewSessions(st, st, SessionConfig{}, clock.Now)
	rec := httptest.NewRecorder()
	if err := s.End(rec, httptest.NewRequest(http.MethodPost, "/logout", nil)); err != nil {
		t.Fatal(err)
	}
	if ck := responseCookie(rec, DefaultSessionCookieName); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("End without a session should still expire the cookie: %v", rec.Header()["Set-Cookie"])
	}
}
