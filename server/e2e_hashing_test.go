package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// When every unit of hashing memory is taken, a sign-in or a token request
// that needs argon2 waits its queue time and is then refused with 503 and
// Retry-After: never a wrong-password page or invalid_client, which would
// send the person or client the wrong way. Generated client secrets need
// no argon2 and keep working.
func TestFullHashingMemoryAnswers503(t *testing.T) {
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, func(c *config.Config) {
		c.Hashing.QueueTimeout = config.Duration{}
	})
	f := fixtureOn(t, in, true)
	chosen := "a secret an administrator typed in, long enough"
	f.createClient(oauth.ClientSpec{ID: "chosen", Name: "Chosen", Secret: chosen,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"profile"}})

	stats := f.srv.HashLimiter().Stats()
	release, err := f.srv.HashLimiter().Acquire(context.Background(), stats.BudgetKiB)
	if err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	for _, user := range []string{"alice", "nobody"} {
		resp, page := b.postLogin(authURL, user, "wrong password")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("sign-in as %s while hashing is full: %d, Retry-After %q", user, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(page, "Too busy right now") {
			t.Errorf("sign-in as %s while hashing is full does not say the server is busy:\n%s", user, page)
		}
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"chosen"}, "client_secret": {chosen}}
	status, body, retry := postToken(t, f.issuer, form)
	if status != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" || retry == "" {
		t.Errorf("chosen-secret token request while hashing is full = %d %v, Retry-After %q; want 503 temporarily_unavailable", status, body, retry)
	}
	status, body = f.tokenRequest(url.Values{"grant_type": {"client_credentials"}})
	if status != http.StatusOK {
		t.Errorf("generated-secret token request while hashing is full = %d %v, want 200", status, body)
	}
	if got := f.srv.HashLimiter().Stats().Refused; got < 3 {
		t.Errorf("refused hashes counted %d, want at least 3", got)
	}
	release()

	if loc := b.signIn(authURL, "alice", alicePass, ""); loc.Query().Get("code") == "" {
		t.Fatalf("sign-in after the burst: %s", loc)
	}
	if status, body, _ := postToken(t, f.issuer, form); status != http.StatusOK {
		t.Fatalf("chosen-secret token request after the burst = %d %v", status, body)
	}
}

// Many parallel sign-ins with a budget of one hash: every answer is a
// wrong password or busy, none a server error.
func TestParallelSignInsStayWithinTheHashingBudget(t *testing.T) {
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, func(c *config.Config) {
		c.Hashing.MemoryKiB = 8192
		c.Hashing.MaxMemoryMiB = 8
		c.Hashing.QueueTimeout = config.Duration{Duration: 50 * time.Millisecond}
	})
	f := fixtureOn(t, in, true)
	authURL := f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 24 {
		wg.Go(func() {
			resp, _ := f.browser().postLogin(authURL, "alice", "wrong password")
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("answers by status: %v", codes)
	for code := range codes {
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d", codes[code], code)
		}
	}
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Error("24 parallel sign-ins with room for one hash and a 50ms queue: none was refused")
	}
}

// postToken posts form to the token endpoint, client credentials in the
// body, and returns the status, the JSON body and Retry-After.
func postToken(t *testing.T, issuer string, form url.Values) (int, map[string]any, string) {
	t.Helper()
	resp, err := http.PostForm(issuer+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header.Get("Retry-After")
}
