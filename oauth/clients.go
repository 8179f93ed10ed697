package oauth

import (
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
	ID                      string   `json:"client_id"`
	Name                    string   `json:"client_name,omitempty"`
	Secret                  string   `json:"client_secret,omitempty"`
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	Scopes                  []string `json:"scopes,omitempty"`
	Audience                []string `json:"audience,omitempty"`
	Public                  bool     `json:"public,omitempty"`
	SkipConsent             bool     `json:"skip_consent,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	AccessTokenFormat       string   `json:"access_token_format,omitempty"`
}

// MinSuppliedSecretLength is the shortest client secret an administrator may
// choose; generated secrets are 43 characters (256 bits).
const MinSuppliedSecretLength = 16

var (
	clientIDPattern   = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	scopePattern      = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`) // RFC 6749 3.3 scope-token
	knownGrantTypes   = []string{"authorization_code", "refresh_token", "client_credentials"}
	knownResponseType = []string{"code"}
	authMethods       = []string{"client_secret_basic", "client_secret_post"}
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
		if !slices.Contains(knownGrantTypes, g) {
			fe.Add(field("grant_types", i), "unsupported grant type %q (supported: %s)", g, strings.Join(knownGrantTypes, ", "))
		}
	}
	usesCode := slices.Contains(spec.GrantTypes, "authorization_code")
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
		if slices.Contains(spec.GrantTypes, "client_credentials") {
			fe.Add("grant_types", "a public client cannot use client_credentials")
		}
		if spec.TokenEndpointAuthMethod != "" && spec.TokenEndpointAuthMethod != "none" {
			fe.Add("token_endpoint_auth_method", "a public client authenticates with \"none\"")
		}
	} else {
		if spec.Secret != "" && len(spec.Secret) < MinSuppliedSecretLength {
			fe.Add("client_secret", "must be at least %d characters (or omit it to have one generated)", MinSuppliedSecretLength)
		}
		if spec.TokenEndpointAuthMethod != "" && !slices.Contains(authMethods, spec.TokenEndpointAuthMethod) {
			fe.Add("token_endpoint_auth_method", "must be one of %s", strings.Join(authMethods, ", "))
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
		TokenEndpointAuthMethod: spec.TokenEndpointAuthMethod,
		AccessTokenFormat:       spec.AccessTokenFormat,
	}
	if spec.Public {
		c.TokenEndpointAuthMethod = "none"
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

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}
