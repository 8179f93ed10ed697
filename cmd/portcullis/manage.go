package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/admin"
	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/server"
	"github.com/portcullis/portcullis/storage"
)

// withStore runs fn against the configured database.
func (a *app) withStore(ctx context.Context, fn func(cfg *config.Config, store *storage.Store) error) error {
	cfg, logger, err := a.load()
	if err != nil {
		return err
	}
	store, _, err := server.OpenStore(ctx, cfg, logger, time.Now)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(cfg, store)
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func hasherFor(cfg *config.Config) hashing.Argon2 {
	return hashing.Argon2{Memory: cfg.Hashing.MemoryKiB, Iterations: cfg.Hashing.Iterations, Parallelism: cfg.Hashing.Parallelism}
}

// splitList accepts "a,b" and "a b" alike: scopes are space-separated in
// OAuth, everything else comma-separated, and people mix them up.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func (a *app) clientsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "clients", Short: "Manage OAuth clients"}
	var (
		spec                                                            oauth.ClientSpec
		grantTypes, responseTypes, scopes, redirects, logouts, audience string
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Register a client; prints it as JSON (a generated secret is shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec.GrantTypes = splitList(grantTypes)
			spec.ResponseTypes = splitList(responseTypes)
			spec.Scopes = splitList(scopes)
			spec.RedirectURIs = splitList(redirects)
			spec.PostLogoutRedirectURIs = splitList(logouts)
			spec.Audience = splitList(audience)
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store) error {
				c, secret, err := oauth.NewClient(spec, hasherFor(cfg))
				if err != nil {
					return err
				}
				if err := store.CreateClient(cmd.Context(), c); err != nil {
					return err
				}
				return a.printJSON(admin.NewClientView(c, secret))
			})
		},
	}
	f := create.Flags()
	f.StringVar(&spec.ID, "id", "", "client id (required)")
	f.StringVar(&spec.Name, "name", "", "display name shown on the consent page")
	f.StringVar(&spec.Secret, "secret", "", "client secret (default: generate 256 bits; prefer that)")
	f.StringVar(&grantTypes, "grant-types", "authorization_code,refresh_token", "comma-separated grant types")
	f.StringVar(&responseTypes, "response-types", "", "comma-separated response types (default code when authorization_code)")
	f.StringVar(&scopes, "scopes", "", "allowed scopes, space- or comma-separated")
	f.StringVar(&redirects, "redirect-uris", "", "comma-separated redirect URIs (exact match)")
	f.StringVar(&logouts, "post-logout-redirect-uris", "", "comma-separated post-logout redirect URIs")
	f.StringVar(&audience, "audience", "", "comma-separated audiences the client may request")
	f.BoolVar(&spec.Public, "public", false, "public client (no secret; PKCE S256 required)")
	f.BoolVar(&spec.SkipConsent, "skip-consent", false, "first-party client: never show the consent page")
	f.StringVar(&spec.AccessTokenFormat, "access-token-format", "", "opaque or jwt (default: token.format)")
	f.StringVar(&spec.TokenEndpointAuthMethod, "token-endpoint-auth-method", "", "client_secret_basic (default) or client_secret_post")
	_ = create.MarkFlagRequired("id")

	list := &cobra.Command{
		Use:   "list",
		Short: "List clients as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(_ *config.Config, store *storage.Store) error {
				out := []admin.ClientView{}
				after := ""
				for {
					page, err := store.ListClients(cmd.Context(), after, 500)
					if err != nil {
						return err
					}
					for i := range page {
						out = append(out, admin.NewClientView(&page[i], ""))
					}
					if len(page) < 500 {
						return a.printJSON(out)
					}
					after = page[len(page)-1].ID
				}
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a client and every token issued to it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(_ *config.Config, store *storage.Store) error {
				if err := store.DeleteClient(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "deleted client %s\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

func (a *app) usersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage users"}
	var spec authn.UserSpec
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a user; prints it as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store) error {
				u, err := authn.NewUser(spec, hasherFor(cfg))
				if err != nil {
					return err
				}
				if err := store.CreateUser(cmd.Context(), u); err != nil {
					return err
				}
				return a.printJSON(admin.NewUserView(u))
			})
		},
	}
	f := create.Flags()
	f.StringVar(&spec.Username, "username", "", "username (required; case-insensitive)")
	f.StringVar(&spec.Password, "password", "", "password (required)")
	f.StringVar(&spec.Email, "email", "", "email address")
	f.BoolVar(&spec.EmailVerified, "email-verified", false, "mark the email as verified")
	f.BoolVar(&spec.Admin, "admin", false, "administrator")
	_ = create.MarkFlagRequired("username")
	_ = create.MarkFlagRequired("password")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(_ *config.Config, store *storage.Store) error {
				out := []admin.UserView{}
				after := ""
				for {
					page, err := store.ListUsers(cmd.Context(), after, 500)
					if err != nil {
						return err
					}
					for i := range page {
						out = append(out, admin.NewUserView(&page[i]))
					}
					if len(page) < 500 {
						return a.printJSON(out)
					}
					after = page[len(page)-1].ID
				}
			})
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}

func (a *app) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage signing keys"}
	var revoke bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new signing key current",
		Long: "Make a new signing key current. Old public keys stay in the JWKS so what they signed still " +
			"verifies, unless --revoke-existing removes them at once and revokes every token issued before.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := a.load()
			if err != nil {
				return err
			}
			store, _, err := server.OpenStore(cmd.Context(), cfg, logger, time.Now)
			if err != nil {
				return err
			}
			defer store.Close()
			km, err := oauth.NewKeyManager(cmd.Context(), store, cfg.Keys.Algorithm, logger, time.Now,
				oauth.WithKeyAudit(audit.NewRecorder(store, logger, time.Now)))
			if err != nil {
				return err
			}
			kid, revoked, err := km.RotateBy(cmd.Context(), "cli", revoke)
			if err != nil {
				return err
			}
			return a.printJSON(map[string]any{"kid": kid, "algorithm": km.Algorithm(), "revoked_existing": revoke, "tokens_revoked": revoked})
		},
	}
	rotate.Flags().BoolVar(&revoke, "revoke-existing", false, "remove every older key from the JWKS at once and revoke every token issued before")
	cmd.AddCommand(rotate)
	return cmd
}
