package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// The test client's address: every request of these tests comes from it.
const loopback = "127.0.0.1"

// forwardedFor sends every request with X-Forwarded-For set, as a client
// (or a proxy in front of the server) may.
type forwardedFor string

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", string(f))
	return http.DefaultTransport.RoundTrip(r)
}

// browserVia is a fresh browser whose every request says it was forwarded
// for xff ("" sends no header).
func (in *instance) browserVia(xff string) *browser {
	b := in.browser()
	if xff != "" {
		b.c.Transport = forwardedFor(xff)
	}
	return b
}

// signInTo signs alice in to the application of conf with a fresh browser
// (via xff, see browserVia) through the login form and reports whether she
// got an authorization code. A refusal must be the login page's one
// failure message, the same for every reason, and the page that a wrong
// password gets; anything else fails the test.
// ipRefusal is what the login page says to an address the IP rules refuse.
const ipRefusal = "Signing in from your network is not allowed."

func (in *instance) signInTo(t *testing.T, conf *oauth2.Config, xff string) bool {
	t.Helper()
	b := in.browserVia(xff)
	resp, page := b.postLogin(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
	if loc, err := resp.Location(); err == nil {
		if loc.Query().Get("code") == "" {
			t.Fatalf("sign-in to %s via %q redirected without a code: %s", conf.ClientID, xff, loc)
		}
		return true
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, ipRefusal) {
		t.Fatalf("sign-in to %s via %q: status %d, not the IP refusal:\n%.500s", conf.ClientID, xff, resp.StatusCode, page)
	}
	return false
}

// ipRuleDenials lists the login.failed events with reason ip_rule of
// clientID, newest first.
func (in *instance) ipRuleDenials(t *testing.T, clientID string) []storage.AuditEvent {
	t.Helper()
	rows, err := in.srv.Store().ListAudit(context.Background(), storage.AuditFilter{Type: audit.TypeLoginFailed, ClientID: clientID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []storage.AuditEvent
	for _, r := range rows {
		if r.Reason == authn.ReasonIPRule {
			out = append(out, r)
		}
	}
	return out
}

func withIPRules(ip policies.IP) func(*config.Config) {
	return func(c *config.Config) { c.IP = ip }
}

func trusting(proxies ...string) func(*config.Config) {
	return func(c *config.Config) { c.Server.TrustedProxies = proxies }
}

// TestIPRulesRefuseSignIn: a global block list holding the client's
// address, or an allowlist without it, refuses the sign-in with the login
// form's one failure page, audited as ip_rule, without hashing anything.
func TestIPRulesRefuseSignIn(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{}, func(c *config.Config) {
			// No waiting for hashing memory: a sign-in that needed a hash
			// while the budget is taken would answer 503.
			c.Hashing.QueueTimeout = config.Duration{}
		})
		f := fixtureOn(t, in, true)
		adm := f.admin()

		for _, tc := range []struct{ name, patch string }{
			{"v4 block list", `{"ip":{"mode":"blocklist","block":["192.0.2.0/24","127.0.0.0/8"]}}`},
			{"allowlist without the address", `{"ip":{"mode":"allowlist","allow":["10.0.0.0/8","::1"],"block":[]}}`},
			{"allowlist whose exception is the address", `{"ip":{"mode":"allowlist","allow":["127.0.0.0/8"],"block":["127.0.0.1"]}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				adm.patch("/admin/policies", tc.patch)
				before := len(in.ipRuleDenials(t, f.clientID))

				stats := in.srv.HashLimiter().Stats()
				release, err := in.srv.HashLimiter().Acquire(context.Background(), stats.BudgetKiB)
				if err != nil {
					t.Fatal(err)
				}
				b := f.browser()
				resp, page := b.postLogin(f.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
				release()
				// Decided before the account is looked up, the refusal says
				// what it is: it reveals nothing about the account, and a
				// person with the right password is not sent to reset it.
				if resp.StatusCode != http.StatusOK || !strings.Contains(page, ipRefusal) || strings.Contains(page, "Invalid username or password") {
					t.Fatalf("refused sign-in: status %d (503 would mean it needed a hash):\n%.500s", resp.StatusCode, page)
				}
				if refused := in.srv.HashLimiter().Stats().Refused; refused != stats.Refused {
					t.Errorf("%d hashes were attempted for an address the rules refuse", refused-stats.Refused)
				}

				events := in.ipRuleDenials(t, f.clientID)
				if len(events) != before+1 {
					t.Fatalf("%d login.failed events with reason ip_rule, want %d", len(events), before+1)
				}
				if e := events[0]; e.IP != loopback || e.Outcome != audit.OutcomeFailure || e.UserID != "" {
					t.Errorf("event %+v, want the client's address %s and no user (the account is never looked up)", e, loopback)
				}
			})
		}

		adm.patch("/admin/policies", `{"ip":{"mode":"off"}}`)
		if !in.signInTo(t, f.conf, "") {
			t.Fatal("sign-in refused with the IP rules off")
		}
	})
}

// TestIPRulesAndForwardedFor: X-Forwarded-For decides the address judged
// only when the TCP peer is a trusted proxy; from anyone else it neither
// blocks nor unlocks.
func TestIPRulesAndForwardedFor(t *testing.T) {
	t.Run("untrusted peer", func(t *testing.T) {
		f := fixtureOn(t, start(t, storagetest.SQLiteURL(t), &testClock{}), true)
		adm := f.admin()

		adm.patch("/admin/policies", `{"ip":{"mode":"blocklist","block":["203.0.113.0/24","2001:db8:bad::/48"]}}`)
		for _, xff := range []string{"203.0.113.5", "2001:db8:bad::1", "198.51.100.1, 203.0.113.5"} {
			if !f.signInTo(t, f.conf, xff) {
				t.Errorf("a blocked X-Forwarded-For %q from an untrusted peer refused the sign-in", xff)
			}
		}

		adm.patch("/admin/policies", `{"ip":{"mode":"allowlist","allow":["203.0.113.0/24","2001:db8:1::/48"],"block":[]}}`)
		for _, xff := range []string{"203.0.113.5", "2001:db8:1::1", "127.0.0.1, 203.0.113.5"} {
			if f.signInTo(t, f.conf, xff) {
				t.Errorf("an allowlisted X-Forwarded-For %q from an untrusted peer unlocked the sign-in", xff)
			}
		}
		for _, e := range f.ipRuleDenials(t, f.clientID) {
			if e.IP != loopback {
				t.Errorf("refusal audited from %q, want the peer %s: the header is not believed", e.IP, loopback)
			}
		}
	})

	t.Run("trusted proxy", func(t *testing.T) {
		f := fixtureOn(t, start(t, storagetest.SQLiteURL(t), &testClock{}, trusting(loopback)), true)
		adm := f.admin()

		adm.patch("/admin/policies", `{"ip":{"mode":"blocklist","block":["203.0.113.0/24","2001:db8:bad::/48"]}}`)
		for _, tc := range []struct {
			xff     string
			allowed bool
		}{
			{"203.0.113.5", false},
			{"2001:db8:bad::1", false},
			{"::ffff:203.0.113.5", false}, // the IPv4 address, written as IPv6
			{"198.51.100.1", true},
			{"2001:db8::1", true},
			{"", true}, // the proxy itself
			// Only the hop the proxy vouches for counts: what the client
			// wrote to its left is its own claim.
			{"203.0.113.5, 198.51.100.1", true},
			{"198.51.100.1, 203.0.113.5", false},
		} {
			if got := f.signInTo(t, f.conf, tc.xff); got != tc.allowed {
				t.Errorf("block list, X-Forwarded-For %q from the trusted proxy: signed in %v, want %v", tc.xff, got, tc.allowed)
			}
		}
		seen := map[string]bool{}
		for _, e := range f.ipRuleDenials(t, f.clientID) {
			seen[e.IP] = true
		}
		for _, ip := range []string{"203.0.113.5", "2001:db8:bad::1"} {
			if !seen[ip] {
				t.Errorf("no ip_rule refusal audited from %s (audited: %v)", ip, seen)
			}
		}

		adm.patch("/admin/policies", `{"ip":{"mode":"allowlist","allow":["198.51.100.0/24","2001:db8:1::/48"],"block":[]}}`)
		for _, tc := range []struct {
			xff     string
			allowed bool
		}{
			{"198.51.100.7", true},
			{"2001:db8:1::9", true},
			{"::ffff:198.51.100.7", true},
			{"203.0.113.5", false},
			{"2001:db8:2::1", false},
			{"", false}, // the proxy itself is not on the list
		} {
			if got := f.signInTo(t, f.conf, tc.xff); got != tc.allowed {
				t.Errorf("allowlist, X-Forwarded-For %q from the trusted proxy: signed in %v, want %v", tc.xff, got, tc.allowed)
			}
		}
	})
}

// TestIPRulesPerApplication: an application's own ip section refuses
// sign-ins to it only, while the global block list refuses every
// application, the customized one included, whatever its own rules say.
func TestIPRulesPerApplication(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		adm := f.admin()
		other := &oauth2.Config{
			ClientID: "other",
			ClientSecret: f.createClient(oauth.ClientSpec{
				ID: "other", Name: "Other", GrantTypes: []string{"authorization_code"},
				Scopes: []string{"openid"}, RedirectURIs: []string{callback}, SkipConsent: true,
			}),
			Endpoint:    f.conf.Endpoint,
			RedirectURL: callback,
			Scopes:      []string{"openid"},
		}
		steps := []struct {
			name                string
			path, patch         string
			webapp, otherSignIn bool
		}{
			{"other blocks the address for itself", "/admin/clients/other/policies",
				`{"ip":{"mode":"blocklist","block":["127.0.0.1"]}}`, true, false},
			{"a global change does not reach the customized app", "/admin/policies",
				`{"ip":{"mode":"allowlist","allow":["127.0.0.0/8"]}}`, true, false},
			{"other lets only its own range in", "/admin/clients/other/policies",
				`{"ip":{"mode":"allowlist","allow":["127.0.0.1/32"],"block":[]}}`, true, true},
			{"the global block list refuses every app, the customized one too", "/admin/policies",
				`{"ip":{"mode":"blocklist","block":["127.0.0.0/8"],"allow":[]}}`, false, false},
			{"the global rules off again", "/admin/policies",
				`{"ip":{"mode":"off","block":[]}}`, true, true},
			{"other back to the global rules", "/admin/clients/other/policies",
				`{"customized_sections":[]}`, true, true},
			{"a global block then reaches other as it follows the global policy", "/admin/policies",
				`{"ip":{"mode":"blocklist","block":["127.0.0.1"]}}`, false, false},
		}
		for _, st := range steps {
			adm.patch(st.path, st.patch)
			if got := f.signInTo(t, f.conf, ""); got != st.webapp {
				t.Errorf("%s: sign-in to webapp %v, want %v", st.name, got, st.webapp)
			}
			if got := f.signInTo(t, other, ""); got != st.otherSignIn {
				t.Errorf("%s: sign-in to other %v, want %v", st.name, got, st.otherSignIn)
			}
		}
		if len(f.ipRuleDenials(t, "other")) != 4 || len(f.ipRuleDenials(t, f.clientID)) != 2 {
			t.Errorf("ip_rule refusals audited: other %d, webapp %d; want 4 and 2",
				len(f.ipRuleDenials(t, "other")), len(f.ipRuleDenials(t, f.clientID)))
		}
	})
}

// TestIPRulesGuardTheAdminAPI: with apply_to = ["admin"] the global rules
// refuse admin API requests from a refused address, whatever the token,
// and an administrator cannot lock their own address out through the API.
func TestIPRulesGuardTheAdminAPI(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		// The server behind a proxy at the test's address: X-Forwarded-For
		// says where each admin call comes from.
		f := fixtureOn(t, start(t, dbURL, &testClock{}, trusting(loopback)), true)
		adm := f.admin()
		call := func(xff, method, path, body string) (int, map[string]any) {
			t.Helper()
			tok, err := adm.cc.Token(context.Background())
			if err != nil {
				t.Fatalf("admin token: %v", err)
			}
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, _ := http.NewRequest(method, f.issuer+path, rd)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			if body != "" {
				req.Header.Set("Content-Type", "application/merge-patch+json")
			}
			client := http.DefaultClient
			if xff != "" {
				client = &http.Client{Transport: forwardedFor(xff)}
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			return resp.StatusCode, out
		}
		policyNow := func() string { return string(adm.get("/admin/policies")) }

		// Locking oneself out is refused and changes nothing.
		before := policyNow()
		for _, tc := range []struct{ xff, patch string }{
			{"", `{"ip":{"mode":"allowlist","allow":["10.0.0.0/8"],"apply_to":["admin"]}}`},
			{"198.51.100.4", `{"ip":{"mode":"blocklist","block":["198.51.100.0/24"],"apply_to":["admin"]}}`},
			{"2001:db8::4", `{"ip":{"mode":"allowlist","allow":["127.0.0.1","198.51.100.0/24"],"apply_to":["admin"]}}`},
		} {
			status, body := call(tc.xff, http.MethodPatch, "/admin/policies", tc.patch)
			fields, _ := body["fields"].([]any)
			field := ""
			if len(fields) == 1 {
				field, _ = fields[0].(map[string]any)["field"].(string)
			}
			if status != http.StatusUnprocessableEntity || body["error"] != "invalid_policy" || field != "ip" {
				t.Errorf("self-locking patch %s from %q: %d %v, want 422 invalid_policy naming ip", tc.patch, tc.xff, status, body)
			}
		}
		if after := policyNow(); after != before {
			t.Errorf("a refused patch changed the policy:\n%s\nwas\n%s", after, before)
		}

		// The office and the proxy may administer; nobody else, token or not.
		if status, body := call("198.51.100.4", http.MethodPatch, "/admin/policies",
			`{"ip":{"mode":"allowlist","allow":["127.0.0.1","198.51.100.0/24","2001:db8:1::/48"],"apply_to":["admin"]}}`); status != http.StatusOK {
			t.Fatalf("allowlisting the caller: %d %v", status, body)
		}
		for _, tc := range []struct {
			xff    string
			status int
		}{
			{"", http.StatusOK},
			{"198.51.100.4", http.StatusOK},
			{"2001:db8:1::4", http.StatusOK},
			{"203.0.113.9", http.StatusForbidden},
			{"2001:db8:2::4", http.StatusForbidden},
		} {
			status, body := call(tc.xff, http.MethodGet, "/admin/clients", "")
			if status != tc.status {
				t.Errorf("admin API from %q: %d %v, want %d", tc.xff, status, body, tc.status)
			}
			if status == http.StatusForbidden && body["error"] != "access_denied" {
				t.Errorf("admin API from %q: %v, want access_denied", tc.xff, body)
			}
		}
		// No token helps a refused address, and none is needed to learn so.
		resp, err := (&http.Client{Transport: forwardedFor("203.0.113.9")}).Get(f.issuer + "/admin/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("OpenAPI document from a refused address: %d, want 403", resp.StatusCode)
		}
		// Sign-in is guarded by the same rules.
		if f.signInTo(t, f.conf, "203.0.113.9") || !f.signInTo(t, f.conf, "198.51.100.4") {
			t.Error("sign-in does not follow the rules guarding the admin API")
		}

		// Without apply_to the admin API is open to every address again,
		// while sign-in stays guarded.
		if status, body := call("", http.MethodPatch, "/admin/policies", `{"ip":{"apply_to":[]}}`); status != http.StatusOK {
			t.Fatalf("dropping apply_to: %d %v", status, body)
		}
		if status, body := call("203.0.113.9", http.MethodGet, "/admin/clients", ""); status != http.StatusOK {
			t.Errorf("admin API from 203.0.113.9 without apply_to: %d %v", status, body)
		}
		if f.signInTo(t, f.conf, "203.0.113.9") {
			t.Error("sign-in from outside the allowlist after dropping apply_to")
		}
	})
}
