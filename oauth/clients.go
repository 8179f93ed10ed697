package oauth

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

// ClientSpec is what an administrator supplies to register a client, from
// the CLI or the admin API.
type ClientSpec struct {
	ID                     string   `json:"client_id"`
	Name                   string   `json:"client_name,omitempty"`
	Secret                 string   `json:"client_secret,omitempty"`
	RedirectURIs           []string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	GrantTypes             []string `json:"grant_types,omitempty"`
	ResponseTypes          []string `json:"response_types,omitempty"`
	Scopes                 []string `json:"scopes,omitempty"`
	Audience               []string `json:"audience,omitempty"`
	Public                 bool     `json:"public,omitempty"`
	SkipConsent            bool     `json:"skip_consent,omitempty"`
	// Introspect lets a resource server introspect every client's tokens.
	Introspect              bool   `json:"introspect,omitempty"`
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	AccessTokenFormat       string `json:"access_token_format,omitempty"`
	// LogoURI, PolicyURI and TosURI are shown on the sign-in and consent
	// pages (RFC 7591 client metadata).
	LogoURI   string `json:"logo_uri,omitempty"`
	PolicyURI string `json:"policy_uri,omitempty"`
	TosURI    string `json:"tos_uri,omitempty"`
	// AllowedCORSOrigins are browser origins (scheme://host[:port]) that may
	// call the token, revocation and userinfo endpoints as this client.
	AllowedCORSOrigins []string `json:"allowed_cors_origins,omitempty"`
	// JWKS holds the public keys of a private_key_jwt client.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// TokenEndpointAuthSigningAlg pins the algorithm of its assertions.
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
}

// MinSuppliedSecretLength is the shortest client secret an administrator may
// choose; generated secrets are 43 characters (256 bits).
const MinSuppliedSecretLength = 16

var (
	clientIDPattern   = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	scopePattern      = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`) // RFC 6749 3.3 scope-token
	knownResponseType = []string{"code"}
	authMethods       = []string{"client_secret_basic", "client_secret_post", methodPrivateKeyJWT}
	tokenFormats      = []string{"", "opaque", "jwt"}
)

// NewClient validates spec and builds the client to store. For a
// confidential client without a supplied secret it generates one with 256
// bits of entropy; the returned secret is shown once and only its hash is
// kept. hasher hashes secrets a person chose (key-stretched, since they may
// be guessable); generated ones are hashed with SHA-256.
func NewClient(spec ClientSpec, hasher hashing.Argon2) (*storage.Client, string, error) {
	var fe fielderr.Error
	switch {
	case !clientIDPattern.MatchString(spec.ID):
		fe.Add("client_id", "must be 1-128 characters of A-Z a-z 0-9 . _ ~ -")
	case spec.ID == "." || spec.ID == "..":
		// Path cleaning would make /admin/clients/.. unaddressable.
		fe.Add("client_id", `must not be "." or ".."`)
	}
	if len(spec.GrantTypes) == 0 {
		fe.Add("grant_types", "must name at least one grant type")
	}
	for i, g := range spec.GrantTypes {
		if !SupportedGrant(g) {
			fe.Add(field("grant_types", i), "unsupported grant type %q (supported: %s)", g, strings.Join(GrantTypes(), ", "))
		}
	}
	usesCode := slices.Contains(spec.GrantTypes, GrantAuthorizationCode)
	if usesCode && len(spec.ResponseTypes) == 0 {
		spec.ResponseTypes = []string{"code"}
	}
	for i, rt := range spec.ResponseTypes {
		if !slices.Contains(knownResponseType, rt) {
			fe.Add(field("response_types", i), "unsupported response type %q (supported: code)", rt)
		}
	}
	if usesCode && len(spec.RedirectURIs) == 0 {
		fe.Add("redirect_uris", "required for the authorization_code grant")
	}
	for i, u := range spec.RedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			fe.Add(field("redirect_uris", i), "%s", msg)
		}
	}
	for i, u := range spec.PostLogoutRedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			fe.Add(field("post_logout_redirect_uris", i), "%s", msg)
		}
	}
	for i, s := range spec.Scopes {
		if !scopePattern.MatchString(s) {
			fe.Add(field("scopes", i), "%q is not a valid scope token", s)
		}
	}
	if spec.Public {
		if spec.Secret != "" {
			fe.Add("client_secret", "a public client has no secret")
		}
		if slices.Contains(spec.GrantTypes, GrantClientCredentials) {
			fe.Add("grant_types", "a public client cannot use client_credentials")
		}
		if spec.TokenEndpointAuthMethod != "" && spec.TokenEndpointAuthMethod != "none" {
			fe.Add("token_endpoint_auth_method", "a public client authenticates with \"none\"")
		}
		if spec.Introspect {
			fe.Add("introspect", "a public client cannot introspect tokens")
		}
	} else {
		if spec.Secret != "" && len(spec.Secret) < MinSuppliedSecretLength {
			fe.Add("client_secret", "must be at least %d characters (or omit it to have one generated)", MinSuppliedSecretLength)
		}
		if spec.TokenEndpointAuthMethod != "" && !slices.Contains(authMethods, spec.TokenEndpointAuthMethod) {
			fe.Add("token_endpoint_auth_method", "must be one of %s", strings.Join(authMethods, ", "))
		}
	}
	keyClient := spec.TokenEndpointAuthMethod == methodPrivateKeyJWT
	var jwks string
	switch {
	case keyClient && spec.Secret != "":
		fe.Add("client_secret", "a private_key_jwt client authenticates with its keys, not a secret")
	case keyClient && len(spec.JWKS) == 0:
		fe.Add("jwks", "required for token_endpoint_auth_method private_key_jwt")
	case !keyClient && len(spec.JWKS) > 0:
		fe.Add("jwks", "only a private_key_jwt client registers keys")
	case keyClient:
		var err error
		if jwks, err = checkClientJWKS(spec.JWKS); err != nil {
			fe.Add("jwks", "%s", err.Error())
		}
	}
	if a := spec.TokenEndpointAuthSigningAlg; a != "" {
		if !keyClient {
			fe.Add("token_endpoint_auth_signing_alg", "only a private_key_jwt client signs assertions")
		} else if !slices.Contains(assertionAlgNames(), a) {
			fe.Add("token_endpoint_auth_signing_alg", "must be one of %s", strings.Join(assertionAlgNames(), ", "))
		}
	}
	for i, o := range spec.AllowedCORSOrigins {
		if msg := checkOrigin(o); msg != "" {
			fe.Add(field("allowed_cors_origins", i), "%s", msg)
		} else if slices.Contains(spec.AllowedCORSOrigins[:i], o) {
			fe.Add(field("allowed_cors_origins", i), "%q is listed twice", o)
		}
	}
	for _, link := range []struct{ field, uri string }{{"logo_uri", spec.LogoURI}, {"policy_uri", spec.PolicyURI}, {"tos_uri", spec.TosURI}} {
		if link.uri == "" {
			continue
		}
		if msg := checkPageURI(link.uri); msg != "" {
			fe.Add(link.field, "%s", msg)
		}
	}
	if !slices.Contains(tokenFormats, spec.AccessTokenFormat) {
		fe.Add("access_token_format", "must be \"opaque\" or \"jwt\"")
	}
	if err := fe.Err(); err != nil {
		return nil, "", err
	}

	c := &storage.Client{
		ID:                      spec.ID,
		Name:                    spec.Name,
		RedirectURIs:            spec.RedirectURIs,
		PostLogoutRedirectURIs:  spec.PostLogoutRedirectURIs,
		GrantTypes:              spec.GrantTypes,
		ResponseTypes:           spec.ResponseTypes,
		Scopes:                  spec.Scopes,
		Audience:                spec.Audience,
		Public:                  spec.Public,
		SkipConsent:             spec.SkipConsent,
		Introspect:              spec.Introspect,
		TokenEndpointAuthMethod: spec.TokenEndpointAuthMethod,
		AccessTokenFormat:       spec.AccessTokenFormat,
		LogoURI:                 spec.LogoURI,
		PolicyURI:               spec.PolicyURI,
		TosURI:                  spec.TosURI,
		AllowedCORSOrigins:      spec.AllowedCORSOrigins,
		JWKS:                    jwks,

		TokenEndpointAuthSigningAlg: spec.TokenEndpointAuthSigningAlg,
	}
	if spec.Public {
		c.TokenEndpointAuthMethod = "none"
		return c, "", nil
	}
	if keyClient {
		return c, "", nil
	}
	secret := spec.Secret
	if secret == "" {
		var err error
		if secret, err = hashing.GenerateSecret(); err != nil {
			return nil, "", err
		}
		c.SecretHash = hashing.HighEntropy(secret)
		return c, secret, nil
	}
	h, err := hasher.Hash(secret)
	if err != nil {
		return nil, "", err
	}
	c.SecretHash = h
	return c, "", nil
}

func field(name string, i int) string {
	return name + "[" + strconv.Itoa(i) + "]"
}

// checkRedirectURI enforces RFC 6749 3.1.2: absolute, no fragment; and
// refuses plain http except for loopback (RFC 8252 native apps).
func checkRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	if !u.IsAbs() || (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return "must be an absolute URL"
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "vbscript", "file", "blob", "about":
		return "must not use the " + u.Scheme + ": scheme"
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "must not contain a fragment"
	}
	if u.User != nil {
		return "must not contain user information"
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return "must use https (http is allowed for loopback hosts only)"
	}
	return ""
}

// checkOrigin accepts a Web origin as browsers send it in Origin:
// scheme://host[:port], lower case, nothing after the authority.
func checkOrigin(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a valid origin"
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		return "must be an origin: scheme://host[:port]"
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw[len(u.Scheme)+3:], "/?#"):
		return "must be an origin without a path, query or fragment (scheme://host[:port])"
	case u.User != nil:
		return "must not contain user information"
	case raw != strings.ToLower(raw):
		return "must be lower case, as browsers send it"
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return "must use https (http is allowed for loopback hosts only)"
	case u.Port() == "443" && u.Scheme == "https" || u.Port() == "80" && u.Scheme == "http":
		return "must not name the scheme's default port (browsers omit it)"
	}
	return ""
}

// checkPageURI checks a link shown to people on our pages.
func checkPageURI(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return "must be an absolute URL"
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())):
		return "must use https (http is allowed for loopback hosts only)"
	case u.User != nil:
		return "must not contain user information"
	}
	return ""
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}
