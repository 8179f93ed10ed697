package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

// SessionStore is what Sessions needs from storage.
type SessionStore interface {
	CreateBrowserSession(ctx context.Context, bs *storage.BrowserSession) error
	// BrowserSessionIncludingExpired loads a session even past its
	// expiry, so that one that timed out can still be ended properly.
	BrowserSessionIncludingExpired(ctx context.Context, id string) (*storage.BrowserSession, error)
	TouchBrowserSession(ctx context.Context, id string, at time.Time) error
	DeleteBrowserSession(ctx context.Context, id string) error
	// EndBrowserSession deletes a session and revokes its tokens.
	EndBrowserSession(ctx context.Context, id string) (bool, error)
	// LockUserBrowserSessions lists a user's live sessions, oldest first,
	// holding them for the rest of the transaction.
	LockUserBrowserSessions(ctx context.Context, userID string) ([]storage.BrowserSession, error)
	ReauthenticateBrowserSession(ctx context.Context, id string, at time.Time) error
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
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
	// Policy returns the session policy in force for an application ("" for
	// the global one). It is called on every sign-in and every request, so
	// a policy change applies at once, also to sessions that already exist.
	// A browser session is shared by every application (single sign-on), so
	// its lifetime and timeouts follow the global policy; the application
	// signed in to decides admission (max_concurrent, on_limit). nil means
	// a fixed policy made from Browser and Lifetime.
	Policy func(clientID string) policies.Session
	// Browser and Lifetime describe the cookie when Policy is nil: Browser
	// makes it die with the browser, Lifetime bounds it (zero means
	// DefaultSessionLifetime).
	//
	// Deprecated: set Policy; these remain for callers not yet on the
	// policy engine.
	Browser  bool
	Lifetime time.Duration
	// Secure marks the cookie Secure; true whenever the issuer is HTTPS.
	// The address recorded with a session and its events is the request's
	// (reqinfo), resolved by the server through its trusted proxies.
	Secure bool
	// Recorder receives session.started and session.ended events; nil
	// records nothing.
	Recorder *audit.Recorder
	// Logger receives failures that must not fail the request (recording
	// last use). nil means slog.Default().
	Logger *slog.Logger
}

// Session defaults.
const (
	DefaultSessionCookieName = "portcullis_session"
	// DefaultSessionLifetime bounds on the server a session whose cookie
	// lives as long as the browser: a browser left open must not stay
	// signed in forever.
	DefaultSessionLifetime = 24 * time.Hour
)

// ErrTooManySessions is Start's answer when the user already holds
// session.max_concurrent sessions and session.on_limit is "reject".
var ErrTooManySessions = errors.New("too many concurrent sessions")

// Reasons of session.ended events besides the policy's own
// (policies.ReasonAbsoluteTimeout, policies.ReasonIdleTimeout).
const (
	EndReasonEvicted         = "evicted"
	EndReasonLogout          = "logout"
	EndReasonReplaced        = "replaced"
	EndReasonPasswordChanged = "password_changed"
	// rejectReason is the reason of the failed session.started event of a
	// sign-in refused by max_concurrent.
	rejectReason = "max_concurrent"
)

const (
	sessionSecretLen = 32
	maxUserAgentLen  = 256
	// touchInterval limits last-seen writes to one a minute per session, so
	// each page view does not cost a database write. The idle timeout is
	// judged on the stored last-seen time, so it may end a session up to
	// this much early; idle timeouts are minutes to hours.
	touchInterval = time.Minute
)

// Sessions creates, finds and ends browser sessions. The cookie holds 32
// random bytes; the database holds only their SHA-256, so a leaked table
// does not hand out live sessions.
type Sessions struct {
	store  SessionStore
	users  UserStore
	cfg    SessionConfig
	policy func(clientID string) policies.Session
	now    func() time.Time
}

// NewSessions returns a Sessions. now is the clock (nil means time.Now).
func NewSessions(store SessionStore, users UserStore, cfg SessionConfig, now func() time.Time) *Sessions {
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultSessionCookieName
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultSessionLifetime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	policy := cfg.Policy
	if policy == nil {
		fixed := policies.Session{Cookie: policies.CookieLifetime{Browser: cfg.Browser, Duration: policies.Duration(cfg.Lifetime)}}
		policy = func(string) policies.Session { return fixed }
	}
	return &Sessions{store: store, users: users, cfg: cfg, policy: policy, now: now}
}

// CookieName is the session cookie's name.
func (s *Sessions) CookieName() string { return s.cfg.CookieName }

// AMRPassword is the RFC 8176 method of a password check.
const AMRPassword = "pwd"

// Proof is how a sign-in was made: for which application, by which
// methods (RFC 8176 amr values) reaching which assurance level (acr).
type Proof struct {
	ClientID string
	AMR      []string
	ACR      string
	// SecondFactor says a second factor was checked just now: the
	// session's second_factor_at, which step-up before a sensitive action
	// reads.
	SecondFactor bool
}

// Identity is who a request is signed in as.
type Identity struct {
	User    *storage.User
	Session *storage.BrowserSession
}

// Start signs u in on this browser under the session policy in force. It
// always issues a new session id, and ends any session the browser already
// carried, so an id planted before sign-in (session fixation) never becomes
// authenticated. When u already holds session.max_concurrent sessions, the
// oldest are ended (their tokens revoked) or, under on_limit "reject", the
// sign-in is refused with ErrTooManySessions.
func (s *Sessions) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, u *storage.User, proof Proof) (*storage.BrowserSession, error) {
	if err := s.endCarried(ctx, r, u); err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	pol := s.policy("")
	admission := s.policy(proof.ClientID)
	now := s.now().UTC()
	lifetime, persistent := pol.CookieMaxAge()
	if !persistent || lifetime <= 0 {
		lifetime = DefaultSessionLifetime
	}
	// Refreshing never extends a login past the absolute timeout, so
	// neither may the row nor the cookie.
	if abs := pol.AbsoluteTimeout.D(); abs > 0 && abs < lifetime {
		lifetime = abs
	}
	ip := reqinfo.From(ctx).IPString()
	secret := randomSecret()
	bs := &storage.BrowserSession{
		ID:         sessionID(secret),
		UserID:     u.ID,
		AuthTime:   now,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(lifetime),
		IP:         ip,
		UserAgent:  cleanUserAgent(r.UserAgent(), maxUserAgentLen),
		AMR:        proof.AMR,
		ACR:        proof.ACR,
	}
	if proof.SecondFactor {
		bs.SecondFactorAt = &now
	}
	// Counting, evicting and creating happen in one transaction holding
	// the user's sessions, so parallel sign-ins on several instances
	// cannot each see room for one more session.
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		live, err := s.store.LockUserBrowserSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		live, err = s.dropEnded(ctx, pol, now, live)
		if err != nil {
			return err
		}
		evict, reject := admission.Admit(len(live))
		if reject {
			return ErrTooManySessions
		}
		for _, old := range live[:evict] {
			// The sign-in that evicts is the actor, from its address.
			if err := s.end(ctx, &old, EndReasonEvicted, u.ID, ip); err != nil {
				return err
			}
		}
		if err := s.recordDevice(ctx, bs); err != nil {
			return err
		}
		if err := s.store.CreateBrowserSession(ctx, bs); err != nil {
			return err
		}
		return s.cfg.Recorder.Record(ctx, audit.Event{
			Type: audit.TypeSessionStarted, Actor: u.ID, UserID: u.ID, IP: ip, ClientID: proof.ClientID,
			Outcome: audit.OutcomeSuccess, Details: sessionDetails(bs, evict),
		})
	})
	if errors.Is(err, ErrTooManySessions) {
		// The refusal is a decision worth auditing; the transaction that
		// found it rolled back, so it is recorded on its own.
		if rerr := s.cfg.Recorder.Record(ctx, audit.Event{
			Type: audit.TypeSessionStarted, Actor: u.ID, UserID: u.ID, IP: ip,
			Outcome: audit.OutcomeFailure, Reason: rejectReason,
			ClientID: proof.ClientID, Details: map[string]any{"max_concurrent": admission.MaxConcurrent},
		}); rerr != nil {
			s.cfg.Logger.ErrorContext(ctx, "record refused session", slog.String("user_id", u.ID), slog.Any("error", rerr))
		}
		return nil, fmt.Errorf("start session for user %s: %w", u.ID, ErrTooManySessions)
	}
	if err != nil {
		return nil, fmt.Errorf("start session for user %s: %w", u.ID, err)
	}
	ck := s.cookie(secret)
	if persistent {
		ck.MaxAge = int(lifetime / time.Second)
	}
	http.SetCookie(w, ck)
	return bs, nil
}

// DeviceRecorder is the device registry as a session start writes to it;
// *storage.Store satisfies it. A SessionStore that also implements it gets
// every sign-in's device recorded in the session-start transaction.
type DeviceRecorder interface {
	UpsertUserDevice(ctx context.Context, d *storage.UserDevice) error
}

var _ DeviceRecorder = (*storage.Store)(nil)

// recordDevice registers the device the sign-in comes from (reqinfo) with
// the user and stamps it on bs. A request that names no device, or a store
// without a registry, records nothing.
func (s *Sessions) recordDevice(ctx context.Context, bs *storage.BrowserSession) error {
	dev := reqinfo.From(ctx).DeviceID
	reg, ok := s.store.(DeviceRecorder)
	if dev == "" || !ok {
		return nil
	}
	if err := reg.UpsertUserDevice(ctx, &storage.UserDevice{
		UserID: bs.UserID, DeviceID: dev, LastSeenAt: bs.CreatedAt, IP: bs.IP, UserAgent: bs.UserAgent,
	}); err != nil {
		return err
	}
	bs.DeviceID = dev
	return nil
}

// sessionDetails describes a new session for its audit event; the id is
// the cookie's hash, so logging it hands out nothing.
func sessionDetails(bs *storage.BrowserSession, evicted int) map[string]any {
	d := map[string]any{
		"session_id": bs.ID,
		"expires_at": bs.ExpiresAt.UTC().Format(time.RFC3339),
		"user_agent": bs.UserAgent,
		"amr":        bs.AMR,
		"acr":        bs.ACR,
	}
	if evicted > 0 {
		d["evicted"] = evicted
	}
	return d
}

// endCarried ends the session the browser presents when u signs in, if any.
func (s *Sessions) endCarried(ctx context.Context, r *http.Request, u *storage.User) error {
	ck, err := r.Cookie(s.cfg.CookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	return s.deleteByCookie(ctx, ck.Value, EndReasonReplaced, u.ID, reqinfo.From(ctx).IPString())
}

// deleteByCookie deletes the session a cookie names, as sign-out does:
// tokens issued under it stay valid, since signing out of this server is
// not signing out of every application. A session that is already gone is
// not an error. actor "" means the session's own user.
func (s *Sessions) deleteByCookie(ctx context.Context, value, reason, actor, ip string) error {
	if !validSecret(value) {
		return nil
	}
	id := sessionID(value)
	bs, err := s.store.BrowserSessionIncludingExpired(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !s.now().Before(bs.ExpiresAt) {
		// It ended already; the row goes, but there is no sign-out to
		// record.
		return s.store.DeleteBrowserSession(ctx, id)
	}
	return s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.DeleteBrowserSession(ctx, id); err != nil {
			return err
		}
		if actor == "" {
			actor = bs.UserID
		}
		return s.recordEnded(ctx, bs, reason, actor, ip)
	})
}

// dropEnded ends the sessions in live that the policy says are over (their
// tokens revoked) and returns the rest, which are the ones that count
// against max_concurrent.
func (s *Sessions) dropEnded(ctx context.Context, pol policies.Session, now time.Time, live []storage.BrowserSession) ([]storage.BrowserSession, error) {
	kept := make([]storage.BrowserSession, 0, len(live))
	for i := range live {
		if ended, reason := sessionEnded(pol, now, &live[i]); ended {
			if err := s.end(ctx, &live[i], reason, "", ""); err != nil {
				return nil, err
			}
			continue
		}
		kept = append(kept, live[i])
	}
	return kept, nil
}

// sessionEnded applies the absolute and idle timeouts to bs. The absolute
// timeout runs from the sign-in that created the session, not from
// auth_time: a fresh credential check for a sensitive action moves
// auth_time, and must not make the session outlive its login.
func sessionEnded(pol policies.Session, now time.Time, bs *storage.BrowserSession) (bool, string) {
	return pol.BrowserSessionEnded(now, bs.CreatedAt, bs.LastSeenAt)
}

// end deletes bs, revokes the tokens issued under it and records why, in
// one transaction. actor is the user whose action ended it, "" when a
// timeout did.
func (s *Sessions) end(ctx context.Context, bs *storage.BrowserSession, reason, actor, ip string) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		found, err := s.store.EndBrowserSession(ctx, bs.ID)
		if err != nil || !found {
			// Not found: another request ended it first and recorded it.
			return err
		}
		return s.recordEnded(ctx, bs, reason, actor, ip)
	})
}

func (s *Sessions) recordEnded(ctx context.Context, bs *storage.BrowserSession, reason, actor, ip string) error {
	return s.cfg.Recorder.Record(ctx, audit.Event{
		Type: audit.TypeSessionEnded, Actor: actor, UserID: bs.UserID, IP: ip,
		Outcome: audit.OutcomeSuccess, Reason: reason,
		Details: map[string]any{"session_id": bs.ID},
	})
}

// Current returns who r is signed in as, or (nil, nil) when nobody is: no
// cookie, an unknown or expired session, or a user deleted or disabled since.
// A session past the policy's absolute or idle timeout is ended on the spot
// (its tokens revoked). An error means the answer could not be determined.
func (s *Sessions) Current(r *http.Request) (*Identity, error) {
	ck, err := r.Cookie(s.cfg.CookieName)
	if err != nil || !validSecret(ck.Value) {
		return nil, nil
	}
	ctx := r.Context()
	bs, err := s.store.BrowserSessionIncludingExpired(ctx, sessionID(ck.Value))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("current session: %w", err)
	}
	now := s.now()
	// The policy comes first, also for a row past its expiry: the absolute
	// timeout caps that expiry, and a session that timed out must be ended
	// with its tokens, not just forgotten. It is judged on the stored
	// last-seen time, before this request touches it.
	if ended, reason := sessionEnded(s.policy(""), now, bs); ended {
		if err := s.end(ctx, bs, reason, "", reqinfo.From(ctx).IPString()); err != nil {
			// The answer is still "nobody"; the row stays and the next
			// request tries again.
			s.cfg.Logger.ErrorContext(ctx, "end timed-out session", slog.String("user_id", bs.UserID),
				slog.String("reason", reason), slog.Any("error", err))
		}
		return nil, nil
	}
	// Past the cookie lifetime: signed out, tokens untouched (they follow
	// the token policy). The row is deleted at the next sign-in on this
	// browser.
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

// reauthenticated records a fresh credential check on the session in id,
// which a sensitive action may demand (session.reauth_max_age).
func (s *Sessions) reauthenticated(ctx context.Context, id *Identity) error {
	now := s.now().UTC()
	if err := s.store.ReauthenticateBrowserSession(ctx, id.Session.ID, now); err != nil {
		return fmt.Errorf("record reauthentication of user %s: %w", id.User.ID, err)
	}
	id.Session.AuthTime = now
	return nil
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
	if err := s.deleteByCookie(r.Context(), old.Value, EndReasonLogout, "", reqinfo.From(r.Context()).IPString()); err != nil {
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
