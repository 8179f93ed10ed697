package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// idClaims are the ID token claims about the sign-in itself.
type idClaims struct {
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
}

// exchangeID redeems code and verifies the ID token with go-oidc under the
// test clock.
func (f *fixture) exchangeID(t *testing.T, code, verifier string) idClaims {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), http.DefaultClient)
	provider, err := oidc.NewProvider(ctx, f.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: f.clientID, Now: f.clock.Now}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoginFlowPromptAndMaxAge(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		b := f.browser()
		code, verifier := f.code(b)
		first := f.exchangeID(t, code, verifier)
		if len(first.AMR) != 1 || first.AMR[0] != "pwd" || first.ACR != policies.ACRPassword {
			t.Fatalf("ID token amr=%v acr=%q, want [pwd] and %s", first.AMR, first.ACR, policies.ACRPassword)
		}

		// The session is made two hours old in the database rather than by
		// moving the clock: fosite judges "auth_time in the future" and ID
		// token expiry by the wall clock.
		ctx := context.Background()
		live, err := f.srv.Store().UserBrowserSessions(ctx, f.userID)
		if err != nil || len(live) != 1 {
			t.Fatalf("sessions of alice: %v, %v", live, err)
		}
		if err := f.srv.Store().ReauthenticateBrowserSession(ctx, live[0].ID, f.clock.Now().Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		first.AuthTime -= int64((2 * time.Hour).Seconds())
		t.Run("max_age shows the login page, then completes with a fresh auth_time", func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			u := f.conf.AuthCodeURL("state-maxage", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("max_age", "60"))
			resp, _ := b.get(u)
			if resp.Request.URL.Path != "/login" || !resp.Request.URL.Query().Has("flow") {
				t.Fatalf("max_age=60 on a two-hour-old session went to %s, want the login page", resp.Request.URL)
			}
			loc := b.signIn(u, "alice", alicePass, "")
			if loc.Query().Get("code") == "" || loc.Query().Get("state") != "state-maxage" {
				t.Fatalf("after signing in again: %s", loc)
			}
			got := f.exchangeID(t, loc.Query().Get("code"), verifier)
			if got.AuthTime <= first.AuthTime || f.clock.Now().Unix()-got.AuthTime > 5 {
				t.Fatalf("auth_time %d, first %d, now %d: want a fresh one", got.AuthTime, first.AuthTime, f.clock.Now().Unix())
			}
		})
		t.Run("max_age satisfied goes straight through", func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			resp, _ := b.get(f.conf.AuthCodeURL("state-fresh", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("max_age", "3600")))
			if loc, err := resp.Location(); err != nil || loc.Query().Get("code") == "" {
				t.Fatalf("fresh session with max_age=3600: %d at %s", resp.StatusCode, resp.Request.URL)
			}
		})
		t.Run("prompt=login asks again even with a fresh session", func(t *testing.T) {
			u := f.conf.AuthCodeURL("state-login", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "login"))
			resp, _ := b.get(u)
			if resp.Request.URL.Path != "/login" {
				t.Fatalf("prompt=login went to %s", resp.Request.URL)
			}
			if loc := b.signIn(u, "alice", alicePass, ""); loc.Query().Get("code") == "" {
				t.Fatalf("prompt=login did not complete: %s", loc)
			}
		})
		t.Run("max_age=0 completes after one sign-in", func(t *testing.T) {
			u := f.conf.AuthCodeURL("state-zero", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("max_age", "0"))
			if loc := b.signIn(u, "alice", alicePass, ""); loc.Query().Get("code") == "" {
				t.Fatalf("max_age=0: %s", loc)
			}
		})
		t.Run("prompt=none without a session", func(t *testing.T) {
			resp, _ := f.browser().get(f.conf.AuthCodeURL("state-none", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
			loc, err := resp.Location()
			if err != nil || !strings.HasPrefix(loc.String(), callback) || loc.Query().Get("error") != "login_required" || loc.Query().Get("state") != "state-none" {
				t.Fatalf("prompt=none without a session: %d %v", resp.StatusCode, loc)
			}
		})
		t.Run("max_age with prompt=none", func(t *testing.T) {
			resp, _ := b.get(f.conf.AuthCodeURL("state-none2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("max_age", "0")))
			loc, err := resp.Location()
			if err != nil || loc.Query().Get("error") != "login_required" {
				t.Fatalf("prompt=none with an old session and max_age: %d %v", resp.StatusCode, loc)
			}
		})
	})
}

// A login flow completes once, in the browser that started it.
func TestLoginFlowIsSingleUseAndBound(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	b := f.browser()
	resp, page := b.get(f.conf.AuthCodeURL("state-flow", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("authorize went to %s", resp.Request.URL)
	}
	form := hiddenFields(page)
	if form.Get("flow") == "" || form.Has("return_to") {
		t.Fatalf("login form fields %v: want a flow id and no return_to", form)
	}
	loginURL := resp.Request.URL.String()
	form.Set("username", "alice")
	form.Set("password", alicePass)

	t.Run("another browser cannot use it", func(t *testing.T) {
		other := f.browser()
		resp, body := other.get(loginURL)
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, `name="password"`) {
			t.Fatalf("GET of another browser's flow: %d", resp.StatusCode)
		}
		// Even with a CSRF token of its own, the POST is refused.
		_, own := other.get(f.issuer + "/login")
		stolen := hiddenFields(own)
		stolen.Set("flow", form.Get("flow"))
		stolen.Set("username", "alice")
		stolen.Set("password", alicePass)
		resp, _ = other.postForm(f.issuer+"/login", stolen)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("POST of another browser's flow: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	resp, _ = b.postForm(f.issuer+"/login", form)
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("completing the flow: %d %v", resp.StatusCode, loc)
	}
	t.Run("replayed after completion", func(t *testing.T) {
		// The old page's form token was bound to the flow, and the browser
		// now holds a session: a current token is taken from a fresh page,
		// so that only the flow's single use stands in the way.
		_, fresh := b.get(f.issuer + "/login")
		form.Set(authn.CSRFField, hiddenFields(fresh).Get(authn.CSRFField))
		resp, body := b.postForm(f.issuer+"/login", form)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already") {
			t.Fatalf("replayed flow: %d", resp.StatusCode)
		}
	})
	t.Run("resumed twice", func(t *testing.T) {
		q := url.Values{"login_flow": {form.Get("flow")}}
		resp, _ := b.get(f.issuer + "/oauth2/auth?" + q.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("second resumption: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// The browser login form judges an attempt by the client's policy: an
// application that allows one session per user refuses a second sign-in
// to it, while the global policy (no limit) admits one elsewhere.
func TestLoginFormAppliesTheClientsPolicy(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	f.createClient(oauth.ClientSpec{ID: "strict", GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"},
		RedirectURIs: []string{callback}, SkipConsent: true})
	f.admin().patch("/admin/clients/strict/policies", `{"customized":true,"session":{"max_concurrent":1,"on_limit":"reject"}}`)
	strict := *f.conf
	strict.ClientID, strict.ClientSecret, strict.Scopes = "strict", "", []string{"openid"}
	authURL := func(c *oauth2.Config) string {
		return c.AuthCodeURL("abcdefghij", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	}

	if loc := f.browser().signIn(authURL(&strict), "alice", alicePass, ""); loc.Query().Get("code") == "" {
		t.Fatalf("first sign-in to strict: %s", loc)
	}
	// A second browser signing in to the strict application is refused...
	resp, body := f.browser().postLogin(authURL(&strict), "alice", alicePass)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "too many devices") {
		t.Fatalf("second session for strict: %d, want the too-many-sessions message", resp.StatusCode)
	}
	// ...while signing in to an application under the global policy works.
	if loc := f.browser().signIn(authURL(f.conf), "alice", alicePass, ""); loc.Query().Get("code") == "" {
		t.Fatalf("sign-in to webapp: %s", loc)
	}
}

// A program embedding Portcullis adds its own step to every sign-in: here
// one that refuses a user outside office hours. It runs on the browser
// login form, sees the attempt's client, and its denial is what the
// person gets and what the audit trail records.
func TestCustomLoginStep(t *testing.T) {
	var sawClient string
	hook := authn.Hook{Name: "office_hours", Phase: authn.PhaseAccount, Run: func(_ context.Context, c *authn.Check) (authn.Decision, error) {
		sawClient = c.ClientID
		if c.User != nil && c.User.Username == "alice" {
			return authn.Denied("outside_office_hours", time.Time{}), nil
		}
		return authn.Proceed(), nil
	}}
	in := startWithHooks(t, storagetest.SQLiteURL(t), &testClock{}, []authn.Hook{hook})
	f := fixtureOn(t, in, true)
	resp, body := f.browser().postLogin(f.conf.AuthCodeURL("abcdefghij", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Invalid username or password.") || resp.Header.Get("Location") != "" {
		t.Fatalf("login denied by the custom step: %d, want the login page with the usual message", resp.StatusCode)
	}
	if sawClient != "webapp" {
		t.Errorf("the step saw client %q, want webapp", sawClient)
	}
	evs, _, err := f.srv.Audit().Query(context.Background(), audit.Query{Type: audit.TypeLoginFailed, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Reason != "outside_office_hours" || evs[0].ClientID != "webapp" {
		t.Fatalf("audit = %+v, %v", evs, err)
	}
}
