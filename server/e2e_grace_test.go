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
	"github.com/portcullis/portcullis/policies"
)

// TestRefreshReuseGrace: with token.refresh_reuse_grace set, a client that
// presents its used refresh token again within the grace period — in
// sequence or racing itself — gets the first answer again instead of a
// family revocation; after the grace period the reuse revokes the family.
func TestRefreshReuseGrace(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		clock := &testClock{}
		in := start(t, dbURL, clock, func(c *config.Config) { c.Token.RefreshReuseGrace = policies.Duration(30 * time.Second) })
		f := fixtureOn(t, in, true)
		ctx := context.Background()
		code, verifier := f.code(f.browser())
		tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
		status, first := f.tokenRequest(form)
		if status != http.StatusOK {
			t.Fatalf("refresh: %d %v", status, first)
		}
		status, again := f.tokenRequest(form)
		if status != http.StatusOK || again["access_token"] != first["access_token"] || again["refresh_token"] != first["refresh_token"] {
			t.Fatalf("reuse within grace: %d, got a different answer %v", status, again)
		}
		if !active(f.introspect(first["access_token"].(string))) {
			t.Fatal("reuse within grace revoked the family")
		}

		// Racing itself: every parallel refresh of one token gets the same answer.
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			answers = map[string]int{}
		)
		race := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, f.issuer+"/oauth2/token", strings.NewReader(race.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(f.clientID, f.secret)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				var body map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&body)
				mu.Lock()
				defer mu.Unlock()
				if resp.StatusCode != http.StatusOK {
					answers["error "+resp.Status]++
					return
				}
				answers[body["access_token"].(string)]++
			}()
		}
		wg.Wait()
		if len(answers) != 1 {
			t.Fatalf("racing refreshes within grace got different answers: %v", answers)
		}

		// Past the grace period the same reuse is treated as theft.
		clock.Advance(31 * time.Second)
		status, body := f.tokenRequest(form)
		if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("reuse after grace: %d %v, want invalid_grant", status, body)
		}
		if active(f.introspect(first["access_token"].(string))) {
			t.Fatal("reuse after the grace period left the family active")
		}
	})
}
