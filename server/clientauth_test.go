package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// jwtBearer is RFC 7523's client_assertion_type.
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionKey is one private key a private_key_jwt client signs with.
type assertionKey struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv any
}

func newAssertionKey(t testing.TB, alg jose.SignatureAlgorithm, kid string) assertionKey {
	t.Helper()
	var priv any
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no key generator for %s", alg)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	return assertionKey{alg: alg, kid: kid, priv: priv}
}

// jwks is the public half, as the client registers it.
func (k assertionKey) jwks(t testing.TB) json.RawMessage {
	t.Helper()
	priv := jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
	pub := priv.Public()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k assertionKey) sign(t testing.TB, claims josejwt.Claims) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertionClaims are the claims of a valid assertion by clientID for the
// token endpoint of issuer, issued at the server's now.
func assertionClaims(clientID, issuer string, now time.Time) josejwt.Claims {
	return josejwt.Claims{
		Issuer:   clientID,
		Subject:  clientID,
		Audience: josejwt.Audience{issuer + "/oauth2/token"},
		IssuedAt: josejwt.NewNumericDate(now),
		Expiry:   josejwt.NewNumericDate(now.Add(2 * time.Minute)),
		ID:       oauth2.GenerateVerifier(),
	}
}

func assertionForm(assertion string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {jwtBearer},
		"client_assertion":      {assertion},
	}
}

// oauthReply is a decoded token or introspection endpoint response.
type oauthReply struct {
	status          int
	contentType     string
	wwwAuthenticate string
	body            map[string]any
}

// postOAuth sends form to endpoint, with HTTP Basic when basic is a
// client id and secret pair.
func postOAuth(t testing.TB, endpoint string, form url.Values, basic ...string) oauthReply {
	t.Helper()
	r, err := sendOAuth(endpoint, form, basic...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sendOAuth is postOAuth for goroutines, which must not call t.Fatal.
func sendOAuth(endpoint string, form url.Values, basic ...string) (oauthReply, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return oauthReply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		// RFC 6749 2.3.1: the Basic credentials are form-encoded first.
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return oauthReply{}, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	out := oauthReply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), wwwAuthenticate: resp.Header.Get("WWW-Authenticate")}
	if err := json.NewDecoder(resp.Body).Decode(&out.body); err != nil {
		return out, fmt.Errorf("POST %s: status %d, body is not JSON: %w", endpoint, resp.StatusCode, err)
	}
	return out, nil
}

// check compares a reply with the expected outcome: success (want "") or
// an RFC 6749 5.2 error response with code want.
func (r oauthReply) check(t testing.TB, want string) {
	t.Helper()
	if want == "" {
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %v", r.status, r.body)
		}
		return
	}
	wantStatus := http.StatusBadRequest
	if want == "invalid_client" {
		// RFC 6749 5.2: a failed client authentication is a 401.
		wantStatus = http.StatusUnauthorized
	}
	if r.status != wantStatus || r.body["error"] != want {
		t.Fatalf("got %d %v, want %d error=%s", r.status, r.body, wantStatus, want)
	}
	if desc, _ := r.body["error_description"].(string); desc == "" {
		t.Errorf("error response without error_description: %v", r.body)
	}
	if !strings.HasPrefix(r.contentType, "application/json") {
		t.Errorf("error Content-Type %q, want application/json", r.contentType)
	}
	if _, leaked := r.body["access_token"]; leaked {
		t.Errorf("error response carries an access token: %v", r.body)
	}
}

// retrieveErrorReply turns an x/oauth2 error into the reply the server
// sent, so both libraries' results are checked the same way.
func retrieveErrorReply(t testing.TB, err error) oauthReply {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an OAuth error response", err)
	}
	out := oauthReply{status: re.Response.StatusCode, contentType: re.Response.Header.Get("Content-Type"), wwwAuthenticate: re.Response.Header.Get("WWW-Authenticate")}
	if err := json.Unmarshal(re.Body, &out.body); err != nil {
		t.Fatalf("error body is not JSON: %q", re.Body)
	}
	return out
}

func TestClientAuthSecretMethods(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{})
		secrets := map[string]string{}
		for id, method := range map[string]string{
			"either": "",
			"basic":  "client_secret_basic",
			"post":   "client_secret_post",
		} {
			secrets[id] = in.createClient(oauth.ClientSpec{ID: id, GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: method})
		}
		tests := []struct {
			name   string
			client string
			style  oauth2.AuthStyle
			want   string
		}{
			{"no explicit method, basic", "either", oauth2.AuthStyleInHeader, ""},
			{"no explicit method, post", "either", oauth2.AuthStyleInParams, ""},
			{"client_secret_basic, basic", "basic", oauth2.AuthStyleInHeader, ""},
			{"client_secret_basic refuses post", "basic", oauth2.AuthStyleInParams, "invalid_client"},
			{"client_secret_post, post", "post", oauth2.AuthStyleInParams, ""},
			{"client_secret_post refuses basic", "post", oauth2.AuthStyleInHeader, "invalid_client"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cc := clientcredentials.Config{ClientID: tt.client, ClientSecret: secrets[tt.client], TokenURL: in.issuer + "/oauth2/token", AuthStyle: tt.style}
				tok, err := cc.Token(context.Background())
				if tt.want == "" {
					if err != nil {
						t.Fatalf("token: %v", err)
					}
					if tok.AccessToken == "" {
						t.Fatal("no access token")
					}
					return
				}
				if err == nil {
					t.Fatalf("got a token, want %s", tt.want)
				}
				got := retrieveErrorReply(t, err)
				got.check(t, tt.want)
				// RFC 6749 5.2: a client that tried HTTP Basic MUST be told
				// the scheme with its 401.
				if tt.style == oauth2.AuthStyleInHeader && !strings.HasPrefix(got.wwwAuthenticate, "Basic") {
					t.Errorf("401 to a Basic attempt has WWW-Authenticate %q, want Basic (RFC 6749 5.2)", got.wwwAuthenticate)
				}
			})
		}
		// RFC 6749 5.2 lists "no client authentication included" under
		// invalid_client.
		t.Run("no credentials at all", func(t *testing.T) {
			postOAuth(t, in.issuer+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}}).check(t, "invalid_client")
		})
	})
}

func TestPrivateKeyJWT(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		clock := &testClock{}
		in := start(t, dbURL, clock)
		tokenURL := in.issuer + "/oauth2/token"
		for _, kt := range []struct {
			alg jose.SignatureAlgorithm
			// pin registers token_endpoint_auth_signing_alg, so both the
			// pinned and the key-derived algorithm check are exercised.
			pin bool
		}{
			{jose.ES256, true},
			{jose.RS256, false},
		} {
			t.Run(string(kt.alg), func(t *testing.T) {
				id := "svc-" + strings.ToLower(string(kt.alg))
				key := newAssertionKey(t, kt.alg, id+"-1")
				spec := oauth.ClientSpec{ID: id, GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks(t)}
				if kt.pin {
					spec.TokenEndpointAuthSigningAlg = string(kt.alg)
				}
				if secret := in.createClient(spec); secret != "" {
					t.Fatalf("a private_key_jwt client was given a secret")
				}
				stranger := newAssertionKey(t, kt.alg, key.kid)
				otherKid := newAssertionKey(t, kt.alg, "not-registered")

				tests := []struct {
					name   string
					claims func(c *josejwt.Claims)
					key    assertionKey
					// send overrides the request; by default the assertion
					// alone authenticates a client_credentials request.
					send   func(assertion string) oauthReply
					replay bool
					want   string
				}{
					{name: "valid, aud token endpoint"},
					{name: "valid, aud issuer", claims: func(c *josejwt.Claims) { c.Audience = josejwt.Audience{in.issuer} }},
					{name: "replayed jti", replay: true, want: "invalid_client"},
					{name: "wrong aud", claims: func(c *josejwt.Claims) { c.Audience = josejwt.Audience{"https://other.example/oauth2/token"} }, want: "invalid_client"},
					{name: "expired", claims: func(c *josejwt.Claims) {
						c.IssuedAt = josejwt.NewNumericDate(clock.Now().Add(-10 * time.Minute))
						c.Expiry = josejwt.NewNumericDate(clock.Now().Add(-5 * time.Minute))
					}, want: "invalid_client"},
					{name: "missing exp", claims: func(c *josejwt.Claims) { c.Expiry = nil }, want: "invalid_client"},
					{name: "exp too far ahead", claims: func(c *josejwt.Claims) { c.Expiry = josejwt.NewNumericDate(clock.Now().Add(24 * time.Hour)) }, want: "invalid_client"},
					{name: "missing jti", claims: func(c *josejwt.Claims) { c.ID = "" }, want: "invalid_client"},
					{name: "unknown key under the registered kid", key: stranger, want: "invalid_client"},
					{name: "unknown kid", key: otherKid, want: "invalid_client"},
					{name: "iss differs from sub", claims: func(c *josejwt.Claims) { c.Issuer = "someone-else" }, want: "invalid_client"},
					{name: "sub of another client", claims: func(c *josejwt.Claims) { c.Issuer, c.Subject = "either", "either" }, want: "invalid_client"},
					{name: "client_secret_post instead", send: func(string) oauthReply {
						return postOAuth(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {"a-guessed-secret-value"}})
					}, want: "invalid_client"},
					{name: "client_secret_basic instead", send: func(string) oauthReply {
						return postOAuth(t, tokenURL, url.Values{"grant_type": {"client_credentials"}}, id, "a-guessed-secret-value")
					}, want: "invalid_client"},
					{name: "client_id only", send: func(string) oauthReply {
						return postOAuth(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}})
					}, want: "invalid_client"},
					// Two methods in one request are ambiguous (RFC 6749 2.3).
					{name: "assertion and client_secret", send: func(a string) oauthReply {
						f := assertionForm(a)
						f.Set("client_secret", "a-guessed-secret-value")
						return postOAuth(t, tokenURL, f)
					}, want: "invalid_request"},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						claims := assertionClaims(id, in.issuer, clock.Now())
						if tt.claims != nil {
							tt.claims(&claims)
						}
						signer := key
						if tt.key.priv != nil {
							signer = tt.key
						}
						assertion := signer.sign(t, claims)
						send := func(a string) oauthReply { return postOAuth(t, tokenURL, assertionForm(a)) }
						if tt.send != nil {
							send = tt.send
						}
						if tt.replay {
							first := send(assertion)
							first.check(t, "")
						}
						got := send(assertion)
						got.check(t, tt.want)
						if tt.want == "" {
							if tok, _ := got.body["access_token"].(string); tok == "" {
								t.Fatalf("no access token: %v", got.body)
							}
						}
					})
				}
			})
		}
	})
}

// raceAssertion sends one assertion n times at once, spread over the
// token endpoints, and returns how many requests succeeded; every other
// one must be refused as a replay, never fail for another reason.
func raceAssertion(t *testing.T, assertion string, n int, tokenURLs ...string) int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		ok      int
		fire    = make(chan struct{})
		replies = make([]oauthReply, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			// Held until all are ready, so the requests overlap.
			<-fire
			replies[i], errs[i] = sendOAuth(tokenURLs[i%len(tokenURLs)], assertionForm(assertion))
		})
	}
	close(fire)
	wg.Wait()
	for i, r := range replies {
		if errs[i] != nil {
			t.Errorf("parallel request %d: %v", i, errs[i])
			continue
		}
		if r.status == http.StatusOK {
			ok++
			continue
		}
		if r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" {
			t.Errorf("parallel replay answered %d %v, want 401 invalid_client", r.status, r.body)
		}
	}
	return ok
}

func TestPrivateKeyJWTSingleUseUnderConcurrency(t *testing.T) {
	const parallel = 20
	eachBackend(t, func(t *testing.T, dbURL string) {
		clock := &testClock{}
		in := start(t, dbURL, clock)
		key := newAssertionKey(t, jose.ES256, "k1")
		in.createClient(oauth.ClientSpec{ID: "racer", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks(t)})
		assertion := key.sign(t, assertionClaims("racer", in.issuer, clock.Now()))
		if got := raceAssertion(t, assertion, parallel, in.issuer+"/oauth2/token"); got != 1 {
			t.Fatalf("%d of %d parallel requests with one assertion succeeded, want exactly 1", got, parallel)
		}
	})
}

// TestPrivateKeyJWTSingleUseAcrossInstances runs two instances behind one
// issuer on one PostgreSQL database: the jti is remembered in the database,
// so an assertion is spent on both at once.
func TestPrivateKeyJWTSingleUseAcrossInstances(t *testing.T) {
	const parallel = 20
	dbURL := storagetest.RequirePostgres(t)
	clock := &testClock{}
	a := start(t, dbURL, clock)
	b := start(t, dbURL, clock, func(c *config.Config) { c.Server.Issuer = a.issuer })
	key := newAssertionKey(t, jose.RS256, "k1")
	a.createClient(oauth.ClientSpec{ID: "racer", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks(t)})

	// Each instance accepts a fresh assertion: the second one sees the
	// client and takes the shared issuer as the audience.
	for _, in := range []*instance{a, b} {
		postOAuth(t, in.ts.URL+"/oauth2/token", assertionForm(key.sign(t, assertionClaims("racer", a.issuer, clock.Now())))).check(t, "")
	}
	assertion := key.sign(t, assertionClaims("racer", a.issuer, clock.Now()))
	if got := raceAssertion(t, assertion, parallel, a.ts.URL+"/oauth2/token", b.ts.URL+"/oauth2/token"); got != 1 {
		t.Fatalf("%d of %d parallel requests over two instances succeeded, want exactly 1", got, parallel)
	}
}

func TestIntrospectClientAuth(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		clock := &testClock{}
		in := start(t, dbURL, clock)
		introspectURL := in.issuer + "/oauth2/introspect"
		postSecret := in.createClient(oauth.ClientSpec{ID: "rs-post", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_post"})
		key := newAssertionKey(t, jose.ES256, "rs-1")
		// rs-jwt is a resource server: it introspects rs-post's tokens.
		in.createClient(oauth.ClientSpec{ID: "rs-jwt", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks(t), Introspect: true})
		in.createClient(oauth.ClientSpec{ID: "spa", Public: true, GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{callback}, Scopes: []string{"openid"}})

		cc := clientcredentials.Config{ClientID: "rs-post", ClientSecret: postSecret, TokenURL: in.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("client credentials: %v", err)
		}
		withToken := func(f url.Values) url.Values {
			f.Set("token", tok.AccessToken)
			return f
		}

		tests := []struct {
			name string
			send func() oauthReply
			want string
			// basic marks a request that tried HTTP Basic.
			basic bool
		}{
			{"client_secret_post", func() oauthReply {
				return postOAuth(t, introspectURL, withToken(url.Values{"client_id": {"rs-post"}, "client_secret": {postSecret}}))
			}, "", false},
			{"private_key_jwt, aud introspection endpoint", func() oauthReply {
				c := assertionClaims("rs-jwt", in.issuer, clock.Now())
				c.Audience = josejwt.Audience{introspectURL}
				return postOAuth(t, introspectURL, withToken(url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {key.sign(t, c)}}))
			}, "", false},
			{"private_key_jwt, aud issuer", func() oauthReply {
				c := assertionClaims("rs-jwt", in.issuer, clock.Now())
				c.Audience = josejwt.Audience{in.issuer}
				return postOAuth(t, introspectURL, withToken(url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {key.sign(t, c)}}))
			}, "", false},
			{"client_secret_post client refuses basic", func() oauthReply {
				return postOAuth(t, introspectURL, withToken(url.Values{}), "rs-post", postSecret)
			}, "invalid_client", true},
			{"public client", func() oauthReply {
				return postOAuth(t, introspectURL, withToken(url.Values{"client_id": {"spa"}}))
			}, "invalid_client", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := tt.send()
				got.check(t, tt.want)
				if tt.basic && !strings.HasPrefix(got.wwwAuthenticate, "Basic") {
					t.Errorf("401 to a Basic attempt has WWW-Authenticate %q, want Basic (RFC 6749 5.2)", got.wwwAuthenticate)
				}
				if tt.want != "" {
					if _, told := got.body["active"]; told {
						t.Fatalf("refused caller was told about the token: %v", got.body)
					}
					return
				}
				if got.body["active"] != true || got.body["client_id"] != "rs-post" {
					t.Fatalf("introspection = %v, want the active token of rs-post", got.body)
				}
			})
		}
	})
}
