package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/portcullis/portcullis/storage"
)

// tokenSession is what the OAuth provider stores with a token, reduced to
// what storage reads: the subject and the browser session it descends from.
type tokenSession struct {
	openid.DefaultSession
	BrowserSessionID string `json:"browser_session_id"`
}

func (s *tokenSession) GetBrowserSessionID() string { return s.BrowserSessionID }

func createClient(t *testing.T, store *storage.Store, id string) {
	t.Helper()
	c := &storage.Client{ID: id, GrantTypes: []string{"authorization_code"}, SecretHash: "$sha256$x"}
	if err := store.CreateClient(t.Context(), c); err != nil {
		t.Fatalf("create client %s: %v", id, err)
	}
}

func createUser(t *testing.T, store *storage.Store, id string) {
	t.Helper()
	u := &storage.User{ID: id, Username: "user-" + id, PasswordHash: "$argon2id$x"}
	if err := store.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("create user %s: %v", id, err)
	}
}

// createSession stores a live browser session of userID.
func createSession(t *testing.T, store *storage.Store, id, userID string) {
	t.Helper()
	createSessionExpiring(t, store, id, userID, time.Now().Add(time.Hour))
}

func createSessionExpiring(t *testing.T, store *storage.Store, id, userID string, expires time.Time) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	bs := &storage.BrowserSession{
		ID: id, UserID: userID, AuthTime: now.Add(-time.Minute), CreatedAt: now.Add(-time.Minute), LastSeenAt: now,
		ExpiresAt: expires.UTC(), IP: "192.0.2.7", UserAgent: "admin-test",
	}
	if err := store.CreateBrowserSession(t.Context(), bs); err != nil {
		t.Fatalf("create session %s: %v", id, err)
	}
}

// createToken stores an active access token of clientID for subject (empty
// for a client acting for itself) under sessionID, and returns its
// signature.
func createToken(t *testing.T, store *storage.Store, clientID, subject, sessionID string) string {
	t.Helper()
	ctx := t.Context()
	c, err := store.Client(ctx, clientID)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	sig := "sig-" + rand.Text()
	now := time.Now()
	req := &fosite.Request{
		ID: sig, RequestedAt: now, Client: c,
		Session: &tokenSession{
			DefaultSession: openid.DefaultSession{
				Subject:   subject,
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)},
			},
			BrowserSessionID: sessionID,
		},
	}
	if err := store.CreateAccessTokenSession(ctx, sig, req); err != nil {
		t.Fatalf("create token: %v", err)
	}
	return sig
}

// tokenActive reports whether the access token with signature sig is still
// active.
func tokenActive(t *testing.T, store *storage.Store, sig string) bool {
	t.Helper()
	_, err := store.GetAccessTokenSession(t.Context(), sig, &tokenSession{})
	switch {
	case err == nil:
		return true
	case errors.Is(err, fosite.ErrInactiveToken):
		return false
	}
	t.Fatalf("get token %s: %v", sig, err)
	return false
}

// activeTokens lists which of sigs are active, to compare states.
func activeTokens(t *testing.T, store *storage.Store, sigs ...string) []string {
	t.Helper()
	var out []string
	for _, sig := range sigs {
		if tokenActive(t, store, sig) {
			out = append(out, sig)
		}
	}
	return out
}

// sessionIDs lists the ids of userID's live sessions.
func sessionIDs(t *testing.T, store *storage.Store, userID string) []string {
	t.Helper()
	rows, err := store.UserBrowserSessions(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, bs := range rows {
		ids = append(ids, bs.ID)
	}
	slices.Sort(ids)
	return ids
}

// auditEvents lists the stored events of type typ, newest first.
func auditEvents(t *testing.T, store *storage.Store, typ string) []storage.AuditEvent {
	t.Helper()
	rows, err := store.ListAudit(t.Context(), storage.AuditFilter{Type: typ, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// doAs sends a request with an explicit Content-Type ("" for none).
func (e *testEnv) doAs(t *testing.T, method, path, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := newRequest(method, path, adminToken, body)
	r.Header.Del("Content-Type")
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return e.serve(t, r)
}

// get returns the body of a GET that must succeed.
func (e *testEnv) get(t *testing.T, path string) string {
	t.Helper()
	rec := e.do(t, http.MethodGet, path, adminToken, "")
	wantStatus(t, rec, http.StatusOK)
	return rec.Body.String()
}

// testJWKS is a JSON Web Key Set of one fresh P-256 key, as a
// private_key_jwt client registers it; with private, the set wrongly holds
// the private key as well.
func testJWKS(private bool) string {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err) // the system's randomness failed: nothing can work
	}
	var key any = priv.Public()
	if private {
		key = priv
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		panic(err)
	}
	return string(b)
}
