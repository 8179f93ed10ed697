package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// cheapArgon2 keeps tests fast; production parameters are far higher.
var cheapArgon2 = hashing.Argon2{Memory: 64, Iterations: 1, Parallelism: 1}

// testEpoch is where every test clock starts: whole seconds, far from the
// real time, so code that reads time.Now instead of the clock shows up.
var testEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newClock() *storagetest.Clock { return storagetest.NewClock(testEpoch) }

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

// openAuthnStore opens a migrated SQLite database in a temporary directory,
// on clock.
func openAuthnStore(t *testing.T, clock *storagetest.Clock) *countingStore {
	t.Helper()
	return &countingStore{Store: storagetest.OpenWithClock(t, storagetest.SQLiteURL(t), clock.Now)}
}

// livePolicy is a session policy tests change while sessions exist, as an
// administrator would; Sessions reads it on every call.
type livePolicy struct {
	mu  sync.Mutex
	pol policies.Session
}

func newLivePolicy(edit func(*policies.Session)) *livePolicy {
	p := &livePolicy{pol: policies.Defaults().Session}
	if edit != nil {
		edit(&p.pol)
	}
	return p
}

// Get is the same policy for every application, so tests that are not
// about per-application admission see one policy.
func (p *livePolicy) Get(string) policies.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pol
}

func (p *livePolicy) Set(edit func(*policies.Session)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	edit(&p.pol)
}

// cookieFor makes a policy edit setting the cookie lifetime.
func cookieFor(d time.Duration) func(*policies.Session) {
	return func(p *policies.Session) { p.Cookie = policies.CookieLifetime{Duration: policies.Duration(d)} }
}

// sessionEnv is a Sessions on a real store with a real audit recorder.
type sessionEnv struct {
	clock    *storagetest.Clock
	st       *countingStore
	policy   *livePolicy
	recorder *audit.Recorder
	sessions *Sessions
}

func newSessionEnv(t *testing.T, cfg SessionConfig, edit func(*policies.Session)) *sessionEnv {
	t.Helper()
	e := &sessionEnv{clock: newClock(), policy: newLivePolicy(edit)}
	e.st = openAuthnStore(t, e.clock)
	e.recorder = audit.NewRecorder(e.st.Store, nil, e.clock.Now)
	if cfg.Policy == nil {
		cfg.Policy = e.policy.Get
	}
	cfg.Recorder = e.recorder
	cfg.Logger = slog.New(slog.DiscardHandler)
	e.sessions = NewSessions(e.st, e.st, cfg, e.clock.Now)
	return e
}

// start signs u in from a fresh browser and returns the session and its
// cookie.
func (e *sessionEnv) start(t *testing.T, u *storage.User) (*storage.BrowserSession, *http.Cookie) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	rec := httptest.NewRecorder()
	bs, err := e.sessions.Start(req.Context(), rec, req, u, Proof{})
	if err != nil {
		t.Fatalf("Start(%s): %v", u.Username, err)
	}
	ck := responseCookie(rec, e.sessions.cfg.CookieName)
	if ck == nil {
		t.Fatalf("Start set no session cookie: %v", rec.Header()["Set-Cookie"])
	}
	return bs, ck
}

// current asks who the browser holding ck is.
func (e *sessionEnv) current(t *testing.T, ck *http.Cookie) *Identity {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(ck)
	id, err := e.sessions.Current(req)
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return id
}

// events returns the audit events of type typ about user, oldest first.
func events(t *testing.T, rec *audit.Recorder, typ, userID string) []audit.Event {
	t.Helper()
	evs, _, err := rec.Query(t.Context(), audit.Query{Type: typ, UserID: userID, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(evs)
	return evs
}

// tokenSession is what oauth's session tells storage: the browser session
// a token was issued under.
type tokenSession struct {
	openid.DefaultSession
	BrowserSessionID string `json:"browser_session_id"`
}

func (s *tokenSession) GetBrowserSessionID() string { return s.BrowserSessionID }

// issueToken stores an access token for user under browser session sid,
// through the store's fosite API, and returns its signature.
func issueToken(t *testing.T, st *storage.Store, userID, sid string) string {
	t.Helper()
	ctx := t.Context()
	client, err := st.Client(ctx, "app")
	if errors.Is(err, storage.ErrNotFound) {
		client = &storage.Client{ID: "app", Name: "App", RedirectURIs: []string{"https://app.test/cb"}, Public: true}
		err = st.CreateClient(ctx, client)
	}
	if err != nil {
		t.Fatal(err)
	}
	sig := "sig-" + randomSecret()
	sess := &tokenSession{DefaultSession: openid.DefaultSession{Subject: userID}, BrowserSessionID: sid}
	req := &fosite.Request{ID: "req-" + sig, RequestedAt: testEpoch, Client: client, Session: sess}
	if err := st.CreateAccessTokenSession(ctx, sig, req); err != nil {
		t.Fatal(err)
	}
	return sig
}

// tokenActive reports whether the access token with signature sig is live.
func tokenActive(t *testing.T, st *storage.Store, sig string) bool {
	t.Helper()
	_, err := st.GetAccessTokenSession(t.Context(), sig, &tokenSession{})
	if errors.Is(err, fosite.ErrInactiveToken) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// sessionExists reports whether browser session id is still live in the
// store.
func sessionExists(t *testing.T, st *storage.Store, userID, id string) bool {
	t.Helper()
	live, err := st.UserBrowserSessions(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(live, func(bs storage.BrowserSession) bool { return bs.ID == id })
}

// addUser creates a user with password under hasher.
func addUser(t *testing.T, st *countingStore, hasher hashing.Argon2, username, password string, disabled bool) *storage.User {
	t.Helper()
	hash, err := hasher.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	// Stored directly: a disabled account cannot be made through Accounts.
	u := &storage.User{ID: uuid.NewString(), Username: username, PasswordHash: hash, Disabled: disabled}
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
		policy     func(*policies.Session)
		remoteAddr string // the TCP peer; httptest's when empty
		clientIP   string // what the server's middleware resolved
		wantName   string
		// wantMaxAge 0 means no Max-Age: the cookie dies with the browser.
		wantMaxAge int
		wantExpiry time.Duration
		wantIP     string
		// legacy leaves Policy unset, so the deprecated fields of cfg rule.
		legacy bool
	}{
		{
			name:     "policy duration",
			policy:   cookieFor(time.Hour),
			clientIP: "192.0.2.1",
			wantName: DefaultSessionCookieName, wantMaxAge: 3600, wantExpiry: time.Hour, wantIP: "192.0.2.1",
		},
		{
			name:     "default policy: 336h",
			clientIP: "192.0.2.1",
			wantName: DefaultSessionCookieName, wantMaxAge: 1209600, wantExpiry: 336 * time.Hour, wantIP: "192.0.2.1",
		},
		{
			name:     "secure with custom name",
			cfg:      SessionConfig{CookieName: "__Host-sid", Secure: true},
			policy:   cookieFor(2 * time.Hour),
			clientIP: "2001:db8::1",
			wantName: "__Host-sid", wantMaxAge: 7200, wantExpiry: 2 * time.Hour, wantIP: "2001:db8::1",
		},
		{
			name:     "browser cookie: no Max-Age, 24h on the server",
			policy:   func(p *policies.Session) { p.Cookie = policies.CookieLifetime{Browser: true} },
			clientIP: "192.0.2.1",
			wantName: DefaultSessionCookieName, wantMaxAge: 0, wantExpiry: DefaultSessionLifetime, wantIP: "192.0.2.1",
		},
		{
			name: "absolute timeout caps cookie and row",
			policy: func(p *policies.Session) {
				cookieFor(time.Hour)(p)
				p.AbsoluteTimeout = policies.Duration(30 * time.Minute)
			},
			clientIP: "192.0.2.1",
			wantName: DefaultSessionCookieName, wantMaxAge: 1800, wantExpiry: 30 * time.Minute, wantIP: "192.0.2.1",
		},
		{
			name: "absolute timeout caps a browser session's row",
			policy: func(p *policies.Session) {
				p.Cookie = policies.CookieLifetime{Browser: true}
				p.AbsoluteTimeout = policies.Duration(2 * time.Hour)
			},
			clientIP: "192.0.2.1",
			wantName: DefaultSessionCookieName, wantMaxAge: 0, wantExpiry: 2 * time.Hour, wantIP: "192.0.2.1",
		},
		{
			name: "absolute timeout longer than the cookie changes nothing",
			policy: func(p *policies.Session) {
				cookieFor(time.Hour)(p)
				p.AbsoluteTimeout = policies.Duration(8 * time.Hour)
			},
			clientIP: "192.0.2.1",
			wantName: DefaultSessionCookieName, wantMaxAge: 3600, wantExpiry: time.Hour, wantIP: "192.0.2.1",
		},
		{
			name:       "the resolved client IP, not the proxy",
			policy:     cookieFor(time.Hour),
			remoteAddr: "10.0.0.1:4567",
			clientIP:   "198.51.100.7",
			wantName:   DefaultSessionCookieName, wantMaxAge: 3600, wantExpiry: time.Hour, wantIP: "198.51.100.7",
		},
		{
			name:     "no policy: the deprecated fields",
			cfg:      SessionConfig{Lifetime: 2 * time.Hour},
			legacy:   true,
			clientIP: "192.0.2.1",
			wantName: DefaultSessionCookieName, wantMaxAge: 7200, wantExpiry: 2 * time.Hour, wantIP: "192.0.2.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, tt.cfg, tt.policy)
			if tt.legacy {
				cfg := tt.cfg
				cfg.Recorder = e.recorder
				e.sessions = NewSessions(e.st, e.st, cfg, e.clock.Now)
			}
			u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)

			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			if tt.remoteAddr != "" {
				req.RemoteAddr = tt.remoteAddr
			}
			req = req.WithContext(reqinfo.With(req.Context(), reqinfo.Info{IP: netip.MustParseAddr(tt.clientIP), DeviceID: "browser-1"}))
			req.Header.Set("User-Agent", strings.Repeat("é", 200)+"\x01")
			rec := httptest.NewRecorder()
			bs, err := e.sessions.Start(req.Context(), rec, req, u, Proof{})
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
			if raw := rec.Header().Get("Set-Cookie"); tt.wantMaxAge == 0 && (strings.Contains(raw, "Max-Age") || strings.Contains(raw, "Expires")) {
				t.Errorf("browser cookie has a lifetime: %s", raw)
			}
			if !validSecret(ck.Value) {
				t.Errorf("cookie value %q is not 32 random bytes", ck.Value)
			}
			sum := sha256.Sum256([]byte(ck.Value))
			if bs.ID != hex.EncodeToString(sum[:]) || bs.ID == ck.Value {
				t.Errorf("row id %q is not the SHA-256 of the cookie", bs.ID)
			}
			if want := e.clock.Now().Add(tt.wantExpiry); !bs.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", bs.ExpiresAt, want)
			}
			if bs.IP != tt.wantIP {
				t.Errorf("IP = %q, want %q", bs.IP, tt.wantIP)
			}
			if len(bs.UserAgent) > maxUserAgentLen || strings.ContainsRune(bs.UserAgent, '\x01') || !strings.HasPrefix(bs.UserAgent, "éé") {
				t.Errorf("user agent not cleaned and truncated: %d bytes %q", len(bs.UserAgent), bs.UserAgent)
			}
			if id := e.current(t, ck); id == nil || id.User.ID != u.ID {
				t.Fatalf("Current = %+v; want user %s", id, u.ID)
			}
			started := events(t, e.recorder, audit.TypeSessionStarted, u.ID)
			if len(started) != 1 || started[0].Outcome != audit.OutcomeSuccess || started[0].IP != tt.wantIP ||
				started[0].Device != "browser-1" || started[0].Details["session_id"] != bs.ID {
				t.Errorf("session.started events = %+v", started)
			}
		})
	}
}

func TestSessionsStartReplacesExistingSession(t *testing.T) {
	e := newSessionEnv(t, SessionConfig{}, cookieFor(time.Hour))
	alice := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
	mallory := addUser(t, e.st, cheapArgon2, "mallory", "correct horse", false)

	// The attacker signs in and plants their session cookie in the victim's
	// browser.
	plantedSession, planted := e.start(t, mallory)

	// The victim signs in with that cookie present.
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	req.AddCookie(planted)
	rec := httptest.NewRecorder()
	if _, err := e.sessions.Start(req.Context(), rec, req, alice, Proof{}); err != nil {
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
			got := ""
			if id := e.current(t, tt.cookie); id != nil {
				got = id.User.ID
			}
			if got != tt.want {
				t.Errorf("Current user = %q, want %q", got, tt.want)
			}
		})
	}
	ended := events(t, e.recorder, audit.TypeSessionEnded, mallory.ID)
	if len(ended) != 1 || ended[0].Reason != EndReasonReplaced || ended[0].Actor != alice.ID ||
		ended[0].Details["session_id"] != plantedSession.ID {
		t.Errorf("session.ended events = %+v", ended)
	}
}

func TestSessionsCurrent(t *testing.T) {
	const lifetime = time.Hour
	tests := []struct {
		name     string
		disabled bool
		// act runs after sign-in, with the session cookie.
		act      func(t *testing.T, e *sessionEnv, ck *http.Cookie)
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
			act: func(t *testing.T, e *sessionEnv, ck *http.Cookie) {
				req := httptest.NewRequest(http.MethodPost, "/logout", nil)
				req.AddCookie(ck)
				rec := httptest.NewRecorder()
				if err := e.sessions.End(rec, req); err != nil {
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
			act: func(_ *testing.T, e *sessionEnv, _ *http.Cookie) {
				e.clock.Advance(lifetime - time.Second)
			},
			wantUser: true,
		},
		{
			name: "at expiry",
			act: func(_ *testing.T, e *sessionEnv, _ *http.Cookie) {
				e.clock.Advance(lifetime)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, SessionConfig{}, cookieFor(lifetime))
			u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", tt.disabled)
			_, ck := e.start(t, u)
			if tt.act != nil {
				tt.act(t, e, ck)
			}
			if tt.cookie != "" {
				ck.Value = tt.cookie
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if !tt.noCookie {
				req.AddCookie(ck)
			}
			id, err := e.sessions.Current(req)
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

func TestSessionsTimeouts(t *testing.T) {
	// step is one request after sign-in: advance the clock by after, then
	// ask who the browser is.
	type step struct {
		after time.Duration
		alive bool
	}
	tests := []struct {
		name   string
		policy func(*policies.Session)
		// change, when set, is applied to the live policy after sign-in.
		change     func(*policies.Session)
		steps      []step
		wantReason string
	}{
		{
			name:   "absolute timeout",
			policy: func(p *policies.Session) { p.AbsoluteTimeout = policies.Duration(time.Hour) },
			// Regular use does not extend it.
			steps:      []step{{20 * time.Minute, true}, {20 * time.Minute, true}, {20*time.Minute - time.Second, true}, {time.Second, false}},
			wantReason: policies.ReasonAbsoluteTimeout,
		},
		{
			name:   "idle timeout, used in time",
			policy: func(p *policies.Session) { p.IdleTimeout = policies.Duration(10 * time.Minute) },
			steps:  []step{{9 * time.Minute, true}, {9 * time.Minute, true}, {10*time.Minute - time.Second, true}},
		},
		{
			name:       "idle timeout, left alone",
			policy:     func(p *policies.Session) { p.IdleTimeout = policies.Duration(10 * time.Minute) },
			steps:      []step{{9 * time.Minute, true}, {10 * time.Minute, false}},
			wantReason: policies.ReasonIdleTimeout,
		},
		{
			// A use within a minute of the last recorded one is not
			// written, so idleness runs from the stored time.
			name:       "idle timeout runs from the stored last use",
			policy:     func(p *policies.Session) { p.IdleTimeout = policies.Duration(10 * time.Minute) },
			steps:      []step{{30 * time.Second, true}, {10*time.Minute - 30*time.Second, false}},
			wantReason: policies.ReasonIdleTimeout,
		},
		{
			name:       "a new idle timeout applies at once",
			change:     func(p *policies.Session) { p.IdleTimeout = policies.Duration(5 * time.Minute) },
			steps:      []step{{5 * time.Minute, false}},
			wantReason: policies.ReasonIdleTimeout,
		},
		{
			name:       "a new absolute timeout applies at once",
			change:     func(p *policies.Session) { p.AbsoluteTimeout = policies.Duration(time.Hour) },
			steps:      []step{{50 * time.Minute, true}, {10 * time.Minute, false}},
			wantReason: policies.ReasonAbsoluteTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, SessionConfig{}, tt.policy)
			u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
			bs, ck := e.start(t, u)
			tok := issueToken(t, e.st.Store, u.ID, bs.ID)
			if tt.change != nil {
				e.policy.Set(tt.change)
			}
			for i, s := range tt.steps {
				e.clock.Advance(s.after)
				if alive := e.current(t, ck) != nil; alive != s.alive {
					t.Fatalf("step %d (+%v): alive = %v, want %v", i, s.after, alive, s.alive)
				}
			}
			ended := events(t, e.recorder, audit.TypeSessionEnded, u.ID)
			if tt.wantReason == "" {
				if len(ended) != 0 || !tokenActive(t, e.st.Store, tok) {
					t.Errorf("live session ended: events %+v", ended)
				}
				return
			}
			if sessionExists(t, e.st.Store, u.ID, bs.ID) {
				t.Error("timed-out session still stored")
			}
			if tokenActive(t, e.st.Store, tok) {
				t.Error("token of the timed-out session still active")
			}
			if len(ended) != 1 || ended[0].Reason != tt.wantReason || ended[0].Details["session_id"] != bs.ID {
				t.Errorf("session.ended events = %+v, want one with reason %s", ended, tt.wantReason)
			}
			// Asking again finds nothing and records nothing more.
			if e.current(t, ck) != nil || len(events(t, e.recorder, audit.TypeSessionEnded, u.ID)) != 1 {
				t.Error("ended session came back or was ended twice")
			}
		})
	}
}

func TestSessionsMaxConcurrent(t *testing.T) {
	tests := []struct {
		name   string
		policy func(*policies.Session)
		// before are the sessions signed in first, a minute apart.
		before int
		// idleBefore, when set, passes between those and the new sign-in.
		idleBefore time.Duration
		wantErr    error
		// wantLive are indexes into before of the sessions alive afterwards.
		wantLive    []int
		wantReasons []string
	}{
		{
			name:        "evict_oldest ends the oldest",
			policy:      func(p *policies.Session) { p.MaxConcurrent, p.OnLimit = 2, policies.OnLimitEvictOldest },
			before:      2,
			wantLive:    []int{1},
			wantReasons: []string{EndReasonEvicted},
		},
		{
			name:     "under the limit",
			policy:   func(p *policies.Session) { p.MaxConcurrent, p.OnLimit = 3, policies.OnLimitEvictOldest },
			before:   2,
			wantLive: []int{0, 1},
		},
		{
			name:     "reject refuses the sign-in",
			policy:   func(p *policies.Session) { p.MaxConcurrent, p.OnLimit = 2, policies.OnLimitReject },
			before:   2,
			wantErr:  ErrTooManySessions,
			wantLive: []int{0, 1},
		},
		{
			name: "timed-out sessions do not count",
			policy: func(p *policies.Session) {
				p.MaxConcurrent, p.OnLimit = 1, policies.OnLimitReject
				p.IdleTimeout = policies.Duration(10 * time.Minute)
			},
			before:      1,
			idleBefore:  10 * time.Minute,
			wantReasons: []string{policies.ReasonIdleTimeout},
		},
		{
			name:     "no limit",
			before:   5,
			wantLive: []int{0, 1, 2, 3, 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, SessionConfig{}, tt.policy)
			u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
			other := addUser(t, e.st, cheapArgon2, "bob", "correct horse", false)
			e.start(t, other) // another user's sessions never count
			type held struct {
				bs  *storage.BrowserSession
				ck  *http.Cookie
				tok string
			}
			var before []held
			for range tt.before {
				bs, ck := e.start(t, u)
				before = append(before, held{bs, ck, issueToken(t, e.st.Store, u.ID, bs.ID)})
				e.clock.Advance(time.Minute)
			}
			e.clock.Advance(tt.idleBefore)

			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			rec := httptest.NewRecorder()
			bs, err := e.sessions.Start(req.Context(), rec, req, u, Proof{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start error = %v, want %v", err, tt.wantErr)
			}
			ck := responseCookie(rec, DefaultSessionCookieName)
			if tt.wantErr != nil {
				if bs != nil || ck != nil {
					t.Errorf("refused sign-in got session %+v, cookie %v", bs, ck)
				}
				failed := events(t, e.recorder, audit.TypeSessionStarted, u.ID)
				last := failed[len(failed)-1]
				if last.Outcome != audit.OutcomeFailure || last.Reason != rejectReason {
					t.Errorf("last session.started = %+v, want a failure", last)
				}
			} else if ck == nil || e.current(t, ck) == nil {
				t.Fatal("new session is not signed in")
			}

			for i, h := range before {
				want := slices.Contains(tt.wantLive, i)
				if got := sessionExists(t, e.st.Store, u.ID, h.bs.ID); got != want {
					t.Errorf("session %d alive = %v, want %v", i, got, want)
				}
				if got := tokenActive(t, e.st.Store, h.tok); got != want {
					t.Errorf("token of session %d active = %v, want %v", i, got, want)
				}
			}
			var reasons []string
			for _, ev := range events(t, e.recorder, audit.TypeSessionEnded, u.ID) {
				reasons = append(reasons, ev.Reason)
				if ev.Reason == EndReasonEvicted && (ev.Details["session_id"] != before[0].bs.ID || ev.Actor != u.ID) {
					t.Errorf("eviction event = %+v, want session %s by %s", ev, before[0].bs.ID, u.ID)
				}
			}
			if !slices.Equal(reasons, tt.wantReasons) {
				t.Errorf("session.ended reasons = %v, want %v", reasons, tt.wantReasons)
			}
			if live, err := e.st.UserBrowserSessions(t.Context(), other.ID); err != nil || len(live) != 1 {
				t.Errorf("other user's sessions = %v, %v; want 1 untouched", live, err)
			}
		})
	}
}

func TestSessionsTouchAtMostOncePerMinute(t *testing.T) {
	e := newSessionEnv(t, SessionConfig{}, cookieFor(time.Hour))
	u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
	_, ck := e.start(t, u)

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
		e.clock.Advance(step.advance)
		if id := e.current(t, ck); id == nil {
			t.Fatalf("step %d: signed out", i)
		}
		if got := e.st.touches.Load(); got != step.wantTouches {
			t.Fatalf("step %d: %d touches, want %d", i, got, step.wantTouches)
		}
	}
	bs, err := e.st.BrowserSession(context.Background(), sessionID(ck.Value))
	if err != nil {
		t.Fatal(err)
	}
	if !bs.LastSeenAt.Equal(e.clock.Now()) {
		t.Errorf("LastSeenAt = %v, want %v", bs.LastSeenAt, e.clock.Now())
	}
}

func TestSessionsEnd(t *testing.T) {
	tests := []struct {
		name       string
		signedIn   bool
		wantEvents int
	}{
		{"signed in", true, 1},
		{"no session", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, SessionConfig{}, nil)
			u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
			req := httptest.NewRequest(http.MethodPost, "/logout", nil)
			var tok string
			if tt.signedIn {
				bs, ck := e.start(t, u)
				tok = issueToken(t, e.st.Store, u.ID, bs.ID)
				req.AddCookie(ck)
			}
			rec := httptest.NewRecorder()
			if err := e.sessions.End(rec, req); err != nil {
				t.Fatal(err)
			}
			if ck := responseCookie(rec, DefaultSessionCookieName); ck == nil || ck.MaxAge >= 0 {
				t.Errorf("End should expire the cookie: %v", rec.Header()["Set-Cookie"])
			}
			ended := events(t, e.recorder, audit.TypeSessionEnded, u.ID)
			if len(ended) != tt.wantEvents || (len(ended) == 1 && (ended[0].Reason != EndReasonLogout || ended[0].Actor != u.ID)) {
				t.Errorf("session.ended events = %+v", ended)
			}
			// Signing out of this server is not signing out of the
			// applications.
			if tok != "" && !tokenActive(t, e.st.Store, tok) {
				t.Error("sign-out revoked the session's tokens")
			}
		})
	}
}

// Parallel sign-ins of one user must not each see room for one more
// session: counting and creating share one transaction.
func TestSessionsMaxConcurrentParallel(t *testing.T) {
	const limit, attempts = 3, 12
	e := newSessionEnv(t, SessionConfig{}, func(p *policies.Session) {
		p.MaxConcurrent, p.OnLimit = limit, policies.OnLimitReject
	})
	u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
	var (
		wg       sync.WaitGroup
		ok, full atomic.Int32
	)
	for range attempts {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			_, err := e.sessions.Start(req.Context(), httptest.NewRecorder(), req, u, Proof{})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrTooManySessions):
				full.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != limit || full.Load() != attempts-limit {
		t.Errorf("%d admitted, %d refused; want %d and %d", ok.Load(), full.Load(), limit, attempts-limit)
	}
	if live, err := e.st.UserBrowserSessions(t.Context(), u.ID); err != nil || len(live) != limit {
		t.Errorf("%d live sessions (%v), want %d", len(live), err, limit)
	}
}

// The ID token's amr and acr come from the session row, so Start must keep
// exactly what the sign-in proved, and claim nothing it did not.
func TestSessionsStartRecordsProof(t *testing.T) {
	tests := []struct {
		name    string
		proof   Proof
		wantAMR []string
		wantACR string
	}{
		{
			name:    "password",
			proof:   Proof{ClientID: "app", AMR: []string{AMRPassword}, ACR: policies.ACRPassword},
			wantAMR: []string{AMRPassword}, wantACR: policies.ACRPassword,
		},
		{
			name:    "two factors, in order",
			proof:   Proof{AMR: []string{AMRPassword, "otp"}, ACR: policies.ACRMultiFactor},
			wantAMR: []string{AMRPassword, "otp"}, wantACR: policies.ACRMultiFactor,
		},
		{name: "nothing proven", proof: Proof{}, wantAMR: []string{}, wantACR: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, SessionConfig{}, cookieFor(time.Hour))
			u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			rec := httptest.NewRecorder()
			bs, err := e.sessions.Start(req.Context(), rec, req, u, tt.proof)
			if err != nil {
				t.Fatal(err)
			}
			// Read back from the store: the row is what later requests see.
			stored, err := e.st.BrowserSession(t.Context(), bs.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(stored.AMR, tt.wantAMR) || stored.ACR != tt.wantACR {
				t.Errorf("stored amr %q, acr %q; want %q, %q", stored.AMR, stored.ACR, tt.wantAMR, tt.wantACR)
			}
			id := e.current(t, responseCookie(rec, DefaultSessionCookieName))
			if id == nil || !slices.Equal(id.Session.AMR, tt.wantAMR) || id.Session.ACR != tt.wantACR {
				t.Errorf("Current session = %+v; want amr %q, acr %q", id, tt.wantAMR, tt.wantACR)
			}
		})
	}
}

// A browser session is shared by every application, so its lifetime is
// the global policy's; whether one more session is allowed is the policy of
// the application being signed in to.
func TestSessionsAdmissionFollowsClientPolicy(t *testing.T) {
	const globalLifetime = time.Hour
	policy := func(clientID string) policies.Session {
		p := policies.Defaults().Session
		cookieFor(globalLifetime)(&p)
		if clientID == "strict" {
			p.MaxConcurrent, p.OnLimit = 1, policies.OnLimitReject
			// Were the client's policy to set the lifetime, this would show.
			cookieFor(5 * time.Minute)(&p)
		}
		return p
	}
	tests := []struct {
		name   string
		client string
		// before is how many sessions alice holds already.
		before  int
		wantErr error
	}{
		{name: "strict client at its limit", client: "strict", before: 1, wantErr: ErrTooManySessions},
		{name: "strict client under its limit", client: "strict"},
		{name: "no client: the global policy has no limit", client: "", before: 1},
		{name: "other client: its policy has no limit", client: "lenient", before: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, SessionConfig{Policy: policy}, nil)
			u := addUser(t, e.st, cheapArgon2, "alice", "correct horse", false)
			for range tt.before {
				e.start(t, u)
			}
			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			rec := httptest.NewRecorder()
			bs, err := e.sessions.Start(req.Context(), rec, req, u, Proof{ClientID: tt.client})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start error = %v, want %v", err, tt.wantErr)
			}
			live, lerr := e.st.UserBrowserSessions(t.Context(), u.ID)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tt.wantErr != nil {
				if len(live) != tt.before || responseCookie(rec, DefaultSessionCookieName) != nil {
					t.Errorf("refused sign-in: %d live sessions, cookies %v", len(live), rec.Header()["Set-Cookie"])
				}
				started := events(t, e.recorder, audit.TypeSessionStarted, u.ID)
				if last := started[len(started)-1]; last.Outcome != audit.OutcomeFailure || last.ClientID != tt.client {
					t.Errorf("last session.started = %+v, want a failure for client %q", last, tt.client)
				}
				return
			}
			if len(live) != tt.before+1 {
				t.Errorf("%d live sessions, want %d", len(live), tt.before+1)
			}
			if want := e.clock.Now().Add(globalLifetime); !bs.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v (the global lifetime)", bs.ExpiresAt, want)
			}
		})
	}
}
