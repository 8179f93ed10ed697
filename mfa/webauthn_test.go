package mfa_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/portcullis/portcullis/internal/browsertest"
	"github.com/portcullis/portcullis/mfa"
)

func testConfig(origin string) mfa.WebAuthnConfig {
	return mfa.WebAuthnConfig{RPID: "localhost", RPDisplayName: "Portcullis test", Origins: []string{origin}}
}

func TestNewWebAuthnChecksConfig(t *testing.T) {
	good := testConfig("http://localhost:8080")
	if _, err := mfa.NewWebAuthn(good); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*mfa.WebAuthnConfig)
		want []string
	}{
		{"nothing set", func(c *mfa.WebAuthnConfig) { *c = mfa.WebAuthnConfig{} }, []string{"RPID", "RPDisplayName", "Origins"}},
		{"ip address", func(c *mfa.WebAuthnConfig) { c.RPID = "127.0.0.1"; c.Origins = []string{"http://127.0.0.1:8080"} }, []string{"RPID"}},
		{"origin with a path", func(c *mfa.WebAuthnConfig) { c.Origins = []string{"http://localhost:8080/login"} }, []string{"Origins[0]"}},
		{"origin on another host", func(c *mfa.WebAuthnConfig) { c.Origins = []string{"https://example.com"} }, []string{"Origins[0]"}},
		{"origin that only ends like the rp id", func(c *mfa.WebAuthnConfig) { c.Origins = []string{"https://evillocalhost"} }, []string{"Origins[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := mfa.NewWebAuthn(cfg)
			if err == nil {
				t.Fatal("bad config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
	sub := mfa.WebAuthnConfig{RPID: "example.com", RPDisplayName: "x", Origins: []string{"https://login.example.com", "https://example.com:8443"}}
	if _, err := mfa.NewWebAuthn(sub); err != nil {
		t.Errorf("origins under the rp id refused: %v", err)
	}
}

// TestWebAuthnErrorKinds checks, without a browser, which failures count as
// a failed ceremony and which are the server's own.
func TestWebAuthnErrorKinds(t *testing.T) {
	w, err := mfa.NewWebAuthn(testConfig("http://localhost:8080"))
	if err != nil {
		t.Fatal(err)
	}
	alice := mfa.Account{ID: []byte("acct-alice"), Name: "alice", DisplayName: "Alice"}
	bob := mfa.Account{ID: []byte("acct-bob"), Name: "bob", DisplayName: "Bob"}

	if _, _, err := w.BeginLogin(alice); err == nil || errors.Is(err, mfa.ErrWebAuthnFailed) {
		t.Errorf("BeginLogin without credentials: got %v, want a plain error", err)
	}
	if _, _, err := w.BeginRegistration(mfa.Account{Name: "x"}, true); err == nil {
		t.Error("BeginRegistration without an account id succeeded")
	}
	if _, _, err := w.BeginRegistration(mfa.Account{ID: bytes.Repeat([]byte{1}, 65), Name: "x"}, true); err == nil {
		t.Error("BeginRegistration with a 65-byte account id succeeded")
	}

	opts, regSession, err := w.BeginRegistration(alice, false)
	if err != nil {
		t.Fatal(err)
	}
	var creation struct {
		PublicKey struct {
			Challenge string              `json:"challenge"`
			RP        struct{ ID string } `json:"rp"`
			User      struct{ ID string } `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &creation); err != nil {
		t.Fatalf("options are not JSON: %v", err)
	}
	if got, _ := base64.RawURLEncoding.DecodeString(creation.PublicKey.User.ID); !bytes.Equal(got, alice.ID) {
		t.Errorf("user.id = %q, want the base64url of the account id", creation.PublicKey.User.ID)
	}
	if creation.PublicKey.RP.ID != "localhost" || creation.PublicKey.Challenge == "" {
		t.Errorf("options = %s", opts)
	}

	infra := []struct {
		name string
		err  error
	}{
		{"corrupt session", func() error { _, err := w.FinishRegistration(alice, []byte("{not json"), []byte("{}")); return err }()},
		{"session of another account", func() error { _, err := w.FinishRegistration(bob, regSession, []byte("{}")); return err }()},
		{"registration session given to FinishLogin", func() error { _, err := w.FinishLogin(alice, regSession, []byte("{}")); return err }()},
		{"registration session given to FinishDiscoverableLogin", func() error {
			_, _, err := w.FinishDiscoverableLogin(regSession, []byte("{}"), func(_, _ []byte) (mfa.Account, error) { return alice, nil })
			return err
		}()},
	}
	for _, tc := range infra {
		if tc.err == nil || errors.Is(tc.err, mfa.ErrWebAuthnFailed) {
			t.Errorf("%s: got %v, want an error that is not ErrWebAuthnFailed", tc.name, tc.err)
		}
	}
	for _, resp := range []string{"", "{}", "null", `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`, "[1,2]"} {
		if _, err := w.FinishRegistration(alice, regSession, []byte(resp)); !errors.Is(err, mfa.ErrWebAuthnFailed) {
			t.Errorf("FinishRegistration(%q) = %v, want ErrWebAuthnFailed", resp, err)
		}
	}
	_, passkeySession, err := w.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.FinishDiscoverableLogin(passkeySession, []byte("{}"), nil); !errors.Is(err, mfa.ErrWebAuthnFailed) {
		t.Errorf("FinishDiscoverableLogin({}) = %v, want ErrWebAuthnFailed", err)
	}
}

func TestCredentialEncoding(t *testing.T) {
	c := &webauthn.Credential{ID: []byte{1, 2, 3}, PublicKey: []byte{4, 5, 6}, AttestationFormat: "none"}
	c.Authenticator.SignCount = 7
	b, err := mfa.MarshalCredential(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := mfa.UnmarshalCredential(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.ID, c.ID) || !bytes.Equal(got.PublicKey, c.PublicKey) || got.Authenticator.SignCount != 7 || got.AttestationFormat != "none" {
		t.Errorf("round trip: got %+v, want %+v", got, c)
	}
	for _, bad := range []string{"", "{", "{}", `{"id":"AQID"}`} {
		if _, err := mfa.UnmarshalCredential([]byte(bad)); err == nil {
			t.Errorf("UnmarshalCredential(%q) succeeded", bad)
		}
	}
	if _, err := mfa.MarshalCredential(&webauthn.Credential{}); err == nil {
		t.Error("MarshalCredential of an empty credential succeeded")
	}
}

// rpServer is a relying party in miniature: the pages and handlers an
// integration would have, with accounts and pending ceremonies in maps.
// Begin and Finish run on two separate WebAuthn values, as two server
// instances would, so nothing can pass between them but the session bytes.
type rpServer struct {
	ceremonyPage *template.Template
	resultPage   *template.Template

	url    string // http://localhost:PORT
	begin  *mfa.WebAuthn
	finish *mfa.WebAuthn

	mu       sync.Mutex
	accounts map[string]*mfa.Account
	pending  map[string]pendingCeremony
	nextID   int
	outcomes []outcome
	// editOptions, when set, rewrites the options a page gets: a client
	// that does not play by the rules.
	editOptions func([]byte) []byte
	// lookups records the user handles FinishDiscoverableLogin's lookup
	// was given.
	lookups [][]byte
}

type pendingCeremony struct {
	account string
	options []byte
	session []byte
}

// outcome is what one Finish call did, for the test to look into.
type outcome struct {
	path     string
	account  string
	options  []byte // as the page got them
	cred     *webauthn.Credential
	err      error
	session  []byte
	response []byte
	via      string // the name=value of the button the form was sent as
}

const ceremonyHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body>
<h1>{{.Title}}</h1>
<form method="post" action="{{.Action}}" data-webauthn="{{.Mode}}" data-webauthn-options="{{.Options}}">
<p data-webauthn-error role="alert" hidden></p>
<input type="hidden" name="ceremony" value="{{.Ceremony}}">
<input type="hidden" name="webauthn_response">
{{if .StartButton}}<button type="submit" id="go" name="via" value="start-button" data-webauthn-start>Continue</button>{{else}}<button type="submit" id="go">Continue</button>{{end}}
</form>
<script src="/static/webauthn.js"></script>
</body></html>
`

const resultHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Result</title></head>
<body><p id="result">{{.}}</p></body></html>
`

func newRPServer(t *testing.T) *rpServer {
	t.Helper()
	s := &rpServer{
		ceremonyPage: template.Must(template.New("page").Parse(ceremonyHTML)),
		resultPage:   template.Must(template.New("result").Parse(resultHTML)),
		accounts:     map[string]*mfa.Account{},
		pending:      map[string]pendingCeremony{},
	}
	for _, name := range []string{"alice", "bob"} {
		s.accounts[name] = &mfa.Account{ID: []byte("account-id-of-" + name), Name: name, DisplayName: strings.ToUpper(name[:1]) + name[1:]}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.Dir("../templates/static"))))
	mux.HandleFunc("GET /register", s.beginPage)
	mux.HandleFunc("GET /login", s.beginPage)
	mux.HandleFunc("GET /passkey", s.beginPage)
	mux.HandleFunc("POST /register", s.finishPage)
	mux.HandleFunc("POST /login", s.finishPage)
	mux.HandleFunc("POST /passkey", s.finishPage)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server's policy: a page that needed inline script or eval
		// would fail here as it would in production.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	// WebAuthn needs a host name; localhost is a secure context over http.
	s.url = strings.Replace(ts.URL, "127.0.0.1", "localhost", 1)
	var err error
	if s.begin, err = mfa.NewWebAuthn(testConfig(s.url)); err != nil {
		t.Fatal(err)
	}
	if s.finish, err = mfa.NewWebAuthn(testConfig(s.url)); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *rpServer) account(name string) mfa.Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := *s.accounts[name]
	a.Credentials = append([]webauthn.Credential(nil), a.Credentials...)
	return a
}

func (s *rpServer) beginPage(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("account")
	var (
		opts, session []byte
		err           error
		mode          = "get"
		title         string
	)
	switch r.URL.Path {
	case "/register":
		mode, title = "create", "Add a security key"
		opts, session, err = s.begin.BeginRegistration(s.account(name), r.URL.Query().Get("passkey") == "1")
	case "/login":
		title = "Confirm with your security key"
		opts, session, err = s.begin.BeginLogin(s.account(name))
	case "/passkey":
		title = "Sign in with a passkey"
		opts, session, err = s.begin.BeginDiscoverableLogin()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.nextID++
	id := fmt.Sprint(s.nextID)
	if s.editOptions != nil {
		opts = s.editOptions(opts)
	}
	s.pending[id] = pendingCeremony{account: name, options: opts, session: session}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = s.ceremonyPage.Execute(w, map[string]any{
		"Title": title, "Action": r.URL.Path, "Mode": mode, "Options": string(opts), "Ceremony": id,
		// A page may mark the button that starts the ceremony rather
		// than rely on the form being sent.
		"StartButton": r.URL.Query().Get("start") == "button",
	})
}

func (s *rpServer) finishPage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.pending[r.PostFormValue("ceremony")]
	// Single use, as the login flow makes it.
	delete(s.pending, r.PostFormValue("ceremony"))
	s.mu.Unlock()
	if !ok {
		http.Error(w, "no such ceremony", http.StatusBadRequest)
		return
	}
	response := []byte(r.PostFormValue("webauthn_response"))
	o := outcome{path: r.URL.Path, account: p.account, options: p.options, session: p.session, response: response, via: r.PostFormValue("via")}
	switch r.URL.Path {
	case "/register":
		o.cred, o.err = s.finish.FinishRegistration(s.account(p.account), p.session, response)
	case "/login":
		o.cred, o.err = s.finish.FinishLogin(s.account(p.account), p.session, response)
	case "/passkey":
		var a mfa.Account
		a, o.cred, o.err = s.finish.FinishDiscoverableLogin(p.session, response, s.lookup)
		o.account = a.Name
	}
	s.mu.Lock()
	if o.err == nil {
		s.store(o)
	}
	s.outcomes = append(s.outcomes, o)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	text := "ok: " + o.account
	if o.err != nil {
		text = "failed: " + o.err.Error()
	}
	_ = s.resultPage.Execute(w, text)
}

// store keeps a registered or updated credential; s.mu is held.
func (s *rpServer) store(o outcome) {
	a := s.accounts[o.account]
	for i := range a.Credentials {
		if bytes.Equal(a.Credentials[i].ID, o.cred.ID) {
			a.Credentials[i] = *o.cred
			return
		}
	}
	a.Credentials = append(a.Credentials, *o.cred)
}

// lookup finds a passkey's owner by credential id, as a store would.
func (s *rpServer) lookup(rawID, userHandle []byte) (mfa.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups = append(s.lookups, userHandle)
	for _, a := range s.accounts {
		for _, c := range a.Credentials {
			if bytes.Equal(c.ID, rawID) {
				cp := *a
				cp.Credentials = append([]webauthn.Credential(nil), a.Credentials...)
				return cp, nil
			}
		}
	}
	return mfa.Account{}, nil
}

func (s *rpServer) last(t *testing.T) outcome {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.outcomes) == 0 {
		t.Fatal("no ceremony finished")
	}
	return s.outcomes[len(s.outcomes)-1]
}

func (s *rpServer) finished() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outcomes)
}

func (s *rpServer) setEditOptions(f func([]byte) []byte) {
	s.mu.Lock()
	s.editOptions = f
	s.mu.Unlock()
}

// ceremony opens path in the browser, runs the prepare scripts in the
// page, starts the ceremony with the page's button, and returns what the
// server's Finish made of it.
func (s *rpServer) ceremony(t *testing.T, b *browsertest.Browser, path string, prepare ...string) outcome {
	t.Helper()
	before := s.finished()
	b.Navigate(s.url + path)
	for _, js := range prepare {
		b.Eval(js)
	}
	b.Click("#go")
	b.WaitVisible("#result")
	if s.finished() != before+1 {
		t.Fatalf("%s: the page says %q but no ceremony finished", path, b.Text("#result"))
	}
	return s.last(t)
}

// refused opens path, starts the ceremony, and returns the message the
// script showed when the browser refused it. The form must stay usable.
func (s *rpServer) refused(t *testing.T, b *browsertest.Browser, path string) string {
	t.Helper()
	before := s.finished()
	b.Navigate(s.url + path)
	b.Click("#go")
	b.WaitVisible("[data-webauthn-error]")
	msg := b.Text("[data-webauthn-error]")
	if role, _ := b.Attribute("[data-webauthn-error]", "role"); role != "alert" {
		t.Errorf("%s: error element role = %q, want alert", path, role)
	}
	if _, disabled := b.Attribute("#go", "disabled"); disabled {
		t.Errorf("%s: button left disabled after the error", path)
	}
	if v := b.Value(`input[name="webauthn_response"]`); v != "" {
		t.Errorf("%s: webauthn_response left filled after the error: %q", path, v)
	}
	if s.finished() != before {
		t.Errorf("%s: the form was sent despite the error", path)
	}
	return msg
}

func mustOK(t *testing.T, o outcome, account string) *webauthn.Credential {
	t.Helper()
	if o.err != nil {
		t.Fatalf("%s for %s failed: %v", o.path, o.account, o.err)
	}
	if o.account != account {
		t.Fatalf("%s: account = %q, want %q", o.path, o.account, account)
	}
	if o.cred == nil {
		t.Fatalf("%s: no credential", o.path)
	}
	return o.cred
}

func mustFail(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, mfa.ErrWebAuthnFailed) {
		t.Fatalf("%s: got %v, want ErrWebAuthnFailed", what, err)
	}
	t.Logf("%s: refused: %v", what, err)
}

// TestWebAuthnCeremoniesInChromium runs every ceremony for real: headless
// Chromium with the DevTools virtual authenticator, the pages with
// webauthn.js under a strict CSP, and go-webauthn verifying on the server.
// The subtests build on each other, in order.
func TestWebAuthnCeremoniesInChromium(t *testing.T) {
	b := browsertest.New(t)
	s := newRPServer(t)

	// platform: a built-in authenticator holding passkeys, with user
	// verification. key: a plain security key, neither.
	platform := b.AddVirtualAuthenticator(true, true)
	var key string // a security key added later
	var aliceFirst, aliceSecond, bobKey []byte
	var signCount uint32

	// Each step needs the ones before it.
	step := func(name string, f func(t *testing.T, b *browsertest.Browser)) {
		if !t.Run(name, func(t *testing.T) { f(t, b.For(t)) }) {
			t.FailNow()
		}
	}

	step("register a passkey", func(t *testing.T, b *browsertest.Browser) {
		c := mustOK(t, s.ceremony(t, b, "/register?account=alice&passkey=1"), "alice")
		b.Screenshot("webauthn-registered")
		aliceFirst = c.ID
		if c.Extensions.RK == nil || !*c.Extensions.RK {
			t.Errorf("credProps rk = %v, want true", c.Extensions.RK)
		}
		if !c.Flags.UserVerified || !c.Flags.UserPresent {
			t.Errorf("flags = %+v, want user present and verified", c.Flags)
		}
		held := b.Credentials(platform)
		if len(held) != 1 {
			t.Fatalf("authenticator holds %d credentials, want 1", len(held))
		}
		v := held[0]
		if !bytes.Equal(v.ID, c.ID) || !v.Resident || v.RPID != "localhost" || !bytes.Equal(v.UserHandle, []byte("account-id-of-alice")) || v.UserName != "alice" {
			t.Errorf("authenticator holds %+v; server registered id %x", v, c.ID)
		}
		signCount = c.Authenticator.SignCount
	})

	step("the same authenticator is not registered twice", func(t *testing.T, b *browsertest.Browser) {
		msg := s.refused(t, b, "/register?account=alice&passkey=1")
		if !strings.Contains(msg, "already registered") {
			t.Errorf("message = %q, want one saying the key is already registered", msg)
		}
		if n := len(b.Credentials(platform)); n != 1 {
			t.Errorf("authenticator holds %d credentials, want still 1", n)
		}
	})

	step("second factor with allowCredentials", func(t *testing.T, b *browsertest.Browser) {
		o := s.ceremony(t, b, "/login?account=alice")
		c := mustOK(t, o, "alice")
		if !bytes.Equal(c.ID, aliceFirst) {
			t.Errorf("signed with %x, want %x", c.ID, aliceFirst)
		}
		if c.Authenticator.SignCount <= signCount {
			t.Errorf("sign count %d did not move past %d", c.Authenticator.SignCount, signCount)
		}
		signCount = c.Authenticator.SignCount
		if held := b.Credentials(platform)[0].SignCount; held != signCount {
			t.Errorf("authenticator counter %d, server stored %d", held, signCount)
		}
		if ids := descriptorIDs(t, o.options, "allowCredentials"); len(ids) != 1 || !bytes.Equal(ids[0], aliceFirst) {
			t.Errorf("allowCredentials = %x, want alice's passkey", ids)
		}
	})

	step("passwordless with the passkey", func(t *testing.T, b *browsertest.Browser) {
		o := s.ceremony(t, b, "/passkey?start=button")
		c := mustOK(t, o, "alice")
		if o.via != "start-button" {
			t.Errorf("form sent as button %q, want the data-webauthn-start button's value", o.via)
		}
		if !bytes.Equal(c.ID, aliceFirst) {
			t.Errorf("signed with %x, want %x", c.ID, aliceFirst)
		}
		if c.Authenticator.SignCount <= signCount {
			t.Errorf("sign count %d did not move past %d", c.Authenticator.SignCount, signCount)
		}
		signCount = c.Authenticator.SignCount
		s.mu.Lock()
		handle := s.lookups[len(s.lookups)-1]
		s.mu.Unlock()
		if !bytes.Equal(handle, []byte("account-id-of-alice")) {
			t.Errorf("lookup got user handle %q, want alice's account id", handle)
		}
	})

	step("a second authenticator for the same account", func(t *testing.T, b *browsertest.Browser) {
		key = b.AddSecurityKey(false, false)
		// Only the new key answers, as if the person touched it.
		b.SetUserPresence(platform, false)
		// The script's own encoding, for browsers without toJSON().
		o := s.ceremony(t, b, "/register?account=alice", noToJSON)
		c := mustOK(t, o, "alice")
		if ids := descriptorIDs(t, o.options, "excludeCredentials"); len(ids) != 1 || !bytes.Equal(ids[0], aliceFirst) {
			t.Errorf("excludeCredentials = %x, want alice's passkey", ids)
		}
		if c.Extensions.RK != nil && *c.Extensions.RK {
			t.Error("a second-factor registration made a discoverable credential")
		}
		aliceSecond = c.ID
		if bytes.Equal(aliceSecond, aliceFirst) {
			t.Fatal("second registration returned the first credential")
		}
		if c.Flags.UserVerified {
			t.Error("a key without user verification reported it")
		}
		if n := len(s.account("alice").Credentials); n != 2 {
			t.Fatalf("alice has %d credentials, want 2", n)
		}

		c = mustOK(t, s.ceremony(t, b, "/login?account=alice", noToJSON), "alice")
		if !bytes.Equal(c.ID, aliceSecond) {
			t.Errorf("with only the key present, signed with %x, want %x", c.ID, aliceSecond)
		}
		b.SetUserPresence(key, false)
		b.SetUserPresence(platform, true)
		c = mustOK(t, s.ceremony(t, b, "/login?account=alice"), "alice")
		if !bytes.Equal(c.ID, aliceFirst) {
			t.Errorf("with only the platform present, signed with %x, want %x", c.ID, aliceFirst)
		}
		if c.Authenticator.SignCount <= signCount {
			t.Errorf("sign count %d did not move past %d", c.Authenticator.SignCount, signCount)
		}
		signCount = c.Authenticator.SignCount
	})

	step("another account's credential is refused", func(t *testing.T, b *browsertest.Browser) {
		b.SetUserPresence(platform, false)
		b.SetUserPresence(key, true)
		bobKey = mustOK(t, s.ceremony(t, b, "/register?account=bob"), "bob").ID
		b.SetUserPresence(key, false)
		b.SetUserPresence(platform, true)

		// A client that swaps bob's allowCredentials for alice's passkey:
		// the authenticator signs bob's challenge with alice's key.
		s.setEditOptions(func(opts []byte) []byte {
			var m map[string]any
			if err := json.Unmarshal(opts, &m); err != nil {
				t.Error(err)
				return opts
			}
			m["publicKey"].(map[string]any)["allowCredentials"] = []any{map[string]any{
				"type": "public-key", "id": base64.RawURLEncoding.EncodeToString(aliceFirst),
			}}
			out, _ := json.Marshal(m)
			return out
		})
		o := s.ceremony(t, b, "/login?account=bob")
		s.setEditOptions(nil)
		mustFail(t, "bob's login signed with alice's passkey", o.err)
		if !strings.HasPrefix(b.Text("#result"), "failed") {
			t.Errorf("result page says %q", b.Text("#result"))
		}
	})

	step("a tampered response is refused", func(t *testing.T, b *browsertest.Browser) {
		b.OverrideResponses(platform, browsertest.ResponseOverrides{BogusSignature: true})
		o := s.ceremony(t, b, "/login?account=alice")
		b.OverrideResponses(platform, browsertest.ResponseOverrides{})
		mustFail(t, "login with a zeroed signature", o.err)

		b.OverrideResponses(platform, browsertest.ResponseOverrides{BadUV: true})
		o = s.ceremony(t, b, "/passkey")
		b.OverrideResponses(platform, browsertest.ResponseOverrides{})
		mustFail(t, "passkey login without user verification", o.err)

		// A good login, kept to be tampered with and replayed below.
		good := s.ceremony(t, b, "/login?account=alice")
		mustOK(t, good, "alice")
		alice := s.account("alice")
		w := s.finish

		_, err := w.FinishLogin(alice, good.session, good.response)
		mustFail(t, "the same response again (sign count did not move)", err)

		_, fresh, err := w.BeginLogin(alice)
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.FinishLogin(alice, fresh, good.response)
		mustFail(t, "an old response for a new challenge", err)

		_, err = w.FinishLogin(s.account("bob"), mustSessionFor(t, w, s.account("bob")), good.response)
		mustFail(t, "alice's response for bob", err)

		var resp map[string]any
		if err := json.Unmarshal(good.response, &resp); err != nil {
			t.Fatal(err)
		}
		r := resp["response"].(map[string]any)
		cd, _ := base64.RawURLEncoding.DecodeString(r["clientDataJSON"].(string))
		r["clientDataJSON"] = base64.RawURLEncoding.EncodeToString(bytes.Replace(cd, []byte("localhost"), []byte("evil.test"), 1))
		tampered, _ := json.Marshal(resp)
		// Roll the stored counter back so only the tampering is at stake.
		for i := range alice.Credentials {
			alice.Credentials[i].Authenticator.SignCount = 0
		}
		_, err = w.FinishLogin(alice, good.session, tampered)
		mustFail(t, "client data naming another origin", err)
		if _, err := w.FinishLogin(alice, good.session, good.response); err != nil {
			t.Fatalf("the untampered response with the counter rolled back failed: %v", err)
		}

		other, err := mfa.NewWebAuthn(mfa.WebAuthnConfig{RPID: "example.com", RPDisplayName: "Other", Origins: []string{"https://example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = other.FinishLogin(alice, good.session, good.response)
		mustFail(t, "a response verified by a server with another origin", err)
	})

	step("passkey lookup outcomes", func(t *testing.T, b *browsertest.Browser) {
		good := s.ceremony(t, b, "/passkey")
		mustOK(t, good, "alice")
		_, _, err := s.finish.FinishDiscoverableLogin(good.session, good.response, s.lookup)
		mustFail(t, "the same passkey response again", err)

		unknown := func(_, _ []byte) (mfa.Account, error) { return mfa.Account{}, nil }
		_, _, err = s.finish.FinishDiscoverableLogin(good.session, good.response, unknown)
		mustFail(t, "a passkey no account has", err)

		down := errors.New("database is down")
		_, _, err = s.finish.FinishDiscoverableLogin(good.session, good.response, func(_, _ []byte) (mfa.Account, error) { return mfa.Account{}, down })
		if !errors.Is(err, down) || errors.Is(err, mfa.ErrWebAuthnFailed) {
			t.Errorf("lookup failure: got %v, want the lookup's error and not ErrWebAuthnFailed", err)
		}

		bob := func(_, _ []byte) (mfa.Account, error) { return s.account("bob"), nil }
		_, _, err = s.finish.FinishDiscoverableLogin(good.session, good.response, bob)
		mustFail(t, "a lookup naming an account that does not own the passkey", err)
	})

	step("no matching key", func(t *testing.T, b *browsertest.Browser) {
		b.RemoveVirtualAuthenticator(key)
		// Nobody picks a key: the browser gives up when the page's timeout
		// runs out, which Chromium takes as given while virtual
		// authenticators are on.
		s.setEditOptions(func(opts []byte) []byte {
			var m map[string]any
			if err := json.Unmarshal(opts, &m); err != nil {
				t.Error(err)
				return opts
			}
			m["publicKey"].(map[string]any)["timeout"] = 1000
			out, _ := json.Marshal(m)
			return out
		})
		msg := s.refused(t, b, "/login?account=bob")
		s.setEditOptions(nil)
		if !strings.Contains(msg, "Try again") {
			t.Errorf("message = %q", msg)
		}
		b.Screenshot("webauthn-no-matching-key")
		if len(bobKey) == 0 {
			t.Error("bob has no key")
		}
	})

	for _, e := range b.JSErrors() {
		if !strings.HasPrefix(e, "console.error: webauthn.js:") {
			t.Errorf("page error: %s", e)
		}
	}
}

// noToJSON takes PublicKeyCredential.toJSON() away, so that webauthn.js
// falls back on its own encoding, as in browsers that predate it.
const noToJSON = "delete PublicKeyCredential.prototype.toJSON"

// descriptorIDs returns the credential ids listed in options.publicKey[member].
func descriptorIDs(t *testing.T, options []byte, member string) [][]byte {
	t.Helper()
	var o struct {
		PublicKey map[string]json.RawMessage `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("options: %v", err)
	}
	var list []struct {
		ID string `json:"id"`
	}
	if raw, ok := o.PublicKey[member]; ok {
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatalf("options %s: %v", member, err)
		}
	}
	ids := make([][]byte, 0, len(list))
	for _, d := range list {
		id, err := base64.RawURLEncoding.DecodeString(d.ID)
		if err != nil {
			t.Fatalf("options %s id %q: %v", member, d.ID, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// mustSessionFor begins a login for a and returns its session.
func mustSessionFor(t *testing.T, w *mfa.WebAuthn, a mfa.Account) []byte {
	t.Helper()
	_, session, err := w.BeginLogin(a)
	if err != nil {
		t.Fatal(err)
	}
	return session
}
