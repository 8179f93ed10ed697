package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/portcullis/portcullis/storage"
)

// The fosite cases call the store only through fosite's own interfaces, the
// way its handlers do, so a signature or semantics drift shows here first.
func fositeCases() []suiteCase {
	return []suiteCase{
		{"Fosite/AuthorizeCode", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var st oauth2.AuthorizeCodeStorage = s
			req := newRequest(createClient(t, s, "app"), "req-1", "u1", clk.Now())
			must(t, "CreateAuthorizeCodeSession", st.CreateAuthorizeCodeSession(ctx, "code-sig", req))

			got, err := st.GetAuthorizeCodeSession(ctx, "code-sig", &openid.DefaultSession{})
			must(t, "GetAuthorizeCodeSession", err)
			checkRequest(t, req, got)

			must(t, "InvalidateAuthorizeCodeSession", st.InvalidateAuthorizeCodeSession(ctx, "code-sig"))
			// fosite needs the request of a replayed code to revoke what it
			// issued, so both the request and the error come back.
			got, err = st.GetAuthorizeCodeSession(ctx, "code-sig", &openid.DefaultSession{})
			wantErr(t, "GetAuthorizeCodeSession after invalidate", err, fosite.ErrInvalidatedAuthorizeCode)
			if got == nil || got.GetID() != "req-1" {
				t.Errorf("GetAuthorizeCodeSession after invalidate returned request %v, want req-1", got)
			}
			wantErr(t, "second InvalidateAuthorizeCodeSession", st.InvalidateAuthorizeCodeSession(ctx, "code-sig"), storage.ErrAlreadyUsed)
		}},
		{"Fosite/AccessToken", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var st oauth2.AccessTokenStorage = s
			var rev oauth2.TokenRevocationStorage = s
			app := createClient(t, s, "app")
			req := newRequest(app, "req-1", "u1", clk.Now())
			must(t, "CreateAccessTokenSession", st.CreateAccessTokenSession(ctx, "at-1", req))
			must(t, "CreateAccessTokenSession same request", st.CreateAccessTokenSession(ctx, "at-2", req))
			must(t, "CreateAccessTokenSession other request", st.CreateAccessTokenSession(ctx, "at-other", newRequest(app, "req-2", "u1", clk.Now())))

			got, err := st.GetAccessTokenSession(ctx, "at-1", &openid.DefaultSession{})
			must(t, "GetAccessTokenSession", err)
			checkRequest(t, req, got)

			must(t, "DeleteAccessTokenSession", st.DeleteAccessTokenSession(ctx, "at-1"))
			_, err = st.GetAccessTokenSession(ctx, "at-1", &openid.DefaultSession{})
			wantErr(t, "GetAccessTokenSession after delete", err, fosite.ErrNotFound)

			must(t, "RevokeAccessToken", rev.RevokeAccessToken(ctx, "req-1"))
			got, err = st.GetAccessTokenSession(ctx, "at-2", &openid.DefaultSession{})
			wantErr(t, "GetAccessTokenSession after revoke", err, fosite.ErrInactiveToken)
			if got == nil || got.GetID() != "req-1" {
				t.Errorf("revoked access token returned request %v, want req-1 (introspection reports it inactive)", got)
			}
			_, err = st.GetAccessTokenSession(ctx, "at-other", &openid.DefaultSession{})
			must(t, "another request's access token stays active", err)
		}},
		{"Fosite/RefreshToken", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var st oauth2.RefreshTokenStorage = s
			var at oauth2.AccessTokenStorage = s
			app := createClient(t, s, "app")
			req := newRequest(app, "req-1", "u1", clk.Now())
			must(t, "CreateAccessTokenSession", at.CreateAccessTokenSession(ctx, "at-1", req))
			must(t, "CreateRefreshTokenSession", st.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req))
			must(t, "CreateAccessTokenSession other request", at.CreateAccessTokenSession(ctx, "at-other", newRequest(app, "req-2", "u1", clk.Now())))

			got, err := st.GetRefreshTokenSession(ctx, "rt-1", &openid.DefaultSession{})
			must(t, "GetRefreshTokenSession", err)
			checkRequest(t, req, got)

			// fosite's revocation handler looks tokens up with a nil session.
			got, err = st.GetRefreshTokenSession(ctx, "rt-1", nil)
			must(t, "GetRefreshTokenSession(nil session)", err)
			if got.GetID() != "req-1" {
				t.Errorf("GetRefreshTokenSession(nil session) id = %q, want req-1", got.GetID())
			}
			got, err = at.GetAccessTokenSession(ctx, "at-1", nil)
			must(t, "GetAccessTokenSession(nil session)", err)
			if got.GetID() != "req-1" {
				t.Errorf("GetAccessTokenSession(nil session) id = %q, want req-1", got.GetID())
			}

			must(t, "RotateRefreshToken", st.RotateRefreshToken(ctx, "req-1", "rt-1"))
			got, err = st.GetRefreshTokenSession(ctx, "rt-1", &openid.DefaultSession{})
			wantErr(t, "GetRefreshTokenSession after rotate", err, fosite.ErrInactiveToken)
			if got == nil || got.GetID() != "req-1" {
				t.Errorf("rotated refresh token returned request %v, want req-1 (reuse detection needs it)", got)
			}
			_, err = at.GetAccessTokenSession(ctx, "at-1", &openid.DefaultSession{})
			wantErr(t, "access token of the rotated grant", err, fosite.ErrInactiveToken)
			_, err = at.GetAccessTokenSession(ctx, "at-other", &openid.DefaultSession{})
			must(t, "another request's access token stays active", err)
			wantErr(t, "second RotateRefreshToken", st.RotateRefreshToken(ctx, "req-1", "rt-1"), storage.ErrAlreadyUsed)

			must(t, "DeleteRefreshTokenSession", st.DeleteRefreshTokenSession(ctx, "rt-1"))
			_, err = st.GetRefreshTokenSession(ctx, "rt-1", &openid.DefaultSession{})
			wantErr(t, "GetRefreshTokenSession after delete", err, fosite.ErrNotFound)
		}},
		{"Fosite/RevokeRefreshToken", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var rev oauth2.TokenRevocationStorage = s
			app := createClient(t, s, "app")
			must(t, "create refresh", s.CreateRefreshTokenSession(ctx, "rt-1", "", newRequest(app, "req-1", "u1", clk.Now())))
			must(t, "create other refresh", s.CreateRefreshTokenSession(ctx, "rt-2", "", newRequest(app, "req-2", "u1", clk.Now())))
			must(t, "RevokeRefreshToken", rev.RevokeRefreshToken(ctx, "req-1"))
			_, err := s.GetRefreshTokenSession(ctx, "rt-1", &openid.DefaultSession{})
			wantErr(t, "revoked refresh token", err, fosite.ErrInactiveToken)
			_, err = s.GetRefreshTokenSession(ctx, "rt-2", &openid.DefaultSession{})
			must(t, "another request's refresh token stays active", err)
		}},
		{"Fosite/RevokeFamily", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			app := createClient(t, s, "app")
			family := newRequest(app, "req-family", "u1", clk.Now())
			other := newRequest(app, "req-other", "u1", clk.Now())
			must(t, "create at-1", s.CreateAccessTokenSession(ctx, "at-1", family))
			must(t, "create rt-1", s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", family))
			must(t, "create at-2", s.CreateAccessTokenSession(ctx, "at-2", family))
			must(t, "create rt-2", s.CreateRefreshTokenSession(ctx, "rt-2", "at-2", family))
			must(t, "create at-other", s.CreateAccessTokenSession(ctx, "at-other", other))
			must(t, "create rt-other", s.CreateRefreshTokenSession(ctx, "rt-other", "at-other", other))

			must(t, "RevokeFamily", s.RevokeFamily(ctx, "req-family"))
			for _, sig := range []string{"at-1", "at-2"} {
				_, err := s.GetAccessTokenSession(ctx, sig, &openid.DefaultSession{})
				wantErr(t, "family access token "+sig, err, fosite.ErrInactiveToken)
			}
			for _, sig := range []string{"rt-1", "rt-2"} {
				_, err := s.GetRefreshTokenSession(ctx, sig, &openid.DefaultSession{})
				wantErr(t, "family refresh token "+sig, err, fosite.ErrInactiveToken)
			}
			_, err := s.GetAccessTokenSession(ctx, "at-other", &openid.DefaultSession{})
			must(t, "other grant's access token", err)
			_, err = s.GetRefreshTokenSession(ctx, "rt-other", &openid.DefaultSession{})
			must(t, "other grant's refresh token", err)
		}},
		{"Fosite/PKCE", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var st pkce.PKCERequestStorage = s
			req := newRequest(createClient(t, s, "app"), "req-1", "u1", clk.Now())
			req.Form.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
			req.Form.Set("code_challenge_method", "S256")
			must(t, "CreatePKCERequestSession", st.CreatePKCERequestSession(ctx, "code-sig", req))
			got, err := st.GetPKCERequestSession(ctx, "code-sig", &openid.DefaultSession{})
			must(t, "GetPKCERequestSession", err)
			checkRequest(t, req, got)
			must(t, "DeletePKCERequestSession", st.DeletePKCERequestSession(ctx, "code-sig"))
			_, err = st.GetPKCERequestSession(ctx, "code-sig", &openid.DefaultSession{})
			wantErr(t, "GetPKCERequestSession after delete", err, fosite.ErrNotFound)
		}},
		{"Fosite/OpenIDConnect", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var st openid.OpenIDConnectRequestStorage = s
			app := createClient(t, s, "app")
			req := newRequest(app, "req-1", "u1", clk.Now())
			must(t, "CreateOpenIDConnectSession", st.CreateOpenIDConnectSession(ctx, "raw-code.sig", req))

			// fosite passes the token request, whose session it wants filled.
			tokenReq := fosite.NewAccessRequest(&openid.DefaultSession{})
			got, err := st.GetOpenIDConnectSession(ctx, "raw-code.sig", tokenReq)
			must(t, "GetOpenIDConnectSession", err)
			checkRequest(t, req, got)

			must(t, "DeleteOpenIDConnectSession", st.DeleteOpenIDConnectSession(ctx, "raw-code.sig"))
			_, err = st.GetOpenIDConnectSession(ctx, "raw-code.sig", fosite.NewAccessRequest(&openid.DefaultSession{}))
			// The explicit flow treats exactly this error as "no openid scope
			// was asked for"; anything else is a server error.
			wantErr(t, "GetOpenIDConnectSession after delete", err, openid.ErrNoSessionFound)
		}},
		{"Fosite/MissingTokensAreNotFound", func(t *testing.T, s *storage.Store, _ *Clock) {
			ctx := t.Context()
			createClient(t, s, "app")
			for _, tc := range []struct {
				name string
				get  func() (fosite.Requester, error)
			}{
				{"authorize code", func() (fosite.Requester, error) {
					return s.GetAuthorizeCodeSession(ctx, "missing", &openid.DefaultSession{})
				}},
				{"access token", func() (fosite.Requester, error) {
					return s.GetAccessTokenSession(ctx, "missing", &openid.DefaultSession{})
				}},
				{"refresh token", func() (fosite.Requester, error) {
					return s.GetRefreshTokenSession(ctx, "missing", &openid.DefaultSession{})
				}},
				{"pkce", func() (fosite.Requester, error) {
					return s.GetPKCERequestSession(ctx, "missing", &openid.DefaultSession{})
				}},
				{"openid", func() (fosite.Requester, error) {
					return s.GetOpenIDConnectSession(ctx, "missing", fosite.NewAccessRequest(&openid.DefaultSession{}))
				}},
			} {
				req, err := tc.get()
				wantErr(t, tc.name, err, fosite.ErrNotFound, storage.ErrNotFound)
				if req != nil {
					t.Errorf("%s: missing token returned request %v", tc.name, req)
				}
			}
			// Deleting what is not there is not an error: fosite deletes
			// optimistically.
			must(t, "DeleteAccessTokenSession(missing)", s.DeleteAccessTokenSession(ctx, "missing"))
			must(t, "DeleteRefreshTokenSession(missing)", s.DeleteRefreshTokenSession(ctx, "missing"))
		}},
		{"Fosite/UnknownClientIsNotFound", func(t *testing.T, s *storage.Store, clk *Clock) {
			ghost := &storage.Client{ID: "ghost"}
			err := s.CreateAccessTokenSession(t.Context(), "at-1", newRequest(ghost, "req-1", "u1", clk.Now()))
			wantErr(t, "CreateAccessTokenSession for an unregistered client", err, storage.ErrNotFound)
		}},
		{"Fosite/ClientAssertionJWT", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var cm fosite.ClientManager = s
			must(t, "ClientAssertionJWTValid(new)", cm.ClientAssertionJWTValid(ctx, "jti-1"))
			must(t, "SetClientAssertionJWT", cm.SetClientAssertionJWT(ctx, "jti-1", clk.Now().Add(time.Minute)))
			wantErr(t, "ClientAssertionJWTValid(replayed)", cm.ClientAssertionJWTValid(ctx, "jti-1"), fosite.ErrJTIKnown)
			wantErr(t, "SetClientAssertionJWT(replayed)", cm.SetClientAssertionJWT(ctx, "jti-1", clk.Now().Add(time.Minute)), fosite.ErrJTIKnown)
			must(t, "ClientAssertionJWTValid(other)", cm.ClientAssertionJWTValid(ctx, "jti-2"))

			// Once the assertion has expired it cannot be replayed anyway, so
			// its JTI is forgotten.
			clk.Advance(time.Minute)
			must(t, "ClientAssertionJWTValid(expired)", cm.ClientAssertionJWTValid(ctx, "jti-1"))
			must(t, "SetClientAssertionJWT(expired)", cm.SetClientAssertionJWT(ctx, "jti-1", clk.Now().Add(time.Minute)))
			wantErr(t, "ClientAssertionJWTValid(re-recorded)", cm.ClientAssertionJWTValid(ctx, "jti-1"), fosite.ErrJTIKnown)
		}},
		{"Fosite/DeleteExpiredTokens", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			app := createClient(t, s, "app")
			req := newRequest(app, "req-1", "u1", clk.Now()) // code 10m, access 1h, refresh 30d
			must(t, "create code", s.CreateAuthorizeCodeSession(ctx, "code-1", req))
			must(t, "create pkce", s.CreatePKCERequestSession(ctx, "code-1", req))
			must(t, "create access", s.CreateAccessTokenSession(ctx, "at-1", req))
			must(t, "create refresh", s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req))
			forever := newRequest(app, "req-2", "u1", clk.Now())
			forever.Session.(*openid.DefaultSession).ExpiresAt = nil
			must(t, "create access without expiry", s.CreateAccessTokenSession(ctx, "at-forever", forever))

			n, err := s.DeleteExpiredTokens(ctx, clk.Now().Add(2*time.Hour))
			must(t, "DeleteExpiredTokens", err)
			if n != 3 {
				t.Errorf("DeleteExpiredTokens deleted %d rows, want 3 (code, pkce, access)", n)
			}
			_, err = s.GetAuthorizeCodeSession(ctx, "code-1", &openid.DefaultSession{})
			wantErr(t, "expired code", err, fosite.ErrNotFound)
			_, err = s.GetAccessTokenSession(ctx, "at-1", &openid.DefaultSession{})
			wantErr(t, "expired access token", err, fosite.ErrNotFound)
			_, err = s.GetRefreshTokenSession(ctx, "rt-1", &openid.DefaultSession{})
			must(t, "unexpired refresh token", err)
			_, err = s.GetAccessTokenSession(ctx, "at-forever", &openid.DefaultSession{})
			must(t, "token without expiry", err)
		}},
	}
}

func transactionCases() []suiteCase {
	return []suiteCase{
		{"Transactions/RollbackAndCommit", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			var tx fositestorage.Transactional = s
			app := createClient(t, s, "app")
			visible := func(sig string) bool {
				t.Helper()
				_, err := s.GetAccessTokenSession(ctx, sig, &openid.DefaultSession{})
				if err != nil && !errorsIsNotFound(err) {
					t.Fatalf("GetAccessTokenSession(%s): %v", sig, err)
				}
				return err == nil
			}

			txCtx, err := tx.BeginTX(ctx)
			must(t, "BeginTX", err)
			must(t, "create in tx", s.CreateAccessTokenSession(txCtx, "at-rolled-back", newRequest(app, "req-1", "u1", clk.Now())))
			if _, err := s.GetAccessTokenSession(txCtx, "at-rolled-back", &openid.DefaultSession{}); err != nil {
				t.Errorf("own uncommitted write invisible inside the transaction: %v", err)
			}
			if visible("at-rolled-back") {
				t.Error("uncommitted write visible outside the transaction")
			}
			must(t, "Rollback", tx.Rollback(txCtx))
			if visible("at-rolled-back") {
				t.Error("rolled-back write is visible")
			}

			txCtx, err = tx.BeginTX(ctx)
			must(t, "BeginTX", err)
			must(t, "create in tx", s.CreateAccessTokenSession(txCtx, "at-committed", newRequest(app, "req-2", "u1", clk.Now())))
			must(t, "Commit", tx.Commit(txCtx))
			if !visible("at-committed") {
				t.Error("committed write is invisible")
			}

			if err := tx.Commit(ctx); err == nil {
				t.Error("Commit without a transaction succeeded")
			}
		}},
		{"Transactions/MethodsJoinTheCallersTransaction", func(t *testing.T, s *storage.Store, clk *Clock) {
			// Methods that need several statements (GrantConsent, DeleteUser)
			// must run inside the caller's transaction, not beside it: beside
			// it they commit on their own, and on SQLite they wait for the
			// caller's write lock until the busy timeout.
			ctx := t.Context()
			createClient(t, s, "app")
			createUser(t, s, "u1", "alice")

			txCtx, err := s.BeginTX(ctx)
			must(t, "BeginTX", err)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if err := s.GrantConsent(txCtx, "u1", "app", []string{"openid"}); err != nil {
					t.Errorf("GrantConsent in tx: %v", err)
				}
				if err := s.DeleteUser(txCtx, "u1"); err != nil {
					t.Errorf("DeleteUser in tx: %v", err)
				}
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				// Roll back so the blocked statements return and the test
				// can end.
				_ = s.Rollback(txCtx)
				<-done
				t.Fatal("GrantConsent/DeleteUser inside a transaction blocked on the transaction itself")
			}
			must(t, "Rollback", s.Rollback(txCtx))

			if _, err := s.User(ctx, "u1"); err != nil {
				t.Errorf("user deleted by a rolled-back transaction: %v", err)
			}
			if _, err := s.Consent(ctx, "u1", "app"); !errorsIsNotFound(err) {
				t.Errorf("consent granted by a rolled-back transaction: err = %v", err)
			}

			must(t, "InTx", s.InTx(ctx, func(ctx context.Context) error {
				return s.GrantConsent(ctx, "u1", "app", []string{"openid"})
			}))
			if _, err := s.Consent(ctx, "u1", "app"); err != nil {
				t.Errorf("consent granted in a committed InTx: %v", err)
			}
		}},
	}
}

func errorsIsNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
