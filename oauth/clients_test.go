package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
)

// cheapArgon2 keeps hashing of supplied secrets fast in tests.
var cheapArgon2 = hashing.Argon2{Memory: 64, Iterations: 1, Parallelism: 1}

// validSpec is a confidential authorization_code client that passes every
// rule; each case below breaks (or bends) exactly what it names.
func validSpec() ClientSpec {
	return ClientSpec{
		ID:           "app",
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		RedirectURIs: []string{"https://app.example/cb"},
	}
}

func TestNewClientValidation(t *testing.T) {
	pubJWKS, privJWKS := testJWKS(t)
	tests := []struct {
		name   string
		modify func(*ClientSpec)
		// fields are the field names reported, in order; nil means valid.
		fields []string
		// msg, when set, must appear in the first problem's message.
		msg string
	}{
		{name: "valid", modify: func(*ClientSpec) {}},

		// client_id
		{name: "client_id empty", modify: func(s *ClientSpec) { s.ID = "" }, fields: []string{"client_id"}},
		{name: "client_id with space", modify: func(s *ClientSpec) { s.ID = "my app" }, fields: []string{"client_id"}},
		{name: "client_id with slash", modify: func(s *ClientSpec) { s.ID = "a/b" }, fields: []string{"client_id"}},
		{name: "client_id 129 chars", modify: func(s *ClientSpec) { s.ID = strings.Repeat("a", 129) }, fields: []string{"client_id"}},
		{name: "client_id 128 chars", modify: func(s *ClientSpec) { s.ID = strings.Repeat("a", 128) }},
		{name: "client_id all allowed characters", modify: func(s *ClientSpec) { s.ID = "Az09._~-" }},
		{name: "client_id dot", modify: func(s *ClientSpec) { s.ID = "." }, fields: []string{"client_id"}, msg: `must not be "." or ".."`},
		{name: "client_id dot dot", modify: func(s *ClientSpec) { s.ID = ".." }, fields: []string{"client_id"}, msg: `must not be "." or ".."`},
		{name: "client_id three dots", modify: func(s *ClientSpec) { s.ID = "..." }},

		// grant_types
		{name: "grant_types empty", modify: func(s *ClientSpec) { s.GrantTypes = nil; s.RedirectURIs = nil }, fields: []string{"grant_types"}},
		{name: "grant_types unknown reports its index", modify: func(s *ClientSpec) { s.GrantTypes = []string{"authorization_code", "implicit", "magic"} }, fields: []string{"grant_types[1]", "grant_types[2]"}, msg: `"implicit"`},
		{name: "client_credentials without redirect_uris", modify: func(s *ClientSpec) { s.GrantTypes = []string{"client_credentials"}; s.RedirectURIs = nil }},
		{name: "password without redirect_uris", modify: func(s *ClientSpec) { s.GrantTypes = []string{"password", "refresh_token"}; s.RedirectURIs = nil }},
		// A mobile app is a public client; see passwordgrant.go.
		{name: "public with password", modify: func(s *ClientSpec) { s.Public = true; s.GrantTypes = []string{"password"}; s.RedirectURIs = nil }},

		// response_types
		{name: "response_types unknown", modify: func(s *ClientSpec) { s.ResponseTypes = []string{"token"} }, fields: []string{"response_types[0]"}},
		{name: "response_types second unknown", modify: func(s *ClientSpec) { s.ResponseTypes = []string{"code", "id_token"} }, fields: []string{"response_types[1]"}},

		// redirect_uris
		{name: "redirect_uris required for authorization_code", modify: func(s *ClientSpec) { s.RedirectURIs = nil }, fields: []string{"redirect_uris"}},
		{name: "redirect_uri relative", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"/cb"} }, fields: []string{"redirect_uris[0]"}, msg: "absolute"},
		{name: "redirect_uri empty", modify: func(s *ClientSpec) { s.RedirectURIs = []string{""} }, fields: []string{"redirect_uris[0]"}, msg: "absolute"},
		{name: "redirect_uri https without host", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"https:///cb"} }, fields: []string{"redirect_uris[0]"}, msg: "absolute"},
		{name: "redirect_uri https opaque", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"https:app.example/cb"} }, fields: []string{"redirect_uris[0]"}, msg: "absolute"},
		{name: "redirect_uri unparsable", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"://nope"} }, fields: []string{"redirect_uris[0]"}, msg: "not a valid URL"},
		{name: "redirect_uri fragment", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"https://app.example/cb#frag"} }, fields: []string{"redirect_uris[0]"}, msg: "fragment"},
		{name: "redirect_uri empty fragment", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"https://app.example/cb#"} }, fields: []string{"redirect_uris[0]"}, msg: "fragment"},
		{name: "redirect_uri userinfo", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"https://user:pw@app.example/cb"} }, fields: []string{"redirect_uris[0]"}, msg: "user information"},
		{name: "redirect_uri username only", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"https://user@app.example/cb"} }, fields: []string{"redirect_uris[0]"}, msg: "user information"},
		{name: "redirect_uri http non-loopback", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"http://app.example/cb"} }, fields: []string{"redirect_uris[0]"}, msg: "https"},
		{name: "redirect_uri http localhost lookalike", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"http://localhost.evil.example/cb"} }, fields: []string{"redirect_uris[0]"}, msg: "https"},
		{name: "redirect_uri javascript scheme", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"javascript:alert(1)"} }, fields: []string{"redirect_uris[0]"}, msg: "scheme"},
		{name: "redirect_uri data scheme", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"data:text/html,x"} }, fields: []string{"redirect_uris[0]"}, msg: "scheme"},
		{name: "redirect_uri native app scheme", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"com.example.app:/oauth2redirect"} }},
		{name: "redirect_uri http localhost", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"http://localhost:8080/cb"} }},
		{name: "redirect_uri http 127.0.0.1", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"http://127.0.0.1/cb"} }},
		{name: "redirect_uri http [::1]", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"http://[::1]:9000/cb"} }},
		{name: "redirect_uri private-use scheme", modify: func(s *ClientSpec) { s.RedirectURIs = []string{"com.example.app:/oauth2redirect"} }},
		{name: "redirect_uri second bad reports index 1", modify: func(s *ClientSpec) {
			s.RedirectURIs = []string{"https://app.example/cb", "http://app.example/cb"}
		}, fields: []string{"redirect_uris[1]"}},

		// post_logout_redirect_uris
		{name: "post_logout relative", modify: func(s *ClientSpec) { s.PostLogoutRedirectURIs = []string{"/bye"} }, fields: []string{"post_logout_redirect_uris[0]"}, msg: "absolute"},
		{name: "post_logout fragment", modify: func(s *ClientSpec) { s.PostLogoutRedirectURIs = []string{"https://app.example/bye#x"} }, fields: []string{"post_logout_redirect_uris[0]"}, msg: "fragment"},
		{name: "post_logout userinfo", modify: func(s *ClientSpec) { s.PostLogoutRedirectURIs = []string{"https://u@app.example/bye"} }, fields: []string{"post_logout_redirect_uris[0]"}, msg: "user information"},
		{name: "post_logout http non-loopback", modify: func(s *ClientSpec) {
			s.PostLogoutRedirectURIs = []string{"https://app.example/bye", "http://app.example/bye"}
		}, fields: []string{"post_logout_redirect_uris[1]"}, msg: "https"},
		{name: "post_logout http loopback", modify: func(s *ClientSpec) {
			s.PostLogoutRedirectURIs = []string{"http://localhost/bye", "http://127.0.0.1:1/bye", "http://[::1]/bye"}
		}},

		// scopes
		{name: "scopes valid", modify: func(s *ClientSpec) {
			s.Scopes = []string{"openid", "offline_access", "api:read", "a!#$%&'()*+,-./[]^_`{|}~"}
		}},
		{name: "scope with space", modify: func(s *ClientSpec) { s.Scopes = []string{"openid", "a b"} }, fields: []string{"scopes[1]"}},
		{name: "scope with quote", modify: func(s *ClientSpec) { s.Scopes = []string{`a"b`} }, fields: []string{"scopes[0]"}},
		{name: "scope with backslash", modify: func(s *ClientSpec) { s.Scopes = []string{`a\b`} }, fields: []string{"scopes[0]"}},
		{name: "scope empty", modify: func(s *ClientSpec) { s.Scopes = []string{""} }, fields: []string{"scopes[0]"}},
		{name: "scope non-ASCII", modify: func(s *ClientSpec) { s.Scopes = []string{"é"} }, fields: []string{"scopes[0]"}},

		// public clients
		{name: "public valid", modify: func(s *ClientSpec) { s.Public = true }},
		{name: "public with auth method none", modify: func(s *ClientSpec) { s.Public = true; s.TokenEndpointAuthMethod = "none" }},
		{name: "public with secret", modify: func(s *ClientSpec) { s.Public = true; s.Secret = strings.Repeat("s", 32) }, fields: []string{"client_secret"}},
		{name: "public with client_credentials", modify: func(s *ClientSpec) {
			s.Public = true
			s.GrantTypes = []string{"authorization_code", "client_credentials"}
		}, fields: []string{"grant_types"}, msg: "client_credentials"},
		{name: "public with client_secret_basic", modify: func(s *ClientSpec) { s.Public = true; s.TokenEndpointAuthMethod = "client_secret_basic" }, fields: []string{"token_endpoint_auth_method"}},

		// confidential clients
		{name: "secret 15 chars", modify: func(s *ClientSpec) { s.Secret = strings.Repeat("s", 15) }, fields: []string{"client_secret"}, msg: "16"},
		{name: "secret 16 chars", modify: func(s *ClientSpec) { s.Secret = strings.Repeat("s", 16) }},
		{name: "auth method client_secret_basic", modify: func(s *ClientSpec) { s.TokenEndpointAuthMethod = "client_secret_basic" }},
		{name: "auth method client_secret_post", modify: func(s *ClientSpec) { s.TokenEndpointAuthMethod = "client_secret_post" }},
		{name: "confidential with auth method none", modify: func(s *ClientSpec) { s.TokenEndpointAuthMethod = "none" }, fields: []string{"token_endpoint_auth_method"}},
		{name: "private_key_jwt without keys", modify: func(s *ClientSpec) { s.TokenEndpointAuthMethod = "private_key_jwt" }, fields: []string{"jwks"}},
		{name: "private_key_jwt with keys", modify: func(s *ClientSpec) { s.TokenEndpointAuthMethod = "private_key_jwt"; s.JWKS = pubJWKS }},
		{name: "private_key_jwt with keys and alg", modify: func(s *ClientSpec) {
			s.TokenEndpointAuthMethod, s.JWKS, s.TokenEndpointAuthSigningAlg = "private_key_jwt", pubJWKS, "ES256"
		}},
		{name: "private_key_jwt with unknown alg", modify: func(s *ClientSpec) {
			s.TokenEndpointAuthMethod, s.JWKS, s.TokenEndpointAuthSigningAlg = "private_key_jwt", pubJWKS, "HS256"
		}, fields: []string{"token_endpoint_auth_signing_alg"}},
		{name: "private_key_jwt with a secret", modify: func(s *ClientSpec) {
			s.TokenEndpointAuthMethod, s.JWKS, s.Secret = "private_key_jwt", pubJWKS, strings.Repeat("s", 32)
		}, fields: []string{"client_secret"}},
		{name: "private_key_jwt with a private key", modify: func(s *ClientSpec) { s.TokenEndpointAuthMethod = "private_key_jwt"; s.JWKS = privJWKS }, fields: []string{"jwks"}, msg: "private"},
		{name: "private_key_jwt with junk keys", modify: func(s *ClientSpec) {
			s.TokenEndpointAuthMethod = "private_key_jwt"
			s.JWKS = json.RawMessage(`{"keys":"no"}`)
		}, fields: []string{"jwks"}},
		{name: "keys on a secret client", modify: func(s *ClientSpec) { s.JWKS = pubJWKS }, fields: []string{"jwks"}},
		{name: "signing alg on a secret client", modify: func(s *ClientSpec) { s.TokenEndpointAuthSigningAlg = "ES256" }, fields: []string{"token_endpoint_auth_signing_alg"}},

		// allowed_cors_origins
		{name: "cors origins valid", modify: func(s *ClientSpec) {
			s.AllowedCORSOrigins = []string{"https://spa.example", "http://localhost:5173", "https://spa.example:8443"}
		}},
		{name: "cors origin with path", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"https://spa.example/app"} }, fields: []string{"allowed_cors_origins[0]"}, msg: "path"},
		{name: "cors origin with trailing slash", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"https://spa.example/"} }, fields: []string{"allowed_cors_origins[0]"}, msg: "path"},
		{name: "cors origin with query", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"https://spa.example?x=1"} }, fields: []string{"allowed_cors_origins[0]"}},
		{name: "cors origin upper case", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"https://SPA.example"} }, fields: []string{"allowed_cors_origins[0]"}, msg: "lower case"},
		{name: "cors origin http remote", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"http://spa.example"} }, fields: []string{"allowed_cors_origins[0]"}, msg: "https"},
		{name: "cors origin default port", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"https://spa.example:443"} }, fields: []string{"allowed_cors_origins[0]"}, msg: "port"},
		{name: "cors origin wildcard", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"*"} }, fields: []string{"allowed_cors_origins[0]"}},
		{name: "cors origin twice", modify: func(s *ClientSpec) { s.AllowedCORSOrigins = []string{"https://a.example", "https://a.example"} }, fields: []string{"allowed_cors_origins[1]"}},

		// links shown on the sign-in page
		{name: "page links valid", modify: func(s *ClientSpec) {
			s.LogoURI, s.PolicyURI, s.TosURI = "https://app.example/logo.png", "https://app.example/privacy", "https://app.example/terms"
		}},
		{name: "page links bad", modify: func(s *ClientSpec) {
			s.LogoURI, s.PolicyURI, s.TosURI = "javascript:alert(1)", "/privacy", "http://app.example/terms"
		}, fields: []string{"logo_uri", "policy_uri", "tos_uri"}},

		// access_token_format
		{name: "access_token_format jwt", modify: func(s *ClientSpec) { s.AccessTokenFormat = "jwt" }},
		{name: "access_token_format opaque", modify: func(s *ClientSpec) { s.AccessTokenFormat = "opaque" }},
		{name: "access_token_format upper case", modify: func(s *ClientSpec) { s.AccessTokenFormat = "JWT" }, fields: []string{"access_token_format"}},
		{name: "access_token_format unknown", modify: func(s *ClientSpec) { s.AccessTokenFormat = "paseto" }, fields: []string{"access_token_format"}},

		// everything at once
		{name: "all problems reported together", modify: func(s *ClientSpec) {
			s.ID = ".."
			s.ResponseTypes = []string{"token"}
			s.RedirectURIs = []string{"http://app.example/cb"}
			s.PostLogoutRedirectURIs = []string{"relative"}
			s.Scopes = []string{"a b"}
			s.Secret = "short"
			s.TokenEndpointAuthMethod = "none"
			s.AccessTokenFormat = "x"
		}, fields: []string{
			"client_id",
			"response_types[0]",
			"redirect_uris[0]",
			"post_logout_redirect_uris[0]",
			"scopes[0]",
			"client_secret",
			"token_endpoint_auth_method",
			"access_token_format",
		}},
		{name: "public problems reported together", modify: func(s *ClientSpec) {
			s.Public = true
			s.GrantTypes = []string{"client_credentials", "implicit"}
			s.Secret = strings.Repeat("s", 32)
			s.TokenEndpointAuthMethod = "client_secret_post"
		}, fields: []string{"grant_types[1]", "client_secret", "grant_types", "token_endpoint_auth_method"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			tt.modify(&spec)
			c, secret, err := NewClient(spec, cheapArgon2)
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("NewClient: unexpected error: %v", err)
				}
				if c == nil {
					t.Fatal("NewClient returned no client and no error")
				}
				return
			}
			if err == nil {
				t.Fatalf("NewClient accepted the spec, want problems with %v", tt.fields)
			}
			if c != nil || secret != "" {
				t.Errorf("NewClient returned client %v / secret %q alongside an error", c, secret)
			}
			fe, ok := fielderr.As(err)
			if !ok {
				t.Fatalf("error %v (%T) is not a *fielderr.Error", err, err)
			}
			var got []string
			for _, f := range fe.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tt.fields) {
				t.Fatalf("fields = %q, want %q (error: %v)", got, tt.fields, err)
			}
			if tt.msg != "" && !strings.Contains(fe.Fields[0].Message, tt.msg) {
				t.Errorf("message %q does not mention %q", fe.Fields[0].Message, tt.msg)
			}
		})
	}
}

// testJWKS returns the public half of a P-256 key as a JWKS, and the
// private half, which must never be registered.
func testJWKS(t testing.TB) (pub, priv json.RawMessage) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(key any) json.RawMessage {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Use: "sig", Algorithm: "ES256"}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return enc(&k.PublicKey), enc(k)
}

func TestNewClientResponseTypes(t *testing.T) {
	tests := []struct {
		name string
		spec ClientSpec
		want []string
	}{
		{
			name: "authorization_code defaults to code",
			spec: ClientSpec{ID: "a", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://a.example/cb"}},
			want: []string{"code"},
		},
		{
			name: "explicit code is kept",
			spec: ClientSpec{ID: "a", GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, RedirectURIs: []string{"https://a.example/cb"}},
			want: []string{"code"},
		},
		{
			name: "client_credentials gets no response type",
			spec: ClientSpec{ID: "a", GrantTypes: []string{"client_credentials"}},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := NewClient(tt.spec, cheapArgon2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.ResponseTypes, tt.want) {
				t.Fatalf("ResponseTypes = %q, want %q", c.ResponseTypes, tt.want)
			}
		})
	}
}

func TestNewClientGeneratedSecret(t *testing.T) {
	spec := validSpec()
	spec.Name = "My App"
	spec.PostLogoutRedirectURIs = []string{"https://app.example/bye"}
	spec.Scopes = []string{"openid", "offline_access"}
	spec.Audience = []string{"https://api.example"}
	spec.SkipConsent = true
	spec.TokenEndpointAuthMethod = "client_secret_post"
	spec.AccessTokenFormat = "jwt"

	c, secret, err := NewClient(spec, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 43 {
		t.Fatalf("generated secret has %d characters, want 43", len(secret))
	}
	if !strings.HasPrefix(c.SecretHash, "$sha256$") {
		t.Fatalf("generated secret stored as %q, want a $sha256$ hash", c.SecretHash)
	}
	if strings.Contains(c.SecretHash, secret) {
		t.Fatal("stored hash contains the secret")
	}
	if ok, err := hashing.Verify(c.SecretHash, secret); err != nil || !ok {
		t.Fatalf("Verify(hash, secret) = %v, %v; want true", ok, err)
	}
	if ok, _ := hashing.Verify(c.SecretHash, secret+"x"); ok {
		t.Fatal("Verify accepts a different secret")
	}

	// The spec is carried over.
	if c.ID != "app" || c.Name != "My App" || !c.SkipConsent || c.Public ||
		c.TokenEndpointAuthMethod != "client_secret_post" || c.AccessTokenFormat != "jwt" ||
		!slices.Equal(c.RedirectURIs, spec.RedirectURIs) ||
		!slices.Equal(c.PostLogoutRedirectURIs, spec.PostLogoutRedirectURIs) ||
		!slices.Equal(c.GrantTypes, spec.GrantTypes) ||
		!slices.Equal(c.Scopes, spec.Scopes) ||
		!slices.Equal(c.Audience, spec.Audience) {
		t.Fatalf("client does not carry the spec: %+v", c)
	}

	_, secret2, err := NewClient(spec, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if secret2 == secret {
		t.Fatal("two clients were given the same generated secret")
	}
}

func TestNewClientSuppliedSecret(t *testing.T) {
	spec := validSpec()
	spec.Secret = "correct horse battery staple"
	c, shown, err := NewClient(spec, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if shown != "" {
		t.Fatalf("a supplied secret is echoed back as %q; only generated ones are shown", shown)
	}
	// The hash carries the hasher's parameters: the caller's hasher was used.
	if !strings.HasPrefix(c.SecretHash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("supplied secret stored as %q, want argon2id with the given parameters", c.SecretHash)
	}
	if ok, err := hashing.Verify(c.SecretHash, spec.Secret); err != nil || !ok {
		t.Fatalf("Verify(hash, secret) = %v, %v; want true", ok, err)
	}
	if ok, _ := hashing.Verify(c.SecretHash, "correct horse battery stapler"); ok {
		t.Fatal("Verify accepts a different secret")
	}
}

func TestNewClientPublic(t *testing.T) {
	for _, tt := range []struct{ name, method string }{
		{"auth method unset", ""},
		{"auth method none", "none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			spec.Public = true
			spec.TokenEndpointAuthMethod = tt.method
			c, secret, err := NewClient(spec, cheapArgon2)
			if err != nil {
				t.Fatal(err)
			}
			if secret != "" || c.SecretHash != "" {
				t.Fatalf("public client got secret %q / hash %q", secret, c.SecretHash)
			}
			if !c.Public {
				t.Fatal("client is not marked public")
			}
			if c.TokenEndpointAuthMethod != "none" {
				t.Fatalf("TokenEndpointAuthMethod = %q, want none", c.TokenEndpointAuthMethod)
			}
		})
	}
}
