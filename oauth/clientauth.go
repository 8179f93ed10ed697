package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

const (
	methodPrivateKeyJWT = "private_key_jwt"
	// assertionTypeJWTBearer is RFC 7523's client_assertion_type.
	assertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// maxAssertionLifetime bounds how far ahead an assertion may expire: a
	// replay must be remembered until then, and a long-lived assertion is
	// a bearer credential in all but name.
	maxAssertionLifetime = time.Hour
	assertionLeeway      = 30 * time.Second
)

// assertionAlgs are the JWS algorithms a client may sign assertions with.
var assertionAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

func assertionAlgNames() []string {
	out := make([]string, len(assertionAlgs))
	for i, a := range assertionAlgs {
		out[i] = string(a)
	}
	return out
}

// authenticateClient is fosite's client authentication strategy, replaced
// so that each client is held to the methods it registered (see
// storage.Client.TokenEndpointAuthMethods) rather than fosite's single
// method, and so that a private_key_jwt assertion is checked with the
// injected clock and recorded as used in one atomic insert.
func (p *Provider) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if form.Has("client_assertion_type") || form.Has("client_assertion") {
		if _, _, basic := r.BasicAuth(); basic || form.Get("client_secret") != "" {
			return nil, fosite.ErrInvalidRequest.WithHint("Use one client authentication method per request, not a client_assertion and a secret.")
		}
		if t := form.Get("client_assertion_type"); t != assertionTypeJWTBearer {
			return nil, fosite.ErrInvalidRequest.WithHintf("client_assertion_type must be %q.", assertionTypeJWTBearer)
		}
		return p.authenticateAssertion(ctx, r, form.Get("client_assertion"), form.Get("client_id"))
	}
	id, secret, method, err := secretCredentials(r, form)
	if err != nil {
		return nil, err
	}
	c, err := p.registeredClient(ctx, id)
	if err != nil {
		return nil, err
	}
	if allowed := c.TokenEndpointAuthMethods(); !slices.Contains(allowed, method) {
		return nil, fosite.ErrInvalidClient.WithHintf("This client authenticates with %s, not %s.", strings.Join(allowed, " or "), method)
	}
	if method == "none" {
		return c, nil
	}
	if err := p.fc.GetSecretsHasher(ctx).Compare(ctx, c.GetHashedSecret(), []byte(secret)); err != nil {
		if errors.Is(err, hashing.ErrBusy) {
			return nil, err
		}
		return nil, fosite.ErrInvalidClient.WithHint("The client credentials are invalid.")
	}
	return c, nil
}

// secretCredentials reads the client id and secret from HTTP Basic (values
// form-encoded, RFC 6749 2.3.1) or the body, and says which method that was.
func secretCredentials(r *http.Request, form url.Values) (id, secret, method string, err error) {
	if u, pw, ok := r.BasicAuth(); ok {
		if form.Get("client_secret") != "" {
			return "", "", "", fosite.ErrInvalidRequest.WithHint("Use one client authentication method per request, not HTTP Basic and client_secret.")
		}
		if id, err = url.QueryUnescape(u); err != nil {
			return "", "", "", fosite.ErrInvalidRequest.WithHint("The client id in the Authorization header is not form-encoded.")
		}
		if secret, err = url.QueryUnescape(pw); err != nil {
			return "", "", "", fosite.ErrInvalidRequest.WithHint("The client secret in the Authorization header is not form-encoded.")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return "", "", "", fosite.ErrInvalidRequest.WithHint("client_id in the body does not match the Authorization header.")
		}
		return id, secret, "client_secret_basic", nil
	}
	id = form.Get("client_id")
	if id == "" {
		// RFC 6749 5.2 counts "no client authentication included" as
		// invalid_client.
		return "", "", "", fosite.ErrInvalidClient.WithHint("Client credentials are missing: send HTTP Basic, client_id and client_secret, or a client_assertion.")
	}
	if secret = form.Get("client_secret"); secret != "" {
		return id, secret, "client_secret_post", nil
	}
	return id, "", "none", nil
}

func (p *Provider) registeredClient(ctx context.Context, id string) (*storage.Client, error) {
	fc, err := p.cfg.Store.GetClient(ctx, id)
	if errors.Is(err, fosite.ErrNotFound) || isNotFound(err) {
		return nil, fosite.ErrInvalidClient.WithHint("The client is not registered.")
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	c, ok := fc.(*storage.Client)
	if !ok {
		return nil, fosite.ErrServerError.WithDebug("unexpected client type")
	}
	return c, nil
}

// authenticateAssertion checks an RFC 7523 client assertion: signed by a key
// the client registered, issued by and about the client, addressed to this
// server, unexpired, and never seen before.
func (p *Provider) authenticateAssertion(ctx context.Context, r *http.Request, raw, formClientID string) (fosite.Client, error) {
	invalid := func(hint string) error { return fosite.ErrInvalidClient.WithHint(hint) }
	if raw == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("client_assertion is missing.")
	}
	tok, err := josejwt.ParseSigned(raw, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, invalid("client_assertion is not a JWT signed with a supported algorithm.")
	}
	var unverified josejwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, invalid("client_assertion claims cannot be read.")
	}
	id := unverified.Subject
	if id == "" || unverified.Issuer != id {
		return nil, invalid("client_assertion iss and sub must both be the client_id.")
	}
	if formClientID != "" && formClientID != id {
		return nil, invalid("client_id does not match the client_assertion.")
	}
	c, err := p.registeredClient(ctx, id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.TokenEndpointAuthMethods(), methodPrivateKeyJWT) {
		return nil, invalid("This client does not authenticate with private_key_jwt.")
	}
	h := tok.Headers[0]
	if want := c.TokenEndpointAuthSigningAlg; want != "" && h.Algorithm != want {
		return nil, invalid("client_assertion must be signed with " + want + ".")
	}
	var claims josejwt.Claims
	verified := false
	for _, k := range assertionKeys(c.JWKS, h.KeyID, h.Algorithm) {
		if tok.Claims(k.Key, &claims) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, invalid("client_assertion is not signed by a key registered for this client.")
	}
	now := p.cfg.Now()
	expect := josejwt.Expected{
		Issuer:      id,
		Subject:     id,
		AnyAudience: p.assertionAudiences(r),
		Time:        now,
	}
	if err := claims.ValidateWithLeeway(expect, assertionLeeway); err != nil {
		return nil, invalid("client_assertion is not valid here: " + assertionProblem(err) + ".")
	}
	switch {
	case claims.Expiry == nil:
		return nil, invalid("client_assertion has no exp.")
	case claims.Expiry.Time().After(now.Add(maxAssertionLifetime)):
		return nil, invalid(fmt.Sprintf("client_assertion expires too far ahead (at most %s).", maxAssertionLifetime))
	case claims.ID == "":
		return nil, invalid("client_assertion has no jti.")
	}
	// The insert is the check: of parallel requests carrying one assertion,
	// exactly one records its jti. The key is scoped to the client, whose
	// jti values need only be unique among its own.
	err = p.cfg.Store.SetClientAssertionJWT(ctx, id+" "+claims.ID, claims.Expiry.Time().Add(assertionLeeway))
	switch {
	case errors.Is(err, fosite.ErrJTIKnown):
		return nil, invalid("client_assertion was already used.")
	case err != nil:
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return c, nil
}

// assertionAudiences are the values an assertion's aud may name: the
// issuer (RFC 7523bis, FAPI 2), the token endpoint (OpenID Connect Core
// 9), or the endpoint the request was sent to.
func (p *Provider) assertionAudiences(r *http.Request) josejwt.Audience {
	iss := p.cfg.Issuer
	aud := josejwt.Audience{iss, iss + "/oauth2/token"}
	if r.URL.Path != "/oauth2/token" {
		aud = append(aud, iss+r.URL.Path)
	}
	return aud
}

func assertionProblem(err error) string {
	switch {
	case errors.Is(err, josejwt.ErrExpired):
		return "it has expired"
	case errors.Is(err, josejwt.ErrInvalidAudience):
		return "aud does not name this server"
	case errors.Is(err, josejwt.ErrNotValidYet), errors.Is(err, josejwt.ErrIssuedInTheFuture):
		return "it is not valid yet"
	}
	return "its claims do not match"
}

// assertionKeys are the client's registered keys that could have made a
// signature with alg: the one named by kid when there is one, else all.
func assertionKeys(rawJWKS, kid, alg string) []jose.JSONWebKey {
	var set jose.JSONWebKeySet
	if rawJWKS == "" || json.Unmarshal([]byte(rawJWKS), &set) != nil {
		return nil
	}
	keys := set.Keys
	if kid != "" {
		keys = set.Key(kid)
	}
	var out []jose.JSONWebKey
	for _, k := range keys {
		if (k.Use == "" || k.Use == "sig") && (k.Algorithm == "" || k.Algorithm == alg) && keyFitsAlg(k.Key, alg) {
			out = append(out, k)
		}
	}
	return out
}

func keyFitsAlg(key any, alg string) bool {
	switch key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(alg, "ES")
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// checkClientJWKS validates a client's JWKS at registration and returns it
// re-encoded: public signing keys only, distinct key ids, RSA of at least
// 2048 bits.
func checkClientJWKS(raw json.RawMessage) (string, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return "", fmt.Errorf("is not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return "", errors.New("must contain at least one key")
	}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		switch {
		case !k.Valid():
			return "", fmt.Errorf("keys[%d] is not a valid key", i)
		case !k.IsPublic():
			return "", fmt.Errorf("keys[%d] is a private key: register only the public half", i)
		case k.Use != "" && k.Use != "sig":
			return "", fmt.Errorf("keys[%d] has use %q, want \"sig\"", i, k.Use)
		case k.Algorithm != "" && !slices.Contains(assertionAlgNames(), k.Algorithm):
			return "", fmt.Errorf("keys[%d] has unsupported alg %q", i, k.Algorithm)
		case len(set.Keys) > 1 && k.KeyID == "":
			return "", fmt.Errorf("keys[%d] needs a kid when the set has several keys", i)
		case seen[k.KeyID] && k.KeyID != "":
			return "", fmt.Errorf("keys[%d] repeats kid %q", i, k.KeyID)
		}
		seen[k.KeyID] = true
		switch key := k.Key.(type) {
		case *rsa.PublicKey:
			if key.N.BitLen() < 2048 {
				return "", fmt.Errorf("keys[%d] is an RSA key of %d bits, want at least 2048", i, key.N.BitLen())
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			return "", fmt.Errorf("keys[%d] is not an RSA, EC or Ed25519 key", i)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return "", fmt.Errorf("cannot be encoded: %v", err)
	}
	return string(b), nil
}
