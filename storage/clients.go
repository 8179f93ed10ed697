package storage

import (
	"context"
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return []byte(c.SecretHash) }

// GetRedirectURIs implements fosite.Client.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes implements fosite.Client.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes implements fosite.Client.
func (c *Client) GetResponseTypes() fosite.Arguments { return c.ResponseTypes }

// GetScopes implements fosite.Client.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic implements fosite.Client.
func (c *Client) IsPublic() bool { return c.Public }

// GetAudience implements fosite.Client.
func (c *Client) GetAudience() fosite.Arguments { return c.Audience }

// GetRequestURIs implements fosite.OpenIDConnectClient; request_uri is not
// supported.
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys implements fosite.OpenIDConnectClient: the client's
// registered public keys, nil when it has none or they do not parse (they
// were validated when registered).
func (c *Client) GetJSONWebKeys() *jose.JSONWebKeySet {
	if c.JWKS == "" {
		return nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
		return nil
	}
	return &set
}

// GetJSONWebKeysURI implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeysURI() string { return "" }

// GetRequestObjectSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetTokenEndpointAuthMethod implements fosite.OpenIDConnectClient. A
// confidential client registered without a method reports
// client_secret_basic, the RFC 7591 default, but accepts
// client_secret_post as well (see TokenEndpointAuthMethods).
func (c *Client) GetTokenEndpointAuthMethod() string {
	switch {
	case c.Public:
		return "none"
	case c.TokenEndpointAuthMethod != "":
		return c.TokenEndpointAuthMethod
	}
	return "client_secret_basic"
}

// TokenEndpointAuthMethods are the ways this client may authenticate: only
// the registered one when one was chosen, else either form of its secret —
// client libraries differ in which they send, and both carry the same
// secret over the same TLS connection.
func (c *Client) TokenEndpointAuthMethods() []string {
	switch {
	case c.Public:
		return []string{"none"}
	case c.TokenEndpointAuthMethod != "":
		return []string{c.TokenEndpointAuthMethod}
	}
	return []string{"client_secret_basic", "client_secret_post"}
}

// GetTokenEndpointAuthSigningAlgorithm implements fosite.OpenIDConnectClient:
// the one JWS algorithm the client registered for its assertions, or ""
// for any the server supports that fits the key.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	return c.TokenEndpointAuthSigningAlg
}

// CreateClient inserts c and its CORS origins; ErrConflict when the id is
// taken.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	now := s.now().UTC()
	c.CreatedAt, c.UpdatedAt = now, now
	nilToEmpty(&c.RedirectURIs, &c.PostLogoutRedirectURIs, &c.GrantTypes, &c.ResponseTypes, &c.Scopes, &c.Audience, &c.AllowedCORSOrigins)
	return s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		if err := db.Create(c).Error; err != nil {
			return mapErr("create client "+c.ID, err)
		}
		for _, o := range c.AllowedCORSOrigins {
			if err := db.Create(&corsOriginRow{Origin: o, ClientID: c.ID}).Error; err != nil {
				return mapErr("create client "+c.ID+" cors origin", err)
			}
		}
		return nil
	})
}

// AnyClientAllowsOrigin reports whether some client lists origin in its
// allowed CORS origins. A preflight request carries no client, so this is
// all that can be known before the real request.
func (s *Store) AnyClientAllowsOrigin(ctx context.Context, origin string) (bool, error) {
	var n int64
	err := s.conn(ctx).Model(&corsOriginRow{}).Where("origin = ?", origin).Limit(1).Count(&n).Error
	if err != nil {
		return false, mapErr("find cors origin", err)
	}
	return n > 0, nil
}

// Client loads one client by id.
func (s *Store) Client(ctx context.Context, id string) (*Client, error) {
	var c Client
	if err := s.conn(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		return nil, mapErr("get client "+id, err)
	}
	return &c, nil
}

// ListClients returns up to limit clients with id > after, ordered by id.
func (s *Store) ListClients(ctx context.Context, after string, limit int) ([]Client, error) {
	var out []Client
	q := s.conn(ctx).Order("id").Limit(limit)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if err := q.Find(&out).Error; err != nil {
		return nil, mapErr("list clients", err)
	}
	return out, nil
}

// DeleteClient removes a client and, by cascade, its tokens and consents.
//
// Its own policy goes too: a client registered later under the same id
// must start from the global rules, not inherit a customization.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	defer s.clients.forget(id)
	return s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		res := db.Where("id = ?", id).Delete(&Client{})
		if res.Error != nil {
			return mapErr("delete client "+id, res.Error)
		}
		if res.RowsAffected == 0 {
			return mapErr("delete client "+id, ErrNotFound)
		}
		pol := db.Where("scope = ?", PolicyScopeClient(id)).Delete(&PolicyDocument{})
		if pol.Error != nil {
			return mapErr("delete client policy "+id, pol.Error)
		}
		if pol.RowsAffected > 0 {
			// Every instance must drop the client's rules from memory.
			_, err := s.BumpPolicyVersion(ctx)
			return err
		}
		return nil
	})
}

// GetClient implements fosite.ClientManager. It reads through the client
// cache (see Options.ClientCacheTTL).
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.cachedClient(ctx, id)
	if err != nil {
		return nil, fositeErr(err)
	}
	return c, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager: a JTI seen before
// and not yet expired is a replay.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var row jtiRow
	err := s.conn(ctx).Where("jti = ? AND expires_at > ?", jti, s.now().UTC()).Take(&row).Error
	switch err := mapErr("check jti", err); {
	case err == nil:
		return fosite.ErrJTIKnown
	case isNotFound(err):
		return nil
	default:
		return err
	}
}

// SetClientAssertionJWT implements fosite.ClientManager.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	db := s.conn(ctx)
	if err := db.Where("expires_at <= ?", s.now().UTC()).Delete(&jtiRow{}).Error; err != nil {
		return mapErr("expire jtis", err)
	}
	err := mapErr("record jti", db.Create(&jtiRow{JTI: jti, ExpiresAt: exp.UTC()}).Error)
	if isConflict(err) {
		return fosite.ErrJTIKnown
	}
	return err
}

func nilToEmpty(lists ...*[]string) {
	for _, l := range lists {
		if *l == nil {
			*l = []string{}
		}
	}
}

// GetAccessTokenFormat says which access token format the client asked for:
// "opaque", "jwt", or "" for the server default.
func (c *Client) GetAccessTokenFormat() string { return c.AccessTokenFormat }
