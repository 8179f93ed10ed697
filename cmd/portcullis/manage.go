package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/admin"
	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/server"
	"github.com/portcullis/portcullis/storage"
)

// withStore runs fn against the configured database, with the audit trail
// the admin API records into.
func (a *app) withStore(ctx context.Context, fn func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error) error {
	cfg, logger, err := a.load()
	if err != nil {
		return err
	}
	store, _, err := server.OpenStore(ctx, cfg, logger, time.Now)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(cfg, store, audit.NewRecorder(store, logger, time.Now))
}

// audited makes change and records e in one transaction, as the admin API
// does for the same change: what the CLI does to clients and users shows in
// the same trail, and a change that cannot be audited is not made.
func (a *app) audited(ctx context.Context, store *storage.Store, trail *audit.Recorder, e audit.Event, change func(ctx context.Context) error) error {
	e.Actor = a.actor()
	e.Outcome = audit.OutcomeSuccess
	return store.InTx(ctx, func(ctx context.Context) error {
		if err := change(ctx); err != nil {
			return err
		}
		return trail.Record(ctx, e)
	})
}

// accounts is the accounts service over store, as the server builds it:
// the same password rules and hashing, under the effective policy
// (config.toml with the changes stored through the admin API).
func (a *app) accounts(ctx context.Context, cfg *config.Config, store *storage.Store, trail *audit.Recorder) (*authn.Accounts, error) {
	engine, err := policystore.New(ctx, store, cfg.Policy(), trail, newLogger(a.stderr, cfg.Log), time.Now)
	if err != nil {
		return nil, err
	}
	return authn.NewAccounts(authn.AccountsConfig{
		Store: store, Sessions: store, Hasher: hasherFor(cfg), Recorder: trail, Policies: engine.For,
	}), nil
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

// splitLists is splitList over a repeatable flag's values.
func splitLists(values []string) []string {
	var out []string
	for _, v := range values {
		out = append(out, splitList(v)...)
	}
	return out
}

// readJWKS reads the key set --jwks names: a file, or "-" for standard
// input. Its content is judged by oauth.NewClient with the other fields.
func (a *app) readJWKS(from string) (json.RawMessage, error) {
	if from == "" {
		return nil, nil
	}
	var (
		b   []byte
		err error
	)
	if from == "-" {
		b, err = io.ReadAll(a.console.in)
	} else {
		b, err = os.ReadFile(from)
	}
	if err != nil {
		return nil, fmt.Errorf("--jwks: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("--jwks: %s holds no key set", jwksSource(from))
	}
	return b, nil
}

func jwksSource(from string) string {
	if from == "-" {
		return "standard input"
	}
	return from
}

// group makes cmd a command that only holds subcommands. Cobra shows the
// help of such a command, and exits 0, whatever follows it, so that
// "clients craete" would seem to have worked; here an unknown subcommand is
// an error that suggests the nearest ones, as cobra does at the top level.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	// SuggestionsFor matches prefixes only unless a distance is set.
	cmd.SuggestionsMinimumDistance = 2
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
			msg += " (did you mean " + strings.Join(near, " or ") + "?)"
		} else {
			msg += fmt.Sprintf(" (see %q)", cmd.CommandPath()+" --help")
		}
		return errors.New(msg)
	}
	return cmd
}

func (a *app) clientsCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "clients", Short: "Manage OAuth clients"})
	var (
		spec                                                            oauth.ClientSpec
		grantTypes, responseTypes, scopes, redirects, logouts, audience string
		corsOrigins                                                     []string
		jwksFrom                                                        string
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
			spec.AllowedCORSOrigins = splitLists(corsOrigins)
			var err error
			if spec.JWKS, err = a.readJWKS(jwksFrom); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				c, secret, err := oauth.NewClient(spec, hasherFor(cfg))
				if err != nil {
					return err
				}
				err = a.audited(cmd.Context(), store, trail, audit.Event{Type: audit.TypeClientCreated, ClientID: c.ID},
					func(ctx context.Context) error { return store.CreateClient(ctx, c) })
				if errors.Is(err, storage.ErrConflict) {
					return fmt.Errorf("client %q already exists; choose another --id", c.ID)
				}
				if err != nil {
					return fmt.Errorf("create client %s: %w", c.ID, err)
				}
				return a.printJSON(admin.NewClientView(c, secret))
			})
		},
	}
	f := create.Flags()
	f.StringVar(&spec.ID, "id", "", "client id (required)")
	f.StringVar(&spec.Name, "name", "", "display name shown on the consent page")
	f.StringVar(&spec.Secret, "secret", "", "client secret (default: generate 256 bits; prefer that)")
	f.StringVar(&grantTypes, "grant-types", "authorization_code,refresh_token", "comma-separated grant types: "+strings.Join(oauth.GrantTypes(), ", ")+" (password only for clients that need it; see README)")
	f.StringVar(&responseTypes, "response-types", "", "comma-separated response types (default code when authorization_code)")
	f.StringVar(&scopes, "scopes", "", "allowed scopes, space- or comma-separated")
	f.StringVar(&redirects, "redirect-uris", "", "comma-separated redirect URIs (exact match)")
	f.StringVar(&logouts, "post-logout-redirect-uris", "", "comma-separated post-logout redirect URIs")
	f.StringVar(&audience, "audience", "", "comma-separated audiences the client may request")
	f.StringArrayVar(&corsOrigins, "allowed-cors-origins", nil, "browser origins (scheme://host[:port]) that may call the token, revocation and userinfo endpoints as this client; comma-separated or repeated")
	f.StringVar(&spec.LogoURI, "logo-uri", "", "https URL of the client's logo, shown on the sign-in and consent pages")
	f.StringVar(&spec.PolicyURI, "policy-uri", "", "https URL of the client's privacy policy, linked from the sign-in and consent pages")
	f.StringVar(&spec.TosURI, "tos-uri", "", "https URL of the client's terms of service, linked from the sign-in and consent pages")
	f.BoolVar(&spec.Public, "public", false, "public client (no secret; PKCE S256 required)")
	f.BoolVar(&spec.SkipConsent, "skip-consent", false, "first-party client: never show the consent page")
	f.BoolVar(&spec.Introspect, "introspect", false, "resource server: may introspect tokens issued to any client (without it, only its own)")
	f.StringVar(&spec.AccessTokenFormat, "access-token-format", "", "opaque or jwt (default: token.format)")
	f.StringVar(&spec.TokenEndpointAuthMethod, "token-endpoint-auth-method", "",
		"how the client authenticates at the token endpoint: client_secret_basic, client_secret_post, private_key_jwt (needs --jwks) or none (public clients); "+
			"empty = a confidential client accepts client_secret_basic and client_secret_post, a value = only that method")
	f.StringVar(&jwksFrom, "jwks", "", "file with the client's public JSON Web Key Set, or - for standard input (private_key_jwt)")
	f.StringVar(&spec.TokenEndpointAuthSigningAlg, "token-endpoint-auth-signing-alg", "",
		"the one JWS algorithm a private_key_jwt client signs with: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA (default: any that fits its key)")
	_ = create.MarkFlagRequired("id")

	list := &cobra.Command{
		Use:   "list",
		Short: "List clients as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(_ *config.Config, store *storage.Store, _ *audit.Recorder) error {
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
			id := args[0]
			return a.withStore(cmd.Context(), func(_ *config.Config, store *storage.Store, trail *audit.Recorder) error {
				err := a.audited(cmd.Context(), store, trail, audit.Event{Type: audit.TypeClientDeleted, ClientID: id},
					func(ctx context.Context) error { return store.DeleteClient(ctx, id) })
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("client %q does not exist", id)
				}
				if err != nil {
					return fmt.Errorf("delete client %s: %w", id, err)
				}
				fmt.Fprintf(a.stdout, "deleted client %s\n", id)
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

// password finds the new user's password: --password (given, even empty,
// it is used and judged like any other), one line of standard input with
// --password-stdin, or else typed twice at a terminal prompt.
func (a *app) password(ctx context.Context, cmd *cobra.Command, username, flagValue string, fromStdin bool) (string, error) {
	switch {
	case cmd.Flags().Changed("password") && fromStdin:
		return "", errors.New("give the password one way: --password or --password-stdin, not both")
	case cmd.Flags().Changed("password"):
		return flagValue, nil
	case fromStdin:
		line, err := bufio.NewReader(a.console.in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("--password-stdin: read standard input: %w", err)
		}
		// Only the line ending goes: spaces may be part of a passphrase.
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			return "", errors.New("--password-stdin: standard input held no password")
		}
		return line, nil
	case a.console.readPassword != nil:
		fmt.Fprintf(a.stderr, "Password for %s: ", username)
		first, err := a.console.readPassword(ctx)
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		if len(first) == 0 {
			return "", errors.New("no password entered; nothing was created")
		}
		fmt.Fprint(a.stderr, "Repeat the password: ")
		second, err := a.console.readPassword(ctx)
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		if string(first) != string(second) {
			return "", errors.New("the two passwords differ; nothing was created")
		}
		return string(first), nil
	}
	return "", errors.New("no password: pipe it in with --password-stdin, or run in a terminal to be prompted " +
		"(--password works too, but leaves it in the shell history)")
}

func (a *app) usersCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "users", Short: "Manage users"})
	var (
		spec      authn.UserSpec
		password  string
		fromStdin bool
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a user; prints it as JSON",
		Long: "Create a user; prints it as JSON. The password is read from a terminal prompt (typed twice, not " +
			"shown), or with --password-stdin from the first line of standard input.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				// Asked once the configuration, the database and the
				// username are known good, so nobody types a password for
				// nothing. %q shows an invisible character as its escape.
				if _, err := storage.NormalizeUsername(spec.Username); err != nil {
					return fmt.Errorf("cannot create user %q: %w", spec.Username, err)
				}
				var err error
				if spec.Password, err = a.password(cmd.Context(), cmd, spec.Username, password, fromStdin); err != nil {
					return err
				}
				accounts, err := a.accounts(cmd.Context(), cfg, store, trail)
				if err != nil {
					return err
				}
				u, err := accounts.Create(cmd.Context(), spec, authn.Actor{ID: a.actor()})
				if errors.Is(err, storage.ErrConflict) {
					// Ids are fresh UUIDs, so the clash is the username.
					name, _ := storage.NormalizeUsername(spec.Username) // checked above
					return fmt.Errorf("user %q already exists", name)
				}
				if err != nil {
					return err
				}
				reg, err := a.globalRegistration(cmd.Context(), cfg, store, trail)
				if err != nil {
					return err
				}
				return a.printJSON(admin.NewUserView(u, reg, time.Now()))
			})
		},
	}
	f := create.Flags()
	f.StringVar(&spec.Username, "username", "", "username (required; case-insensitive, letters, digits and ASCII punctuation)")
	f.StringVar(&password, "password", "", "the password itself; avoid: it stays in the shell history and shows in the process list (prefer --password-stdin or the prompt)")
	f.BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	f.StringVar(&spec.Email, "email", "", "email address")
	f.BoolVar(&spec.EmailVerified, "email-verified", false, "mark the email as verified")
	f.BoolVar(&spec.Admin, "admin", false, "administrator")
	_ = create.MarkFlagRequired("username")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				reg, err := a.globalRegistration(cmd.Context(), cfg, store, trail)
				if err != nil {
					return err
				}
				now := time.Now()
				out := []admin.UserView{}
				after := ""
				for {
					page, err := store.ListUsers(cmd.Context(), after, 500)
					if err != nil {
						return err
					}
					for i := range page {
						out = append(out, admin.NewUserView(&page[i], reg, now))
					}
					if len(page) < 500 {
						return a.printJSON(out)
					}
					after = page[len(page)-1].ID
				}
			})
		},
	}
	cmd.AddCommand(create, list, a.usersLockoutCmd(), a.usersUnlockCmd(), a.usersExpireCmd(), a.usersResetPasswordCmd(), a.usersMFACmd())
	return cmd
}

func (a *app) keysCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "keys", Short: "Manage signing keys"})
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
			kid, revoked, err := km.RotateBy(cmd.Context(), a.actor(), revoke)
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
