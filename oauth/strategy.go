package oauth

import (
	"context"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

// Opaque token prefixes make leaked tokens recognisable to secret scanners
// and tell the strategy which kind of token it was handed.
const (
	prefixAccess  = "pc_at_"
	prefixRefresh = "pc_rt_"
	prefixCode    = "pc_ac_"
)

// tokenStrategy issues opaque HMAC tokens, or RFC 9068 JWT access tokens for
// clients that ask for them, and judges expiry by the injected clock rather
// than fosite's wall-clock checks.
type tokenStrategy struct {
	hmac      *hmac.HMACStrategy
	jwt       *oauth2.DefaultJWTStrategy
	policies  PolicySource
	codeTTL   time.Duration
	accessTTL time.Duration
	now       func() time.Time
}

var _ oauth2.CoreStrategy = (*tokenStrategy)(nil)

func (s *tokenStrategy) wantsJWT(r fosite.Requester) bool {
	type formatter interface{ GetAccessTokenFormat() string }
	if c, ok := r.GetClient().(formatter); ok {
		switch c.GetAccessTokenFormat() {
		case "jwt":
			return true
		case "opaque":
			return false
		}
	}
	return s.policies.For(r.GetClient().GetID()).Token.Format == "jwt"
}

func (s *tokenStrategy) generate(ctx context.Context, prefix string) (string, string, error) {
	token, sig, err := s.hmac.Generate(ctx)
	if err != nil {
		return "", "", err
	}
	return prefix + token, sig, nil
}

func (s *tokenStrategy) signature(token, prefix string) string {
	return s.hmac.Signature(strings.TrimPrefix(token, prefix))
}

func (s *tokenStrategy) validateOpaque(ctx context.Context, token, prefix string) error {
	if !strings.HasPrefix(token, prefix) {
		return fosite.ErrInvalidTokenFormat
	}
	return s.hmac.Validate(ctx, strings.TrimPrefix(token, prefix))
}

// expired checks exp (or, when unset, issue time plus ttl) against the
// injected clock.
func (s *tokenStrategy) expired(r fosite.Requester, tt fosite.TokenType, ttl time.Duration) error {
	exp := r.GetSession().GetExpiresAt(tt)
	if exp.IsZero() {
		if ttl <= 0 {
			return nil
		}
		exp = r.GetRequestedAt().Add(ttl)
	}
	if !s.now().UTC().Before(exp) {
		return fosite.ErrTokenExpired.WithHintf("The %s expired at %s.", strings.ReplaceAll(string(tt), "_", " "), exp.UTC().Format(time.RFC3339))
	}
	return nil
}

// AccessTokenSignature implements oauth2.AccessTokenStrategy.
func (s *tokenStrategy) AccessTokenSignature(ctx context.Context, token string) string {
	if strings.HasPrefix(token, prefixAccess) {
		return s.signature(token, prefixAccess)
	}
	return s.jwt.AccessTokenSignature(ctx, token)
}

// GenerateAccessToken implements oauth2.AccessTokenStrategy.
func (s *tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	if s.wantsJWT(r) {
		return s.jwt.GenerateAccessToken(ctx, r)
	}
	return s.generate(ctx, prefixAccess)
}

// ValidateAccessToken implements oauth2.AccessTokenStrategy.
func (s *tokenStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if err := s.expired(r, fosite.AccessToken, s.accessTTL); err != nil {
		return err
	}
	if strings.HasPrefix(token, prefixAccess) {
		return s.validateOpaque(ctx, token, prefixAccess)
	}
	return s.jwt.ValidateAccessToken(ctx, r, token)
}

// RefreshTokenSignature implements oauth2.RefreshTokenStrategy.
func (s *tokenStrategy) RefreshTokenSignature(_ context.Context, token string) string {
	return s.signature(token, prefixRefresh)
}

// GenerateRefreshToken implements oauth2.RefreshTokenStrategy.
func (s *tokenStrategy) GenerateRefreshToken(ctx context.Context, _ fosite.Requester) (string, string, error) {
	return s.generate(ctx, prefixRefresh)
}

// ValidateRefreshToken implements oauth2.RefreshTokenStrategy. A zero
// expiry means the refresh token does not expire on its own.
func (s *tokenStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	if err := s.expired(r, fosite.RefreshToken, 0); err != nil {
		return err
	}
	return s.validateOpaque(ctx, token, prefixRefresh)
}

// AuthorizeCodeSignature implements oauth2.AuthorizeCodeStrategy.
func (s *tokenStrategy) AuthorizeCodeSignature(_ context.Context, token string) string {
	return s.signature(token, prefixCode)
}

// GenerateAuthorizeCode implements oauth2.AuthorizeCodeStrategy.
func (s *tokenStrategy) GenerateAuthorizeCode(ctx context.Context, _ fosite.Requester) (string, string, error) {
	return s.generate(ctx, prefixCode)
}

// ValidateAuthorizeCode implements oauth2.AuthorizeCodeStrategy.
func (s *tokenStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	if err := s.expired(r, fosite.AuthorizeCode, s.codeTTL); err != nil {
		return err
	}
	return s.validateOpaque(ctx, token, prefixCode)
}
