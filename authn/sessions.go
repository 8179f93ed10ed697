package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// SessionStore is what Sessions needs from storage.
type SessionStore interface {
	CreateBrowserSession(ctx context.Context, bs *storage.BrowserSession) error
	BrowserSession(ctx context.Context, id string) (*storage.BrowserSession, error)
	TouchBrowserSession(ctx context.Context, id string, at time.Time) error
	DeleteBrowserSession(ctx context.Context, id string) error
}

// UserStore is what the login pipeline and Sessions need to know about users.
type UserStore interface {
	User(ctx context.Context, id string) (*storage.User, error)
	UserByUsername(ctx context.Context, username string) (*storage.User, error)
	UpdatePasswordHash(ctx context.Context, userID, hash string) error
}

var (
	_ SessionStore = (*storage.Store)(nil)
	_ UserStore    = (*storage.Store)(nil)
)

// SessionConfig configures browser sessions.
type SessionConfig struct {
	// CookieName defaults to DefaultSessionCookieName.
	CookieName string
	// Browser makes the cookie die with the browser (no Max-Age). The
	// server-side row still expires after Lifetime.
	Browser bool
	// Lifetime bounds a session on the server and, unless Browser, the
	// cookie. Zero means DefaultSessionLifetime.
	Lifetime time.Duration
	// Secure marks the cookie Secure; true whenever the issuer is HTTPS.
	Secure bool
	// ClientIP returns the address recorded with a new session. The server
	// supplies one that honours trusted proxies; nil means the TCP peer.
	ClientIP func(*http.Request) string
	// Logger receives failures that must not fail the request (recording
	// last use). nil means slog.Default().
	Logger *slog.Logger
}

// Session defaults.
const (
	DefaultSessionCookieName = "portcullis_session"
	// DefaultSessionLifetime also caps sessions whose cookie lives as long as
	// the browser: a browser left open must not stay signed in forever.
	DefaultSessionLifetime = 24 * time.Hour
)

const (
	sessionSecretLen = 32
	maxUserAgentLen  = 256
	// touchInterval limits last-seen writes to one a minute per session, so
	// each page view does not cost a database write.
	touchInterval = time.Minute
)

// Sessions creates, finds and ends browser sessions. The cookie holds 32
// random bytes; the database holds only their SHA-256, so a leaked table
// does not hand out live sessions.
type Sessions struct {
	store SessionStore
	users UserStore
	cfg   SessionConfig
	now   func() time.Time
}

// NewSessions returns a Sessions. now is the clock (nil means time.Now).
func NewSessions(store SessionStore, users UserStore, cfg SessionConfig, now func() time.Time) *Sessions {
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultSessionCookieName
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultSessionLifetime
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = remoteHost
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Sessions{store: store, users: users, cfg: cfg, now: now}
}

// Identity is who a request is signed in as.
type Identity struct {
	User    *storage.User
	Session *storage.BrowserSession
}

// Start signs u in on this browser. It always issues a new session id, and
// ends any session the browser already carried, so an id planted before
// sign-in (session fixation) never becomes authenticated.
func (s *Sessions) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, u *storage.User) (*storage.BrowserSession, error) {
	if ck, err := r.Cookie(s.cfg.CookieName); err == nil && ck.Value != "" {
		if err := s.store.DeleteBrowserSession(ctx, sessionID(ck.Value)); err != nil {
			return nil, fmt.Errorf("start session: end previous session: %w", err)
		}
	}
	secret := randomSecret()
	now := s.now().UTC()
	bs := &storage.BrowserSession{
		ID:         sessionID(secret),
		UserID:     u.ID,
		AuthTime:   now,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(s.cfg.Lifetime),
		IP:         s.cfg.ClientIP(r),
		UserAgent:  cleanUserAgent(r.UserAgent(), maxUserAgentLen),
	}
	if err := s.store.CreateBrowserSession(ctx, bs); err != nil {
		return nil, fmt.Errorf("start session for user %s: %w", u.ID, err)
	}
	ck := s.cookie(secret)
	if !s.cfg.Browser {
		ck.MaxAge = int(s.cfg.Lifetime / time.Second)
	}
	http.SetCookie(w, ck)
	return bs, nil
}

// Current returns who r is signed in as, or (nil, nil) when nobody is: no
// cookie, an unknown or expired session, or a user deleted or disabled since.
// An error means the answer could not be determined.
func (s *Sessions) Current(r *http.Request) (*Identity, error) {
	ck, err := r.Cookie(s.cfg.CookieName)
	if err != nil || !validSecret(ck.Value) {
		return nil, nil
	}
	ctx := r.Context()
	bs, err := s.store.BrowserSession(ctx, sessionID(ck.Value))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("current session: %w", err)
	}
	now := s.now()
	// The store checks expiry with its own clock; checking again here keeps
	// the rule with the component that set it.
	if !now.Before(bs.ExpiresAt) {
		return nil, nil
	}
	u, err := s.users.User(ctx, bs.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("current session: load user: %w", err)
	}
	if u.Disabled {
		return nil, nil
	}
	if now.Sub(bs.LastSeenAt) >= touchInterval {
		// Last use is bookkeeping: a failed write must not sign anyone out.
		if err := s.store.TouchBrowserSession(ctx, bs.ID, now); err != nil {
			s.cfg.Logger.WarnContext(ctx, "record session use", slog.String("user_id", u.ID), slog.Any("error", err))
		} else {
			bs.LastSeenAt = now.UTC()
		}
	}
	return &Identity{User: u, Session: bs}, nil
}

// End signs the browser out: the session row is deleted and the cookie
// expired. The cookie is expired even when the delete fails, so the browser
// at least stops presenting it.
func (s *Sessions) End(w http.ResponseWriter, r *http.Request) error {
	ck := s.cookie("")
	ck.MaxAge = -1
	http.SetCookie(w, ck)
	old, err := r.Cookie(s.cfg.CookieName)
	if err != nil || old.Value == "" {
		return nil
	}
	if err := s.store.DeleteBrowserSession(r.Context(), sessionID(old.Value)); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

func (s *Sessions) cookie(value string) *http.Cookie {
	return &http.Cookie{
		Name:     s.cfg.CookieName,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.cfg.Secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// sessionID is the database key for a cookie value.
func sessionID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// remoteHost is the TCP peer's address without the port.
func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// cleanUserAgent makes a User-Agent safe to store: valid UTF-8 (PostgreSQL
// rejects anything else in a TEXT column), no control characters, and at
// most n bytes, cut on a character boundary.
func cleanUserAgent(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return truncateUTF8(s, n)
}
