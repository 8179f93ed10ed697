package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chrome is one headless Chromium with a fresh profile, driven over the
// DevTools protocol: pages are tested as a person's browser uses them,
// with its real cookie, referrer, CORS and Sec-Fetch-* behaviour.
type chrome struct {
	t   *testing.T
	ctx context.Context
}

// chromiumPath finds the browser. Under CI=true a missing browser fails
// the run: a browser test that silently skips proves nothing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found; install it (apt-get install -y chromium)")
	}
	t.Skip("no Chromium found; install it (apt-get install -y chromium) to run the browser tests")
	return ""
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 800),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, so a launch failure reads as one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &chrome{t: t, ctx: ctx}
}

// do runs actions, failing the test with what was being done.
func (c *chrome) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		c.t.Fatalf("%s: %v (at %s)", what, err, c.location())
	}
}

func (c *chrome) location() string {
	loc, _ := chromedp.Run(c.ctx, chromedp.Location())
	return loc
}

func (c *chrome) text(sel string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		c.t.Fatalf("read %s: %v (at %s)", sel, err, c.location())
	}
	return s
}

func (c *chrome) visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// fill types into a field after clearing it.
func (c *chrome) fill(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Clear(chromedp.CSS(sel)),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	)
}

func (c *chrome) click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel))
}

// signIn fills and submits the login form the browser is on.
func (c *chrome) signIn(username, password string) {
	c.t.Helper()
	c.do("sign in",
		c.fill(`input[name="username"]`, username),
		c.fill(`input[name="password"]`, password),
		c.click(`form button[type="submit"]`),
	)
}

// screenshot writes the page to $PORTCULLIS_SCREENSHOTS/name.png, for
// people to look at; without the variable it does nothing.
func (c *chrome) screenshot(name string) {
	c.t.Helper()
	dir := os.Getenv("PORTCULLIS_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// page serves one HTML document at every path, with {{ISSUER}} replaced:
// a stand-in for an application's own site on its own origin.
func page(t *testing.T, issuer, html string) *httptest.Server {
	t.Helper()
	body := strings.ReplaceAll(html, "{{ISSUER}}", issuer)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts
}
