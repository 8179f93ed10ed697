package storagetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/portcullis/portcullis/storage"
)

func migrationCases() []suiteCase {
	return []suiteCase{
		{"Migrations/Idempotent", func(t *testing.T, s *storage.Store, _ *Clock) {
			// open has migrated once already; a second run (another instance
			// starting, or `portcullis migrate` twice) must be a no-op.
			n, err := s.Migrate(t.Context())
			must(t, "second Migrate", err)
			if n != 0 {
				t.Errorf("second Migrate applied %d migrations, want 0", n)
			}
			v, err := s.MigrationVersion(t.Context())
			must(t, "MigrationVersion", err)
			if v <= 0 {
				t.Errorf("MigrationVersion = %d, want > 0", v)
			}
		}},
	}
}

func clientCases() []suiteCase {
	return []suiteCase{
		{"Clients/CreateGet", func(t *testing.T, s *storage.Store, clk *Clock) {
			want := &storage.Client{
				ID:                      "app",
				Name:                    "App",
				SecretHash:              "$argon2id$hash",
				RedirectURIs:            []string{"https://app.test/cb", "https://app.test/cb2"},
				GrantTypes:              []string{"authorization_code"},
				Scopes:                  []string{"openid"},
				TokenEndpointAuthMethod: "client_secret_post",
				AccessTokenFormat:       "jwt",
				SkipConsent:             true,
			}
			must(t, "CreateClient", s.CreateClient(t.Context(), want))
			got, err := s.Client(t.Context(), "app")
			must(t, "Client", err)
			if got.Name != want.Name || got.SecretHash != want.SecretHash || !got.SkipConsent || got.Public ||
				got.TokenEndpointAuthMethod != want.TokenEndpointAuthMethod || got.AccessTokenFormat != "jwt" {
				t.Errorf("Client = %+v, want %+v", got, want)
			}
			if !slices.Equal(got.RedirectURIs, want.RedirectURIs) || !slices.Equal(got.GrantTypes, want.GrantTypes) {
				t.Errorf("Client lists = %q %q, want %q %q", got.RedirectURIs, got.GrantTypes, want.RedirectURIs, want.GrantTypes)
			}
			// Unset lists come back empty, not nil, so JSON renders [] not null.
			if got.Audience == nil || len(got.Audience) != 0 || got.PostLogoutRedirectURIs == nil {
				t.Errorf("unset lists = %#v %#v, want empty", got.Audience, got.PostLogoutRedirectURIs)
			}
			if !got.CreatedAt.Equal(clk.Now()) || !got.UpdatedAt.Equal(clk.Now()) {
				t.Errorf("created/updated = %v/%v, want the store clock %v", got.CreatedAt, got.UpdatedAt, clk.Now())
			}
		}},
		{"Clients/DuplicateIDConflicts", func(t *testing.T, s *storage.Store, _ *Clock) {
			createClient(t, s, "app")
			err := s.CreateClient(t.Context(), &storage.Client{ID: "app", Name: "other"})
			wantErr(t, "second CreateClient", err, storage.ErrConflict)
			got, err := s.Client(t.Context(), "app")
			must(t, "Client", err)
			if got.Name != "Client app" {
				t.Errorf("refused write changed the client: name = %q", got.Name)
			}
		}},
		{"Clients/ListPaginates", func(t *testing.T, s *storage.Store, _ *Clock) {
			for _, id := range []string{"c3", "c1", "c5", "c2", "c4"} {
				createClient(t, s, id)
			}
			for _, tc := range []struct {
				after string
				limit int
				want  []string
			}{
				{"", 2, []string{"c1", "c2"}},
				{"c2", 2, []string{"c3", "c4"}},
				{"c4", 2, []string{"c5"}},
				{"c5", 2, nil},
				{"", 10, []string{"c1", "c2", "c3", "c4", "c5"}},
				{"c0", 1, []string{"c1"}},
			} {
				got, err := s.ListClients(t.Context(), tc.after, tc.limit)
				must(t, "ListClients", err)
				var ids []string
				for _, c := range got {
					ids = append(ids, c.ID)
				}
				if !slices.Equal(ids, tc.want) {
					t.Errorf("ListClients(after %q, limit %d) = %q, want %q", tc.after, tc.limit, ids, tc.want)
				}
			}
		}},
		{"Clients/Delete", func(t *testing.T, s *storage.Store, _ *Clock) {
			createClient(t, s, "app")
			must(t, "DeleteClient", s.DeleteClient(t.Context(), "app"))
			wantErr(t, "second DeleteClient", s.DeleteClient(t.Context(), "app"), storage.ErrNotFound)
			_, err := s.Client(t.Context(), "app")
			wantErr(t, "Client after delete", err, storage.ErrNotFound)
		}},
		{"Clients/FositeGetClient", func(t *testing.T, s *storage.Store, _ *Clock) {
			createClient(t, s, "app")
			c, err := s.GetClient(t.Context(), "app")
			must(t, "GetClient", err)
			oc, ok := c.(fosite.OpenIDConnectClient)
			if !ok {
				t.Fatalf("GetClient returned %T, which is not a fosite.OpenIDConnectClient", c)
			}
			if c.GetID() != "app" || string(c.GetHashedSecret()) != "$argon2id$placeholder" ||
				!c.GetGrantTypes().Has("refresh_token") || oc.GetTokenEndpointAuthMethod() != "client_secret_basic" {
				t.Errorf("GetClient = %+v", c)
			}

			_, err = s.GetClient(t.Context(), "missing")
			// fosite's handlers test for fosite.ErrNotFound; our callers for ours.
			wantErr(t, "GetClient(missing)", err, fosite.ErrNotFound, storage.ErrNotFound)
		}},
		{"Clients/DeleteCascadesToTokensAndConsents", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			app := createClient(t, s, "app")
			other := createClient(t, s, "other")
			createUser(t, s, "u1", "alice")
			req := newRequest(app, "req-app", "u1", clk.Now())
			must(t, "create code", s.CreateAuthorizeCodeSession(ctx, "code-app", req))
			must(t, "create access", s.CreateAccessTokenSession(ctx, "at-app", req))
			must(t, "create refresh", s.CreateRefreshTokenSession(ctx, "rt-app", "at-app", req))
			must(t, "grant consent", s.GrantConsent(ctx, "u1", "app", []string{"openid"}))
			must(t, "create other access", s.CreateAccessTokenSession(ctx, "at-other", newRequest(other, "req-other", "u1", clk.Now())))

			must(t, "DeleteClient", s.DeleteClient(ctx, "app"))

			_, err := s.GetAuthorizeCodeSession(ctx, "code-app", &openid.DefaultSession{})
			wantErr(t, "code of deleted client", err, fosite.ErrNotFound)
			_, err = s.GetAccessTokenSession(ctx, "at-app", &openid.DefaultSession{})
			wantErr(t, "access token of deleted client", err, fosite.ErrNotFound)
			_, err = s.GetRefreshTokenSession(ctx, "rt-app", &openid.DefaultSession{})
			wantErr(t, "refresh token of deleted client", err, fosite.ErrNotFound)
			_, err = s.Consent(ctx, "u1", "app")
			wantErr(t, "consent for deleted client", err, storage.ErrNotFound)
			_, err = s.GetAccessTokenSession(ctx, "at-other", &openid.DefaultSession{})
			must(t, "another client's token survives", err)
		}},
	}
}

func userCases() []suiteCase {
	return []suiteCase{
		{"Users/CreateGet", func(t *testing.T, s *storage.Store, clk *Clock) {
			u := createUser(t, s, "u1", "  Alice ")
			if u.Username != "alice" {
				t.Errorf("CreateUser left Username = %q, want the canonical %q", u.Username, "alice")
			}
			got, err := s.User(t.Context(), "u1")
			must(t, "User", err)
			if got.Username != "alice" || got.Email != "u1@example.test" || got.PasswordHash != "$argon2id$u1" || !got.CreatedAt.Equal(clk.Now()) {
				t.Errorf("User = %+v", got)
			}
			_, err = s.User(t.Context(), "missing")
			wantErr(t, "User(missing)", err, storage.ErrNotFound)
		}},
		{"Users/CanonicalUsernameConflicts", func(t *testing.T, s *storage.Store, _ *Clock) {
			createUser(t, s, "u1", " Alice ")
			for _, tc := range []struct{ id, username string }{
				{"u2", "alice"},
				{"u3", "ALICE"},
				{"u4", "\talice\n"},
				{"u1", "someone-else"}, // same id
			} {
				err := s.CreateUser(t.Context(), &storage.User{ID: tc.id, Username: tc.username})
				wantErr(t, "CreateUser("+tc.id+", "+tc.username+")", err, storage.ErrConflict)
			}
		}},
		{"Users/ByUsernameIgnoresCase", func(t *testing.T, s *storage.Store, _ *Clock) {
			createUser(t, s, "u1", "Alice")
			createUser(t, s, "u2", "bob")
			for _, tc := range []struct{ username, wantID string }{
				{"alice", "u1"},
				{"ALICE", "u1"},
				{" Alice ", "u1"},
				{"Bob", "u2"},
				{"carol", ""},
			} {
				u, err := s.UserByUsername(t.Context(), tc.username)
				if tc.wantID == "" {
					wantErr(t, "UserByUsername("+tc.username+")", err, storage.ErrNotFound)
					continue
				}
				if err != nil || u.ID != tc.wantID {
					t.Errorf("UserByUsername(%q) = %v, %v; want user %s", tc.username, u, err, tc.wantID)
				}
			}
		}},
		{"Users/UpdatePasswordHash", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			clk.Advance(time.Minute)
			must(t, "UpdatePasswordHash", s.UpdatePasswordHash(t.Context(), "u1", "$argon2id$new"))
			u, err := s.User(t.Context(), "u1")
			must(t, "User", err)
			if u.PasswordHash != "$argon2id$new" || !u.UpdatedAt.Equal(clk.Now()) {
				t.Errorf("after update: hash %q updated %v, want %q at %v", u.PasswordHash, u.UpdatedAt, "$argon2id$new", clk.Now())
			}
			wantErr(t, "UpdatePasswordHash(missing)", s.UpdatePasswordHash(t.Context(), "missing", "x"), storage.ErrNotFound)
		}},
		{"Users/ListPaginates", func(t *testing.T, s *storage.Store, _ *Clock) {
			for _, id := range []string{"u3", "u1", "u2"} {
				createUser(t, s, id, "name-"+id)
			}
			first, err := s.ListUsers(t.Context(), "", 2)
			must(t, "ListUsers", err)
			rest, err := s.ListUsers(t.Context(), "u2", 2)
			must(t, "ListUsers", err)
			if len(first) != 2 || first[0].ID != "u1" || first[1].ID != "u2" || len(rest) != 1 || rest[0].ID != "u3" {
				t.Errorf("ListUsers pages = %v / %v, want [u1 u2] / [u3]", first, rest)
			}
		}},
		{"Users/DeleteRemovesTokensSessionsConsents", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			app := createClient(t, s, "app")
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			createBrowserSession(t, s, clk, "bs-u1", "u1")
			createBrowserSession(t, s, clk, "bs-u2", "u2")
			req := newRequest(app, "req-u1", "u1", clk.Now())
			must(t, "create access", s.CreateAccessTokenSession(ctx, "at-u1", req))
			must(t, "create refresh", s.CreateRefreshTokenSession(ctx, "rt-u1", "at-u1", req))
			must(t, "grant consent", s.GrantConsent(ctx, "u1", "app", []string{"openid"}))
			must(t, "create u2 access", s.CreateAccessTokenSession(ctx, "at-u2", newRequest(app, "req-u2", "u2", clk.Now())))

			must(t, "DeleteUser", s.DeleteUser(ctx, "u1"))

			_, err := s.User(ctx, "u1")
			wantErr(t, "User after delete", err, storage.ErrNotFound)
			_, err = s.BrowserSession(ctx, "bs-u1")
			wantErr(t, "browser session of deleted user", err, storage.ErrNotFound)
			_, err = s.GetAccessTokenSession(ctx, "at-u1", &openid.DefaultSession{})
			wantErr(t, "access token of deleted user", err, fosite.ErrNotFound)
			_, err = s.GetRefreshTokenSession(ctx, "rt-u1", &openid.DefaultSession{})
			wantErr(t, "refresh token of deleted user", err, fosite.ErrNotFound)
			_, err = s.Consent(ctx, "u1", "app")
			wantErr(t, "consent of deleted user", err, storage.ErrNotFound)

			_, err = s.BrowserSession(ctx, "bs-u2")
			must(t, "another user's session survives", err)
			_, err = s.GetAccessTokenSession(ctx, "at-u2", &openid.DefaultSession{})
			must(t, "another user's token survives", err)

			wantErr(t, "second DeleteUser", s.DeleteUser(ctx, "u1"), storage.ErrNotFound)
		}},
	}
}

func browserSessionCases() []suiteCase {
	return []suiteCase{
		{"BrowserSessions/Lifecycle", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			want := createBrowserSession(t, s, clk, "bs1", "u1")
			got, err := s.BrowserSession(ctx, "bs1")
			must(t, "BrowserSession", err)
			if got.UserID != "u1" || got.IP != want.IP || got.UserAgent != want.UserAgent ||
				!got.AuthTime.Equal(want.AuthTime) || !got.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("BrowserSession = %+v, want %+v", got, want)
			}

			clk.Advance(5 * time.Minute)
			must(t, "TouchBrowserSession", s.TouchBrowserSession(ctx, "bs1", clk.Now()))
			got, err = s.BrowserSession(ctx, "bs1")
			must(t, "BrowserSession after touch", err)
			if !got.LastSeenAt.Equal(clk.Now()) {
				t.Errorf("LastSeenAt = %v, want %v", got.LastSeenAt, clk.Now())
			}

			must(t, "DeleteBrowserSession", s.DeleteBrowserSession(ctx, "bs1"))
			_, err = s.BrowserSession(ctx, "bs1")
			wantErr(t, "BrowserSession after delete", err, storage.ErrNotFound)
			// Logout twice (two tabs) must not error.
			must(t, "second DeleteBrowserSession", s.DeleteBrowserSession(ctx, "bs1"))
		}},
		{"BrowserSessions/ExpiredIsNotFound", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			createBrowserSession(t, s, clk, "bs1", "u1") // expires in one hour
			clk.Advance(time.Hour - time.Second)
			_, err := s.BrowserSession(t.Context(), "bs1")
			must(t, "BrowserSession one second before expiry", err)
			clk.Advance(time.Second)
			_, err = s.BrowserSession(t.Context(), "bs1")
			wantErr(t, "BrowserSession at expiry", err, storage.ErrNotFound)
		}},
		{"BrowserSessions/UnknownUserIsNotFound", func(t *testing.T, s *storage.Store, clk *Clock) {
			now := clk.Now()
			err := s.CreateBrowserSession(t.Context(), &storage.BrowserSession{
				ID: "bs1", UserID: "missing", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour),
			})
			wantErr(t, "CreateBrowserSession for a missing user", err, storage.ErrNotFound)
		}},
	}
}

func consentCases() []suiteCase {
	return []suiteCase{
		{"Consents/GrantMergesScopes", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createUser(t, s, "u1", "alice")
			createClient(t, s, "app")
			_, err := s.Consent(ctx, "u1", "app")
			wantErr(t, "Consent before any grant", err, storage.ErrNotFound)

			must(t, "first GrantConsent", s.GrantConsent(ctx, "u1", "app", []string{"openid", "profile"}))
			clk.Advance(time.Minute)
			must(t, "second GrantConsent", s.GrantConsent(ctx, "u1", "app", []string{"profile", "email"}))

			c, err := s.Consent(ctx, "u1", "app")
			must(t, "Consent", err)
			got := slices.Sorted(slices.Values(c.Scopes))
			if want := []string{"email", "openid", "profile"}; !slices.Equal(got, want) {
				t.Errorf("merged scopes = %q, want %q", got, want)
			}
			if !c.CreatedAt.Equal(epoch()) || !c.UpdatedAt.Equal(clk.Now()) {
				t.Errorf("created/updated = %v/%v, want %v/%v", c.CreatedAt, c.UpdatedAt, epoch(), clk.Now())
			}
		}},
	}
}

func signingKeyCases() []suiteCase {
	return []suiteCase{
		{"SigningKeys/EncryptedAtRest", func(t *testing.T, s *storage.Store, _ *Clock) {
			ctx := t.Context()
			const secretPart = "PRIVATE-d-VALUE-must-never-be-stored-in-clear"
			jwk := []byte(`{"kty":"OKP","crv":"Ed25519","kid":"k1","d":"` + secretPart + `","x":"public-x"}`)
			must(t, "CreateSigningKey", s.CreateSigningKey(ctx, &storage.SigningKey{
				ID: "k1", Algorithm: "EdDSA", PublicJWK: `{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"public-x"}`,
			}, jwk))
			must(t, "CreateSigningKey k2", s.CreateSigningKey(ctx, &storage.SigningKey{
				ID: "k2", Algorithm: "EdDSA", PublicJWK: `{}`,
			}, []byte(`{"d":"other"}`)))

			keys, err := s.SigningKeys(ctx)
			must(t, "SigningKeys", err)
			k1 := findKey(t, keys, "k1")
			// SigningKeys returns the column as stored: this is the raw value.
			if strings.Contains(k1.PrivateKey, secretPart) || strings.Contains(k1.PrivateKey, "Ed25519") {
				t.Errorf("private_key column holds the plaintext: %q", k1.PrivateKey)
			}
			got, err := s.OpenSigningKey(&k1)
			must(t, "OpenSigningKey", err)
			if string(got) != string(jwk) {
				t.Errorf("OpenSigningKey = %s, want %s", got, jwk)
			}

			// The ciphertext is bound to its key id: pasting one row's secret
			// into another must not yield a usable key.
			k2 := findKey(t, keys, "k2")
			k2.PrivateKey = k1.PrivateKey
			if _, err := s.OpenSigningKey(&k2); err == nil {
				t.Error("OpenSigningKey opened k1's private key under k2's id")
			}
		}},
		{"SigningKeys/Lifecycle", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			seen := map[string]string{}
			version := func(after string) {
				t.Helper()
				v, err := s.SigningKeysVersion(ctx)
				must(t, "SigningKeysVersion", err)
				if prev, ok := seen[v]; ok {
					t.Errorf("SigningKeysVersion after %s = %q, unchanged since %s", after, v, prev)
				}
				seen[v] = after
			}
			listed := func(want ...string) []storage.SigningKey {
				t.Helper()
				keys, err := s.SigningKeys(ctx)
				must(t, "SigningKeys", err)
				var ids []string
				for _, k := range keys {
					ids = append(ids, k.ID)
				}
				if !slices.Equal(ids, want) {
					t.Errorf("SigningKeys = %q, want %q (newest first)", ids, want)
				}
				return keys
			}

			version("nothing")
			for _, id := range []string{"k1", "k2", "k3"} {
				must(t, "CreateSigningKey "+id, s.CreateSigningKey(ctx, &storage.SigningKey{ID: id, Algorithm: "RS256", PublicJWK: "{}"}, []byte("{}")))
				version("create " + id)
				clk.Advance(time.Hour)
			}
			listed("k3", "k2", "k1")

			until := clk.Now().Add(2 * time.Hour)
			must(t, "RetireSigningKeys", s.RetireSigningKeys(ctx, "k3", clk.Now(), &until))
			version("retire")
			for _, k := range listed("k3", "k2", "k1") {
				if retired := k.RetiredAt != nil; retired != (k.ID != "k3") {
					t.Errorf("after retire, %s RetiredAt = %v", k.ID, k.RetiredAt)
				}
				if k.ID != "k3" && (k.PublishUntil == nil || !k.PublishUntil.Equal(until)) {
					t.Errorf("after retire, %s PublishUntil = %v, want %v", k.ID, k.PublishUntil, until)
				}
			}

			clk.Advance(time.Hour)
			must(t, "RevokeSigningKeys", s.RevokeSigningKeys(ctx, "k3", clk.Now()))
			version("revoke")
			listed("k3")

			// A rotation within one instant (a frozen test clock, or two
			// instances rotating together) must still change the version.
			must(t, "CreateSigningKey k4", s.CreateSigningKey(ctx, &storage.SigningKey{ID: "k4", Algorithm: "RS256", PublicJWK: "{}"}, []byte("{}")))
			version("create k4")
			must(t, "RetireSigningKeys at the previous instant", s.RetireSigningKeys(ctx, "k4", clk.Now(), nil))
			version("retire k3 at the instant k1 and k2 were revoked")
			must(t, "RevokeSigningKeys at the previous instant", s.RevokeSigningKeys(ctx, "k4", clk.Now()))
			version("revoke k3 at the instant k1 and k2 were revoked")
			listed("k4")
		}},
	}
}

func findKey(t *testing.T, keys []storage.SigningKey, id string) storage.SigningKey {
	t.Helper()
	for _, k := range keys {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("signing key %s not listed", id)
	return storage.SigningKey{}
}
