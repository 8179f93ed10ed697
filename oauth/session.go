package oauth

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what fosite stores with every token: the ID token claims plus
// what RFC 9068 JWT access tokens need.
type Session struct {
	*openid.DefaultSession `json:"oidc"`
	ClientID               string `json:"client_id"`
	// BrowserSessionID ties tokens to the login that produced them, so that
	// ending the session can end its tokens (session policy).
	BrowserSessionID string `json:"sid,omitempty"`
	// Admin records that the subject is an administrator, whose tokens
	// follow the policy's administrator lifetimes.
	Admin bool `json:"admin,omitempty"`
	// LastUsed is when the family last issued tokens, for the idle timeout.
	LastUsed time.Time `json:"last_used,omitempty"`
}

// GetBrowserSessionID tells storage which login a token belongs to.
func (s *Session) GetBrowserSessionID() string { return s.BrowserSessionID }

var (
	_ openid.Session             = (*Session)(nil)
	_ oauth2.JWTSessionContainer = (*Session)(nil)
)

func newSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{
		Claims:  &jwt.IDTokenClaims{},
		Headers: &jwt.Headers{},
	}}
}

// Clone implements fosite.Session; fosite clones sessions for refresh.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.DefaultSession != nil {
		c.DefaultSession = s.DefaultSession.Clone().(*openid.DefaultSession)
	}
	return &c
}

// GetJWTClaims implements oauth2.JWTSessionContainer: the RFC 9068 claims of
// a JWT access token.
func (s *Session) GetJWTClaims() jwt.JWTClaimsContainer {
	claims := &jwt.JWTClaims{
		Subject: s.GetSubject(),
		Extra:   map[string]interface{}{"client_id": s.ClientID},
	}
	if s.Claims != nil && !s.Claims.AuthTime.IsZero() {
		claims.Extra["auth_time"] = s.Claims.AuthTime.Unix()
	}
	return accessClaims{JWTClaims: claims, defaultAudience: s.ClientID}
}

// GetJWTHeader implements oauth2.JWTSessionContainer; RFC 9068 requires the
// "at+jwt" type so an access token cannot pass for an ID token.
func (s *Session) GetJWTHeader() *jwt.Headers {
	return &jwt.Headers{Extra: map[string]interface{}{"typ": "at+jwt"}}
}

// accessClaims gives a JWT access token an audience when the grant named
// none: RFC 9068 makes "aud" required.
type accessClaims struct {
	*jwt.JWTClaims
	defaultAudience string
}

func (c accessClaims) With(expiry time.Time, scope, audience []string) jwt.JWTClaimsContainer {
	if len(audience) == 0 && c.defaultAudience != "" {
		audience = []string{c.defaultAudience}
	}
	return c.JWTClaims.With(expiry, scope, audience)
}
