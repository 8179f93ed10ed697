package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"
)

// Compile-time proof that Store satisfies every storage interface fosite's
// composed handlers type-assert at start-up.
var (
	_ fosite.ClientManager               = (*Store)(nil)
	_ oauth2.CoreStorage                 = (*Store)(nil)
	_ oauth2.TokenRevocationStorage      = (*Store)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage            = (*Store)(nil)
	_ fositestorage.Transactional        = (*Store)(nil)
)

func (s *Store) createToken(ctx context.Context, kind, signature, accessSignature string, req fosite.Requester, exp time.Time) error {
	session, err := json.Marshal(req.GetSession())
	if err != nil {
		return fmt.Errorf("create %s: encode session: %w", kind, err)
	}
	row := tokenRow{
		Kind:            kind,
		Signature:       signature,
		RequestID:       req.GetID(),
		ClientID:        req.GetClient().GetID(),
		Active:          true,
		RequestedAt:     req.GetRequestedAt().UTC(),
		AccessSignature: accessSignature,
		Scopes:          nonNil(req.GetRequestedScopes()),
		GrantedScopes:   nonNil(req.GetGrantedScopes()),
		Audience:        nonNil(req.GetRequestedAudience()),
		GrantedAudience: nonNil(req.GetGrantedAudience()),
		Form:            req.GetRequestForm().Encode(),
		Session:         session,
		CreatedAt:       s.now().UTC(),
	}
	if sess := req.GetSession(); sess != nil {
		row.Subject = sess.GetSubject()
		if b, ok := sess.(interface{ GetBrowserSessionID() string }); ok {
			row.SessionID = b.GetBrowserSessionID()
		}
	}
	if !exp.IsZero() {
		e := exp.UTC()
		row.ExpiresAt = &e
	}
	return mapErr("create "+kind, s.conn(ctx).Create(&row).Error)
}

func nonNil(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}

// getToken loads a stored request and hydrates session from it. It returns
// the request even when the row is inactive, with active=false, because
// fosite needs the request to revoke what a replayed token issued.
//
// This is the hottest read (every introspection, userinfo and admin call),
// so it bypasses gorm's reflection with one hand-written query.
func (s *Store) getToken(ctx context.Context, kind, signature string, session fosite.Session) (*fosite.Request, bool, error) {
	var (
		requestID, clientID, form                      string
		scopes, granted, audience, grantedAud, payload []byte
		active                                         bool
		requestedAt                                    time.Time
	)
	var (
		userID           sql.NullString
		disabled         sql.NullBool
		created, expires sql.NullTime
	)
	err := s.conn(ctx).Statement.ConnPool.QueryRowContext(ctx, s.tokenQuery, kind, signature).
		Scan(&requestID, &clientID, &active, &requestedAt, &scopes, &granted, &audience, &grantedAud, &form, &payload,
			&userID, &disabled, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fositeErr(fmt.Errorf("get %s: %w", kind, ErrNotFound))
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %s: %w: %w", kind, ErrUnavailable, err)
	}
	if userID.Valid {
		var override *time.Time
		if expires.Valid {
			override = &expires.Time
		}
		end := s.accountExpiry(created.Time, override)
		if disabled.Bool || (!end.IsZero() && !s.now().Before(end)) {
			// Answered as an unknown token, not an inactive one: fosite
			// takes an inactive refresh token for a stolen one reused.
			return nil, false, fositeErr(fmt.Errorf("get %s: account disabled or expired: %w", kind, ErrNotFound))
		}
	}
	client, err := s.cachedClient(ctx, clientID)
	if err != nil {
		return nil, false, fositeErr(err)
	}
	req := &fosite.Request{ID: requestID, RequestedAt: requestedAt.UTC(), Client: client, Session: session}
	for _, f := range []struct {
		raw []byte
		dst *fosite.Arguments
	}{{scopes, &req.RequestedScope}, {granted, &req.GrantedScope}, {audience, &req.RequestedAudience}, {grantedAud, &req.GrantedAudience}} {
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return nil, false, fmt.Errorf("get %s: decode scopes: %w", kind, err)
		}
	}
	if session != nil && len(payload) > 0 {
		if err := json.Unmarshal(payload, session); err != nil {
			return nil, false, fmt.Errorf("get %s: decode session: %w", kind, err)
		}
	}
	if req.Form, err = url.ParseQuery(form); err != nil {
		return nil, false, fmt.Errorf("get %s: decode form: %w", kind, err)
	}
	return req, active, nil
}

func (s *Store) deleteToken(ctx context.Context, kind, signature string) error {
	return mapErr("delete "+kind, s.conn(ctx).Where("kind = ? AND signature = ?", kind, signature).Delete(&tokenRow{}).Error)
}

// consume flips one row from active to inactive. The WHERE active clause is
// what makes it single-use: under concurrent redemptions exactly one UPDATE
// matches (PostgreSQL re-checks it after the row lock is released; SQLite
// serialises writers), and the others see zero rows.
func (s *Store) consume(ctx context.Context, kind, signature string) error {
	res := s.conn(ctx).Model(&tokenRow{}).
		Where("kind = ? AND signature = ? AND active = ?", kind, signature, true).
		Update("active", false)
	if res.Error != nil {
		return mapErr("consume "+kind, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("consume %s: %w", kind, ErrAlreadyUsed)
	}
	return nil
}

func (s *Store) deactivateRequest(ctx context.Context, kind, requestID string) error {
	return mapErr("revoke "+kind, s.conn(ctx).Model(&tokenRow{}).
		Where("kind = ? AND request_id = ? AND active = ?", kind, requestID, true).
		Update("active", false).Error)
}

// fositeErr adds fosite.ErrNotFound to a not-found error so fosite's
// handlers recognise it, keeping our sentinel too.
func fositeErr(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	}
	return err
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindCode, signature, "", req, req.GetSession().GetExpiresAt(fosite.AuthorizeCode))
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getToken(ctx, kindCode, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. It
// fails with ErrAlreadyUsed when another request consumed the code first.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	if err := s.consume(ctx, kindCode, signature); err != nil {
		return fmt.Errorf("%w: %w", err, fosite.ErrInvalidatedAuthorizeCode)
	}
	return nil
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindAccess, signature, "", req, req.GetSession().GetExpiresAt(fosite.AccessToken))
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage; a revoked token
// is fosite.ErrInactiveToken.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getToken(ctx, kindAccess, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	return s.createToken(ctx, kindRefresh, signature, accessSignature, req, req.GetSession().GetExpiresAt(fosite.RefreshToken))
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage; a used or
// revoked token is fosite.ErrInactiveToken, which fosite treats as reuse.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getToken(ctx, kindRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindRefresh, signature)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: it consumes the
// presented refresh token (ErrAlreadyUsed if a concurrent request won) and
// revokes the access tokens issued alongside it.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	if err := s.consume(ctx, kindRefresh, signature); err != nil {
		return fmt.Errorf("%w: %w", err, fosite.ErrInactiveToken)
	}
	return s.deactivateRequest(ctx, kindAccess, requestID)
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.deactivateRequest(ctx, kindRefresh, requestID)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.deactivateRequest(ctx, kindAccess, requestID)
}

// RevokeFamily revokes every access and refresh token of one grant (one
// login and all its refreshes share the request id).
func (s *Store) RevokeFamily(ctx context.Context, requestID string) error {
	return mapErr("revoke family", s.conn(ctx).Model(&tokenRow{}).
		Where("request_id = ? AND kind IN ? AND active = ?", requestID, []string{kindAccess, kindRefresh}, true).
		Update("active", false).Error)
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindPKCE, signature, "", req, req.GetSession().GetExpiresAt(fosite.AuthorizeCode))
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.getToken(ctx, kindPKCE, signature, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindPKCE, signature)
}

// oidcKey hashes the raw authorization code fosite hands the OIDC handler, so
// that, like every other token, it is never stored in the clear.
func oidcKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, req fosite.Requester) error {
	return s.createToken(ctx, kindOIDC, oidcKey(code), "", req, req.GetSession().GetExpiresAt(fosite.AuthorizeCode))
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, requester fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.getToken(ctx, kindOIDC, oidcKey(code), requester.GetSession())
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.deleteToken(ctx, kindOIDC, oidcKey(code))
}

// DeleteExpiredTokens removes token rows that expired before cutoff; they
// can no longer be used, so keeping them only grows the table.
func (s *Store) DeleteExpiredTokens(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.conn(ctx).Where("expires_at IS NOT NULL AND expires_at < ?", cutoff.UTC()).Delete(&tokenRow{})
	return res.RowsAffected, mapErr("delete expired tokens", res.Error)
}

// TokenFilter selects access and refresh tokens to revoke. Empty fields
// match everything; an all-empty filter revokes every token.
type TokenFilter struct {
	ClientID  string
	Subject   string
	SessionID string
	// ExceptSessionID, when set, spares the tokens issued under that
	// browser session: a password change ends everything but the session
	// it was made from.
	ExceptSessionID string
	// IssuedBefore, when set, limits the match to tokens issued before it.
	IssuedBefore time.Time
}

// RevokeTokens deactivates every access and refresh token matching f and
// reports how many it deactivated.
func (s *Store) RevokeTokens(ctx context.Context, f TokenFilter) (int64, error) {
	q := s.conn(ctx).Model(&tokenRow{}).Where("kind IN ? AND active = ?", []string{kindAccess, kindRefresh}, true)
	if f.ClientID != "" {
		q = q.Where("client_id = ?", f.ClientID)
	}
	if f.Subject != "" {
		q = q.Where("subject = ?", f.Subject)
	}
	if f.SessionID != "" {
		q = q.Where("session_id = ?", f.SessionID)
	}
	if f.ExceptSessionID != "" {
		q = q.Where("session_id <> ?", f.ExceptSessionID)
	}
	if !f.IssuedBefore.IsZero() {
		q = q.Where("created_at < ?", f.IssuedBefore.UTC())
	}
	res := q.Update("active", false)
	return res.RowsAffected, mapErr("revoke tokens", res.Error)
}
