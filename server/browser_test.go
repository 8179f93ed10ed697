package server_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/chromedp/chromedp"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const appPage = `<!doctype html><html lang="en"><title>Example App</title><h1 id="app">Example App</h1></html>`

// webApp is a server, one confidential client whose redirect URI is a real
// page on its own origin, and alice.
type webApp struct {
	in   *instance
	app  string // the application's origin
	conf *oauth2.Config
}

func newWebApp(t *testing.T, skipConsent bool, mutate ...func(*config.Config)) *webApp {
	t.Helper()
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, mutate...)
	app := page(t, in.issuer, appPage).URL
	secret := in.createClient(oauth.ClientSpec{
		ID: "webapp", Name: "Example App",
		GrantTypes:             []string{"authorization_code", "refresh_token"},
		Scopes:                 []string{"openid", "offline_access", "profile", "email"},
		RedirectURIs:           []string{app + "/callback"},
		PostLogoutRedirectURIs: []string{app + "/bye"},
		PolicyURI:              "https://example.com/privacy",
		TosURI:                 "https://example.com/terms",
		SkipConsent:            skipConsent,
	})
	in.createUser(authn.UserSpec{Username: "alice", Password: alicePass, Email: "alice@example.com", EmailVerified: true})
	return &webApp{in: in, app: app, conf: &oauth2.Config{
		ClientID: "webapp", ClientSecret: secret, RedirectURL: app + "/callback",
		Endpoint: oauth2.Endpoint{AuthURL: in.issuer + "/oauth2/auth", TokenURL: in.issuer + "/oauth2/token"},
		Scopes:   []string{"openid", "offline_access", "profile", "email"},
	}}
}

// authorize starts a code+PKCE request in the browser and returns the
// state and verifier to check the callback with.
func (a *webApp) authorize(c *chrome) (state, verifier string) {
	c.t.Helper()
	state, verifier = oauth2.GenerateVerifier()[:16], oauth2.GenerateVerifier()
	c.do("open the authorization URL", chromedp.Navigate(a.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))))
	return state, verifier
}

// callback waits for the browser to reach the application and exchanges
// the code there with x/oauth2, as the application's backend would.
func (a *webApp) callback(c *chrome, state, verifier string) *oauth2.Token {
	c.t.Helper()
	c.do("arrive at the application", c.visible("#app"))
	loc, err := url.Parse(c.location())
	if err != nil || loc.Path != "/callback" || loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		c.t.Fatalf("callback %s: want /callback with state %s and a code", loc, state)
	}
	tok, err := a.conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		c.t.Fatalf("exchange the code: %v", err)
	}
	return tok
}

// signedIn reports whether the browser still holds a session: an
// authorization request then goes straight back to the application.
func (a *webApp) signedIn(c *chrome) bool {
	c.t.Helper()
	a.authorize(c)
	c.do("land somewhere", chromedp.WaitVisible(chromedp.CSS(`#app, input[name="password"]`)))
	return strings.HasPrefix(c.location(), a.app)
}

func TestBrowserSignInConsentAndLogout(t *testing.T) {
	a := newWebApp(t, false)
	c := newChrome(t)

	state, verifier := a.authorize(c)
	c.do("see the login page", c.visible(`input[name="username"]`))
	if body := c.text("main"); !strings.Contains(body, "Example App") {
		t.Errorf("the login page does not name the application: %q", body)
	}
	c.screenshot("login")

	c.signIn("alice", "not the password")
	c.do("see the wrong-password message", c.visible(`[role="alert"]`))
	if loc := c.location(); !strings.HasPrefix(loc, a.in.issuer+"/login") {
		t.Fatalf("after a wrong password the browser is at %s", loc)
	}
	c.screenshot("login-wrong-password")

	c.signIn("alice", alicePass)
	c.do("see the consent page", c.visible(`button[name="consent"][value="allow"]`))
	body := c.text("main")
	for _, want := range []string{"Example App", "See your email address", "See your username"} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %q: %q", want, body)
		}
	}
	c.screenshot("consent")
	c.do("allow", c.click(`button[name="consent"][value="allow"]`))
	tok := a.callback(c, state, verifier)
	if _, ok := tok.Extra("id_token").(string); !ok || tok.RefreshToken == "" {
		t.Fatalf("token response lacks an ID token or refresh token: %+v", tok)
	}

	// Without id_token_hint the browser is asked first.
	c.do("open logout without a hint", chromedp.Navigate(a.in.issuer+"/oauth2/logout"), c.visible(`button[name="confirm"]`))
	c.screenshot("logout-confirm")
	c.do("confirm", c.click(`button[name="confirm"]`), chromedp.WaitVisible(chromedp.CSS(`a[href="/login"]`)))
	c.screenshot("logged-out")
	if a.signedIn(c) {
		t.Fatal("still signed in after confirming the sign-out")
	}

	// With a valid id_token_hint the application signs the user out at once.
	state, verifier = a.authorize(c)
	c.signIn("alice", alicePass)
	tok = a.callback(c, state, verifier)
	hint, _ := tok.Extra("id_token").(string)
	q := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {a.app + "/bye"}, "state": {"bye-state"}}
	c.do("log out with a hint", chromedp.Navigate(a.in.issuer+"/oauth2/logout?"+q.Encode()), c.visible("#app"))
	if loc := c.location(); loc != a.app+"/bye?state=bye-state" {
		t.Fatalf("logout with a hint ended at %s", loc)
	}
	if a.signedIn(c) {
		t.Fatal("still signed in after logout with id_token_hint")
	}
}

func TestBrowserErrorPage(t *testing.T) {
	a := newWebApp(t, true)
	c := newChrome(t)
	q := url.Values{"client_id": {"no-such-app"}, "response_type": {"code"}, "redirect_uri": {a.app + "/callback"}, "state": {"abcdefghij"}}
	c.do("open a broken sign-in link", chromedp.Navigate(a.in.issuer+"/oauth2/auth?"+q.Encode()), c.visible("h1"))
	if h := c.text("h1"); !strings.Contains(h, "doesn't work") {
		t.Errorf("error page heading %q", h)
	}
	// The technical detail is there for support, folded away.
	d, err := chromedp.Run(c.ctx, chromedp.TextContent(chromedp.CSS("details")))
	if err != nil || !strings.Contains(d, "invalid_client") {
		t.Errorf("error page details %q lack the OAuth error", d)
	}
	c.screenshot("error")
}

func TestBrowserPasswordChange(t *testing.T) {
	a := newWebApp(t, true)
	c := newChrome(t)
	const newPass = "a brand new passphrase 42"
	c.do("open the password page", chromedp.Navigate(a.in.issuer+authn.PasswordPath))
	c.signIn("alice", alicePass)
	c.do("change the password",
		c.fill(`#current_password`, alicePass),
		c.fill(`#new_password`, newPass),
		c.fill(`#confirm_password`, newPass),
	)
	c.screenshot("password")
	c.do("submit", c.click(`form button[type="submit"]`), c.visible(`[role="status"]`))
	c.screenshot("password-changed")

	// A new browser signs in with the new password, not the old one.
	c = newChrome(t)
	state, verifier := a.authorize(c)
	c.signIn("alice", alicePass)
	c.do("old password refused", c.visible(`[role="alert"]`))
	c.signIn("alice", newPass)
	a.callback(c, state, verifier)
}

// A page on another origin posting to Portcullis's forms is refused, and
// the session and password stay as they were. Same-site (another port on
// 127.0.0.1: the session cookie is sent, so only the CSRF check stands in
// the way) and cross-site (localhost) attackers both fail.
func TestBrowserRefusesCrossSiteForms(t *testing.T) {
	a := newWebApp(t, true)
	c := newChrome(t)
	state, verifier := a.authorize(c)
	c.signIn("alice", alicePass)
	a.callback(c, state, verifier)

	attacker := page(t, a.in.issuer, `<!doctype html><html lang="en"><body>
<form id="logout" method="post" action="{{ISSUER}}/oauth2/logout"><input name="confirm" value="yes"><input name="csrf_token" value="guess"></form>
<form id="password" method="post" action="{{ISSUER}}/account/password"><input name="current_password" value="x"><input name="new_password" value="attacker-chosen-password"><input name="confirm_password" value="attacker-chosen-password"><input name="csrf_token" value="guess"></form>
<script>document.getElementById(location.hash.slice(1)).submit()</script></body></html>`)
	crossSite := strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1)
	for _, origin := range []string{attacker.URL, crossSite} {
		for _, form := range []string{"logout", "password"} {
			c.do("post from "+origin, chromedp.Navigate(origin+"/#"+form),
				chromedp.WaitVisible(chromedp.CSS("h1")))
			if loc := c.location(); !strings.HasPrefix(loc, a.in.issuer) {
				t.Fatalf("the %s form post from %s did not reach the server: at %s", form, origin, loc)
			}
			if origin == attacker.URL {
				if h := c.text("h1"); !strings.Contains(strings.ToLower(h), "expired") {
					t.Errorf("same-site %s post: page %q, want the expired-form page", form, h)
				}
			}
			if !a.signedIn(c) {
				t.Fatalf("a %s form posted from %s ended the session", form, origin)
			}
		}
	}
	// The password is unchanged: alice still signs in with it.
	c = newChrome(t)
	state, verifier = a.authorize(c)
	c.signIn("alice", alicePass)
	a.callback(c, state, verifier)
}

// spaPage is a single-page application: it runs code+PKCE from the
// browser, then calls the token, userinfo and revocation endpoints with
// fetch() across origins, and writes what happened into #out.
const spaPage = `<!doctype html><html lang="en"><title>SPA</title><body><pre id="out">working</pre><script>
const issuer = "{{ISSUER}}";
const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
const report = (v) => { document.getElementById("out").textContent = JSON.stringify(v); document.body.insertAdjacentHTML("beforeend", '<p id="done">done</p>'); };
async function post(url, params, headers) {
  const r = await fetch(url, { method: "POST", body: new URLSearchParams(params), headers: headers || {} });
  return { status: r.status, body: await r.text() };
}
async function main() {
  const q = new URLSearchParams(location.search);
  const disc = await (await fetch(issuer + "/.well-known/openid-configuration")).json();
  await fetch(disc.jwks_uri).then((r) => r.json());
  const redirect = location.origin + "/cb";
  if (!q.has("code") && !q.has("error")) {
    const verifier = random(32), state = random(16);
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    sessionStorage.setItem("pkce", JSON.stringify({ verifier, state }));
    location.assign(disc.authorization_endpoint + "?" + new URLSearchParams({
      response_type: "code", client_id: "spa", redirect_uri: redirect, scope: "openid offline_access",
      state, code_challenge: challenge, code_challenge_method: "S256" }));
    return;
  }
  const { verifier, state } = JSON.parse(sessionStorage.getItem("pkce"));
  if (q.get("state") !== state) throw new Error("state mismatch");
  if (q.has("error")) throw new Error("authorize: " + q.get("error"));
  const code = await post(disc.token_endpoint, { grant_type: "authorization_code", code: q.get("code"), redirect_uri: redirect, client_id: "spa", code_verifier: verifier });
  const tokens = JSON.parse(code.body);
  // Authorization is not a CORS-safelisted header: this request is preflighted.
  const ui = await fetch(disc.userinfo_endpoint, { headers: { Authorization: "Bearer " + tokens.access_token } });
  const userinfo = await ui.json();
  const refresh = await post(disc.token_endpoint, { grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: "spa" });
  const refreshed = JSON.parse(refresh.body);
  const revoke = await post(disc.revocation_endpoint, { token: refreshed.refresh_token, token_type_hint: "refresh_token", client_id: "spa" });
  const reuse = await post(disc.token_endpoint, { grant_type: "refresh_token", refresh_token: refreshed.refresh_token, client_id: "spa" });
  report({ code: code.status, has_id_token: !!tokens.id_token, sub: userinfo.sub, refresh: refresh.status,
    rotated: refreshed.refresh_token !== tokens.refresh_token, revoke: revoke.status, after_revoke: JSON.parse(reuse.body).error });
}
main().catch((e) => report({ failed: String(e) }));
</script></body></html>`

// strangerPage tries the same calls from an origin no client registered:
// the browser must keep the responses from it.
const strangerPage = `<!doctype html><html lang="en"><title>Stranger</title><body><pre id="out">working</pre><script>
const issuer = "{{ISSUER}}";
const report = (v) => { document.getElementById("out").textContent = JSON.stringify(v); document.body.insertAdjacentHTML("beforeend", '<p id="done">done</p>'); };
const blocked = (p) => p.then(() => false, () => true);
(async () => {
  report({
    discovery: await blocked(fetch(issuer + "/.well-known/openid-configuration")),
    token: await blocked(fetch(issuer + "/oauth2/token", { method: "POST", body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: "x", client_id: "spa" }) })),
    userinfo: await blocked(fetch(issuer + "/userinfo", { headers: { Authorization: "Bearer x" } })),
  });
})();
</script></body></html>`

func TestBrowserSinglePageApp(t *testing.T) {
	in := start(t, storagetest.SQLiteURL(t), &testClock{})
	spa := page(t, in.issuer, spaPage).URL
	in.createClient(oauth.ClientSpec{ID: "spa", Name: "Single-page App", Public: true,
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"},
		RedirectURIs: []string{spa + "/cb"}, AllowedCORSOrigins: []string{spa}, SkipConsent: true})
	uid := in.createUser(authn.UserSpec{Username: "alice", Password: alicePass})
	c := newChrome(t)

	c.do("open the app", chromedp.Navigate(spa+"/"), c.visible(`input[name="username"]`))
	c.signIn("alice", alicePass)
	c.do("let the app finish", c.visible("#done"))
	var got struct {
		Failed      string `json:"failed"`
		Code        int    `json:"code"`
		HasIDToken  bool   `json:"has_id_token"`
		Sub         string `json:"sub"`
		Refresh     int    `json:"refresh"`
		Rotated     bool   `json:"rotated"`
		Revoke      int    `json:"revoke"`
		AfterRevoke string `json:"after_revoke"`
	}
	out := c.text("#out")
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Failed != "" {
		t.Fatalf("the app failed: %s (%v)", out, err)
	}
	if got.Code != 200 || !got.HasIDToken || got.Sub != uid || got.Refresh != 200 || !got.Rotated || got.Revoke != 200 || got.AfterRevoke != "invalid_grant" {
		t.Fatalf("app results %s", out)
	}

	stranger := page(t, in.issuer, strangerPage).URL
	c.do("open a stranger's page", chromedp.Navigate(stranger+"/"), c.visible("#done"))
	out = c.text("#out")
	var blocked map[string]bool
	if err := json.Unmarshal([]byte(out), &blocked); err != nil {
		t.Fatalf("stranger page: %s (%v)", out, err)
	}
	if want := map[string]bool{"discovery": false, "token": true, "userinfo": true}; !maps.Equal(blocked, want) {
		t.Fatalf("from an unregistered origin, blocked = %v, want %v", blocked, want)
	}
}

// The defence pages as a person sees them: the built-in captcha the
// lockout demands (its picture and audio must load under the page's
// content security policy), and the locked account's message.
func TestBrowserCaptchaAndLockedAccount(t *testing.T) {
	t.Run("captcha", func(t *testing.T) {
		a := newWebApp(t, false, func(c *config.Config) {
			c.Lockout.Action = policies.LockoutActionCaptcha
			c.Lockout.Device.MaxFailures = 0
		})
		c := newChrome(t)
		a.authorize(c)
		c.do("see the login page", c.visible(`input[name="username"]`))
		for range 5 {
			signInAndWait(t, c, "alice", "not the password")
		}
		signInAndWait(t, c, "alice", alicePass)
		// Polled: the query must not settle on the page being left.
		if err := pollPage(c, `document.querySelector("img.captcha-image") !== null`); err != nil {
			t.Fatalf("no captcha after five failures: %v", err)
		}
		c.do("see the captcha", c.visible(`img.captcha-image`), c.visible(`input[name="captcha_answer"]`))
		loaded, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](`(() => { const i = document.querySelector("img.captcha-image"); return i.complete && i.naturalWidth > 0; })()`))
		if err != nil || !loaded {
			t.Error("the captcha picture did not load (content security policy?)")
		}
		audio, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](`(() => { const a = document.querySelector("audio"); return a ? (a.currentSrc || a.querySelector("source")?.src || a.src || "") : ""; })()`))
		if err != nil || !strings.HasPrefix(audio, "data:audio/wav") {
			t.Errorf("no audio alternative: %.40q", audio)
		}
		if body := c.text("main"); !strings.Contains(body, "several failed sign-ins") {
			t.Errorf("the page does not say why it asks: %q", body)
		}
		c.screenshot("login-captcha")
	})
	t.Run("locked", func(t *testing.T) {
		a := newWebApp(t, false, func(c *config.Config) { c.Lockout.Device.MaxFailures = 0 })
		c := newChrome(t)
		a.authorize(c)
		c.do("see the login page", c.visible(`input[name="username"]`))
		for range 5 {
			signInAndWait(t, c, "alice", "not the password")
		}
		signInAndWait(t, c, "alice", alicePass)
		if body := c.text(`[role="alert"]`); !strings.Contains(body, "This account is locked") || !strings.Contains(body, "UTC") {
			t.Errorf("the locked account's message: %q", body)
		}
		c.screenshot("login-locked")
	})
}

// signInAndWait submits the login form and waits for the page that
// answers it: each wrong password's page looks like the one before, so
// only a mark on the old document tells the new one apart.
func signInAndWait(t *testing.T, c *chrome, username, password string) {
	t.Helper()
	if _, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](`window.__submitted = true`)); err != nil {
		t.Fatal(err)
	}
	c.signIn(username, password)
	if err := pollPage(c, `window.__submitted === undefined && document.readyState === "complete"`); err != nil {
		t.Fatalf("no page after signing in: %v", err)
	}
}

// pollPage waits until expression is true on the page the browser ends up
// on, starting again when a navigation replaces the page it was polling.
func pollPage(c *chrome, expression string) error {
	var err error
	for range 20 {
		if _, err = chromedp.Run(c.ctx, chromedp.Poll[bool](expression)); err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "navigated") && !strings.Contains(err.Error(), "context") {
			return err
		}
	}
	return err
}
