package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage"
)

// ClientView is a client as the API and the CLI show it: never the secret hash.
// ClientSecret is set only in the response that created a client with a
// generated secret, the one time it can be seen.
type ClientView struct {
	ClientID               string   `json:"client_id"`
	ClientName             string   `json:"client_name"`
	ClientSecret           string   `json:"client_secret,omitempty"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	GrantTypes             []string `json:"grant_types"`
	ResponseTypes          []string `json:"response_types"`
	Scopes                 []string `json:"scopes"`
	Audience               []string `json:"audience"`
	Public                 bool     `json:"public"`
	SkipConsent            bool     `json:"skip_consent"`
	Introspect             bool     `json:"introspect"`
	// TokenEndpointAuthMethod is the method the client reports (RFC 7591
	// metadata); TokenEndpointAuthMethods are all it is accepted with,
	// which for a confidential client registered without a method is both
	// forms of its secret.
	TokenEndpointAuthMethod  string   `json:"token_endpoint_auth_method"`
	TokenEndpointAuthMethods []string `json:"token_endpoint_auth_methods"`
	// TokenEndpointAuthSigningAlg is "" when any algorithm that fits the
	// client's key is accepted.
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg"`
	// JWKS is the public key set of a private_key_jwt client, absent for
	// others. Public keys, so there is nothing to hide.
	JWKS               json.RawMessage `json:"jwks,omitempty"`
	AllowedCORSOrigins []string        `json:"allowed_cors_origins"`
	LogoURI            string          `json:"logo_uri"`
	PolicyURI          string          `json:"policy_uri"`
	TosURI             string          `json:"tos_uri"`
	AccessTokenFormat  string          `json:"access_token_format"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
}

// NewClientView shows c; secret is the generated secret, given only when the
// client was just created.
func NewClientView(c *storage.Client, secret string) ClientView {
	v := ClientView{
		ClientID:                    c.ID,
		ClientSecret:                secret,
		ClientName:                  c.Name,
		RedirectURIs:                nonNil(c.RedirectURIs),
		PostLogoutRedirectURIs:      nonNil(c.PostLogoutRedirectURIs),
		GrantTypes:                  nonNil(c.GrantTypes),
		ResponseTypes:               nonNil(c.ResponseTypes),
		Scopes:                      nonNil(c.Scopes),
		Audience:                    nonNil(c.Audience),
		Public:                      c.Public,
		SkipConsent:                 c.SkipConsent,
		Introspect:                  c.Introspect,
		TokenEndpointAuthMethod:     c.GetTokenEndpointAuthMethod(),
		TokenEndpointAuthMethods:    nonNil(c.TokenEndpointAuthMethods()),
		TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg,
		AllowedCORSOrigins:          nonNil(c.AllowedCORSOrigins),
		LogoURI:                     c.LogoURI,
		PolicyURI:                   c.PolicyURI,
		TosURI:                      c.TosURI,
		AccessTokenFormat:           c.AccessTokenFormat,
		CreatedAt:                   c.CreatedAt,
		UpdatedAt:                   c.UpdatedAt,
	}
	// Stored validated and compact; a row that no longer parses (edited by
	// hand) is left out rather than breaking every listing.
	if c.JWKS != "" && json.Valid([]byte(c.JWKS)) {
		v.JWKS = json.RawMessage(c.JWKS)
	}
	return v
}

func (h *handler) createClient(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	var spec oauth.ClientSpec
	if err := decodeJSON(w, r, &spec); err != nil {
		return err
	}
	c, secret, err := oauth.NewClient(spec, h.hasher)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	err = h.audited(r, who, audit.Event{Type: audit.TypeClientCreated, ClientID: c.ID}, func(ctx context.Context) error {
		return h.store.CreateClient(ctx, c)
	})
	if err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return conflict(err, fmt.Sprintf("a client with client_id %q already exists", c.ID))
		}
		return fmt.Errorf("create client: %w", err)
	}
	h.writeJSON(w, r, http.StatusCreated, NewClientView(c, secret))
	return nil
}

func (h *handler) listClients(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	rows, err := h.store.ListClients(r.Context(), after, limit+1)
	if err != nil {
		return fmt.Errorf("list clients: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, paginate(rows, limit,
		func(c storage.Client) string { return c.ID },
		func(c storage.Client) ClientView { return NewClientView(&c, "") }))
	return nil
}

func (h *handler) getClient(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	c, err := h.store.Client(r.Context(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get client: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, NewClientView(c, ""))
	return nil
}

func (h *handler) deleteClient(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id := r.PathValue("id")
	err := h.audited(r, who, audit.Event{Type: audit.TypeClientDeleted, ClientID: id}, func(ctx context.Context) error {
		return h.store.DeleteClient(ctx, id)
	})
	if err != nil {
		return fmt.Errorf("delete client: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
