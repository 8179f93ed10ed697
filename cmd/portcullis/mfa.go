package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/admin"
	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/storage"
)

// secondFactors is the second-factor service over store as the server
// builds it, but without passkeys: listing and removing factors runs no
// WebAuthn ceremony, and a command has no browser origin to hold one.
// The service name is the one authenticator apps show, as in the server.
func (a *app) secondFactors(cfg *config.Config, store *storage.Store, trail *audit.Recorder) *authn.SecondFactors {
	return authn.NewSecondFactors(store, nil, cfg.WebAuthn.RPDisplayName, trail, newLogger(a.stderr, cfg.Log), time.Now)
}

func (a *app) usersMFACmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "mfa", Short: "Show and reset users' second factors"})
	cmd.AddCommand(a.usersMFAListCmd(), a.usersMFAResetCmd())
	return cmd
}

func (a *app) usersMFAListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list <username-or-id>",
		Short: "List a user's second factors and how many recovery codes they have left",
		Long: "List the second factors a user has enrolled (id, type, name, when created and last used) and how " +
			"many unused recovery codes they have. Enrolments not yet confirmed are not shown. --json prints what " +
			"GET /admin/users/{id}/mfa answers. Secrets and credentials are never shown.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				ctx := cmd.Context()
				u, err := findUser(ctx, store, args[0])
				if err != nil {
					return err
				}
				v, err := admin.ReadUserMFA(ctx, a.secondFactors(cfg, store, trail), u.ID)
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(v)
				}
				return printFactors(a.stdout, u, v)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the factors as JSON, as the admin API does")
	return cmd
}

func (a *app) usersMFAResetCmd() *cobra.Command {
	var factorID string
	cmd := &cobra.Command{
		Use:   "reset <username-or-id> [--factor ID]",
		Short: "Remove every second factor of a user, or one",
		Long: "Remove every second factor, recovery code and remembered device of a user: where the MFA policy " +
			"requires a second factor, their next sign-in asks them to enrol one again. Audited as mfa.reset, like " +
			"DELETE /admin/users/{id}/mfa. With --factor, remove only that factor (its id as users mfa list shows " +
			"it), audited as mfa.removed like DELETE /admin/users/{id}/mfa/{factor_id}; removing the last factor " +
			"drops the recovery codes too. An unknown factor is an error that changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			one := cmd.Flags().Changed("factor")
			if one && factorID == "" {
				return errors.New("--factor: give a factor id (leave --factor out to reset every factor)")
			}
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				ctx := cmd.Context()
				u, err := findUser(ctx, store, args[0])
				if err != nil {
					return err
				}
				factors := a.secondFactors(cfg, store, trail)
				actor := authn.Actor{ID: a.actor()}
				if one {
					return a.removeFactor(ctx, store, factors, u, factorID, actor)
				}
				var n int64
				err = store.InTx(ctx, func(ctx context.Context) error {
					// Again in the transaction: the user may have gone
					// since, and a reset of nobody is not worth an event.
					if _, err := store.User(ctx, u.ID); err != nil {
						return err
					}
					var err error
					n, err = factors.Reset(ctx, u.ID, actor)
					return err
				})
				if err != nil {
					return err
				}
				if n == 0 {
					fmt.Fprintf(a.stdout, "user %s had no second factor; any recovery codes and remembered devices were cleared\n", userLabel(u))
					return nil
				}
				fmt.Fprintf(a.stdout, "reset the second factors of user %s: %d factor(s) removed, with every recovery code and remembered device\n",
					userLabel(u), n)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&factorID, "factor", "", "remove only this factor (an id as users mfa list shows it)")
	return cmd
}

// removeFactor removes factor id of u and says what is left.
func (a *app) removeFactor(ctx context.Context, store *storage.Store, factors *authn.SecondFactors, u *storage.User, id string, actor authn.Actor) error {
	err := store.InTx(ctx, func(ctx context.Context) error {
		if _, err := store.User(ctx, u.ID); err != nil {
			return err
		}
		return factors.Remove(ctx, u.ID, id, actor)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("user %s has no second factor %q; nothing was changed (portcullis users mfa list %s lists them)",
			userLabel(u), id, u.ID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "removed second factor %s of user %s\n", id, userLabel(u))
	left, err := factors.Enrolled(ctx, u.ID)
	if err != nil {
		return err
	}
	if len(left) == 0 {
		fmt.Fprintln(a.stdout, "that was their last factor: their recovery codes were dropped too")
		return nil
	}
	fmt.Fprintf(a.stdout, "%d factor(s) left\n", len(left))
	return nil
}

// printFactors shows v for people. Names are quoted: they are typed by
// the account's owner, and quoting keeps control characters in one from
// reaching the administrator's terminal.
func printFactors(w io.Writer, u *storage.User, v admin.UserMFAView) error {
	fmt.Fprintf(w, "user %s\n", userLabel(u))
	if len(v.Factors) == 0 {
		fmt.Fprintln(w, "factors: none enrolled")
	} else {
		fmt.Fprintln(w, "factors:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tTYPE\tNAME\tCREATED\tLAST USED")
		for _, f := range v.Factors {
			used := "never"
			if f.LastUsedAt != nil {
				used = f.LastUsedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%q\t%s\t%s\n", f.ID, f.Type, f.Name, f.CreatedAt.Format(time.RFC3339), used)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("print factors: %w", err)
		}
	}
	fmt.Fprintf(w, "recovery codes left: %d\n", v.RecoveryCodesLeft)
	return nil
}
