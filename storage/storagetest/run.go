package storagetest

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis/portcullis/storage"
)

// OpenFunc returns a freshly migrated store on an empty database whose clock
// is now. It is called once per subtest, with that subtest's t, so cleanups
// run when the subtest ends.
type OpenFunc func(t *testing.T, now func() time.Time) *storage.Store

// suiteCase is one conformance check; each runs on its own empty database
// with its own clock, so no case can pass because of another's leftovers.
type suiteCase struct {
	name string
	run  func(t *testing.T, s *storage.Store, clk *Clock)
}

// Run runs the storage conformance suite, one subtest per case, each on a
// fresh database from open. Concurrency cases are separate subtests so a
// failure there names the single-use guarantee that broke.
func Run(t *testing.T, open OpenFunc) {
	groups := [][]suiteCase{
		migrationCases(),
		clientCases(),
		userCases(),
		usernameCases(),
		browserSessionCases(),
		consentCases(),
		signingKeyCases(),
		fositeCases(),
		transactionCases(),
		auditCases(),
		sessionCases(),
		concurrencyCases(),
		captchaCases(),
		lockoutCases(),
		passwordCases(),
		accountLinkCases(),
		mfaCases(),
		deviceCodeCases(),
		deviceCases(),
	}
	for _, group := range groups {
		for _, tc := range group {
			t.Run(tc.name, func(t *testing.T) {
				clk := NewClock(epoch())
				s := open(t, clk.Now)
				tc.run(t, s, clk)
			})
		}
	}
}

// epoch is where every case's clock starts: a fixed instant, whole seconds
// (PostgreSQL keeps microseconds), well away from the real time so a store
// that reads time.Now instead of its clock shows up.
func epoch() time.Time { return time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC) }

// Clock is a manual clock for storage.Options.Now, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// --- fixtures ---------------------------------------------------------------

func createClient(t *testing.T, s *storage.Store, id string) *storage.Client {
	t.Helper()
	c := &storage.Client{
		ID:            id,
		Name:          "Client " + id,
		SecretHash:    "$argon2id$placeholder",
		RedirectURIs:  []string{"https://app.test/cb"},
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"},
		Scopes:        []string{"openid", "offline_access", "profile"},
	}
	if err := s.CreateClient(t.Context(), c); err != nil {
		t.Fatalf("CreateClient(%q): %v", id, err)
	}
	return c
}

func createUser(t *testing.T, s *storage.Store, id, username string) *storage.User {
	t.Helper()
	u := &storage.User{ID: id, Username: username, Email: id + "@example.test", PasswordHash: "$argon2id$" + id}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q, %q): %v", id, username, err)
	}
	return u
}

func createBrowserSession(t *testing.T, s *storage.Store, clk *Clock, id, userID string) *storage.BrowserSession {
	t.Helper()
	now := clk.Now()
	bs := &storage.BrowserSession{
		ID: id, UserID: userID, AuthTime: now, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(time.Hour), IP: "192.0.2.1", UserAgent: "storagetest",
	}
	if err := s.CreateBrowserSession(t.Context(), bs); err != nil {
		t.Fatalf("CreateBrowserSession(%q): %v", id, err)
	}
	return bs
}

// newRequest builds what fosite hands the store: a full request with an
// OpenID Connect session, every field set so a lossy round trip shows.
func newRequest(c fosite.Client, requestID, subject string, now time.Time) *fosite.Request {
	return &fosite.Request{
		ID:                requestID,
		RequestedAt:       now,
		Client:            c,
		RequestedScope:    fosite.Arguments{"openid", "offline_access", "profile"},
		GrantedScope:      fosite.Arguments{"openid", "offline_access"},
		RequestedAudience: fosite.Arguments{"https://api.test"},
		GrantedAudience:   fosite.Arguments{"https://api.test"},
		Form: url.Values{
			"redirect_uri": {"https://app.test/cb"},
			"nonce":        {"n-0S6_WzA2Mj"},
			"scope":        {"openid offline_access profile"},
		},
		Session: &openid.DefaultSession{
			Subject:  subject,
			Username: "name-of-" + subject,
			ExpiresAt: map[fosite.TokenType]time.Time{
				fosite.AuthorizeCode: now.Add(10 * time.Minute),
				fosite.AccessToken:   now.Add(time.Hour),
				fosite.RefreshToken:  now.Add(30 * 24 * time.Hour),
			},
			Claims: &jwt.IDTokenClaims{
				Subject:     subject,
				Issuer:      "https://issuer.test",
				Audience:    []string{c.GetID()},
				Nonce:       "n-0S6_WzA2Mj",
				AuthTime:    now.Add(-time.Minute),
				RequestedAt: now,
				Extra:       map[string]any{"email": subject + "@example.test"},
			},
			Headers: &jwt.Headers{Extra: map[string]any{"kid": "key-1"}},
		},
	}
}

// checkRequest compares what the store returned with what was stored,
// including the session hydrated into got's session.
func checkRequest(t *testing.T, want *fosite.Request, got fosite.Requester) {
	t.Helper()
	if got == nil {
		t.Fatal("request: got nil")
	}
	if got.GetID() != want.ID {
		t.Errorf("request id = %q, want %q", got.GetID(), want.ID)
	}
	if !got.GetRequestedAt().Equal(want.RequestedAt) {
		t.Errorf("requested at = %v, want %v", got.GetRequestedAt(), want.RequestedAt)
	}
	if got.GetClient() == nil || got.GetClient().GetID() != want.Client.GetID() {
		t.Errorf("client = %v, want id %q", got.GetClient(), want.Client.GetID())
	}
	for _, f := range []struct {
		name      string
		got, want []string
	}{
		{"requested scope", got.GetRequestedScopes(), want.RequestedScope},
		{"granted scope", got.GetGrantedScopes(), want.GrantedScope},
		{"requested audience", got.GetRequestedAudience(), want.RequestedAudience},
		{"granted audience", got.GetGrantedAudience(), want.GrantedAudience},
	} {
		if !slices.Equal(f.got, f.want) {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if !reflect.DeepEqual(got.GetRequestForm(), want.Form) {
		t.Errorf("form = %v, want %v", got.GetRequestForm(), want.Form)
	}
	checkSession(t, want.Session.(*openid.DefaultSession), got.GetSession())
}

func checkSession(t *testing.T, want *openid.DefaultSession, gotSession fosite.Session) {
	t.Helper()
	got, ok := gotSession.(*openid.DefaultSession)
	if !ok {
		t.Fatalf("session is %T, want *openid.DefaultSession", gotSession)
	}
	if got.Subject != want.Subject || got.Username != want.Username {
		t.Errorf("session subject/username = %q/%q, want %q/%q", got.Subject, got.Username, want.Subject, want.Username)
	}
	if len(got.ExpiresAt) != len(want.ExpiresAt) {
		t.Errorf("session expiry = %v, want %v", got.ExpiresAt, want.ExpiresAt)
	}
	for k, w := range want.ExpiresAt {
		if g := got.ExpiresAt[k]; !g.Equal(w) {
			t.Errorf("session expiry[%s] = %v, want %v", k, g, w)
		}
	}
	if got.Claims == nil {
		t.Fatal("session ID token claims: got nil")
	}
	gc, wc := got.Claims, want.Claims
	if gc.Subject != wc.Subject || gc.Issuer != wc.Issuer || gc.Nonce != wc.Nonce ||
		!slices.Equal(gc.Audience, wc.Audience) || !gc.AuthTime.Equal(wc.AuthTime) ||
		!gc.RequestedAt.Equal(wc.RequestedAt) || !reflect.DeepEqual(gc.Extra, wc.Extra) {
		t.Errorf("session ID token claims = %+v, want %+v", gc, wc)
	}
	if got.Headers == nil || !reflect.DeepEqual(got.Headers.Extra, want.Headers.Extra) {
		t.Errorf("session ID token headers = %+v, want %+v", got.Headers, want.Headers)
	}
}

// wantErr fails t unless err matches every target.
func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got nil error, want %v", what, targets)
		return
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s: error %q does not match %q", what, err, target)
		}
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
