package server_test

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/server"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// testClock is the injected clock: real time plus an offset tests advance.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

const testSecret = "test-system-secret-0123456789abcdef-0123456789"

// instance is one in-process Portcullis on a real listener.
type instance struct {
	t      testing.TB
	srv    *server.Server
	ts     *httptest.Server
	issuer string
	clock  *testClock
	dbURL  string
}

// cheap hashing keeps user creation fast in tests; production defaults are
// exercised by the hashing package's own tests.
var cheapHash = hashing.Argon2{Memory: 8192, Iterations: 1, Parallelism: 1}

func testConfig(dbURL string) *config.Config {
	cfg := config.Default()
	cfg.Database.URL = dbURL
	cfg.Secrets.System = []string{testSecret}
	cfg.Hashing.MemoryKiB = cheapHash.Memory
	cfg.Hashing.Iterations = cheapHash.Iterations
	cfg.Log.Level = "warn"
	return cfg
}

// start runs a server for dbURL on a fresh loopback listener.
func start(t testing.TB, dbURL string, clock *testClock, mutate ...func(*config.Config)) *instance {
	t.Helper()
	return startWithHooks(t, dbURL, clock, nil, mutate...)
}

// startWithHooks is start for a program that adds its own sign-in steps.
func startWithHooks(t testing.TB, dbURL string, clock *testClock, hooks []authn.Hook, mutate ...func(*config.Config)) *instance {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	issuer := "http://" + ts.Listener.Addr().String()
	cfg := testConfig(dbURL)
	cfg.Server.Issuer = issuer
	for _, m := range mutate {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := server.New(context.Background(), cfg, server.Options{Logger: logger, Now: clock.Now, LoginHooks: hooks})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	in := &instance{t: t, srv: srv, ts: ts, issuer: issuer, clock: clock, dbURL: dbURL}
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	in.ts.Close()
	_ = in.srv.Close()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// eachBackend runs fn on SQLite and, when reachable, PostgreSQL.
func eachBackend(t *testing.T, fn func(t *testing.T, dbURL string)) {
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.URL) })
	}
}

func (in *instance) createClient(spec oauth.ClientSpec) string {
	in.t.Helper()
	c, secret, err := oauth.NewClient(spec, cheapHash)
	if err != nil {
		in.t.Fatalf("NewClient: %v", err)
	}
	if err := in.srv.Store().CreateClient(context.Background(), c); err != nil {
		in.t.Fatalf("CreateClient: %v", err)
	}
	return secret
}

func (in *instance) createUser(spec authn.UserSpec) string {
	in.t.Helper()
	u, err := in.srv.Accounts().Create(context.Background(), spec, authn.Actor{ID: "test-setup"})
	if err != nil {
		in.t.Fatalf("create user: %v", err)
	}
	return u.ID
}

// browser is a cookie-keeping HTTP client that stops at the first redirect
// leaving the server, as a real browser hands the callback to the app.
type browser struct {
	t      testing.TB
	c      *http.Client
	issuer string
}

func (in *instance) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: in.t, issuer: in.issuer}
	b.c = &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if !strings.HasPrefix(req.URL.String(), in.issuer) {
				return http.ErrUseLastResponse
			}
			if len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	return b
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	return resp, readBody(b.t, resp)
}

func (b *browser) postForm(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	return resp, readBody(b.t, resp)
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hiddenFields extracts a form's hidden inputs, as a browser would submit them.
func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// postLogin opens authURL, which must lead to the login page, and submits
// its form with username and password; it returns the answer to the POST.
func (b *browser) postLogin(authURL, username, password string) (*http.Response, string) {
	b.t.Helper()
	_, page := b.get(authURL)
	form := hiddenFields(page)
	form.Set("username", username)
	form.Set("password", password)
	return b.postForm(b.issuer+"/login", form)
}

// signIn drives the authorize URL through the real login form (and consent
// when shown) and returns the final redirect to the client.
func (b *browser) signIn(authURL, username, password string, consent string) *url.URL {
	b.t.Helper()
	resp, body := b.get(authURL)
	if resp.Request.URL.Path == "/login" {
		form := hiddenFields(body)
		form.Set("username", username)
		form.Set("password", password)
		resp, body = b.postForm(b.issuer+"/login", form)
	}
	if strings.Contains(body, `name="consent"`) {
		if consent == "" {
			b.t.Fatalf("consent page shown unexpectedly")
		}
		form := hiddenFields(body)
		form.Set("consent", consent)
		resp, body = b.postForm(b.issuer+"/oauth2/auth", form)
	}
	loc, err := resp.Location()
	if err != nil {
		b.t.Fatalf("no redirect to the client (status %d, url %s): %s", resp.StatusCode, resp.Request.URL, body)
	}
	return loc
}
