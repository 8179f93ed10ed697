package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/admin"
	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/notify"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/server"
	"github.com/portcullis/portcullis/storage"
)

// cliMailWait bounds how long a command waits for its mail to go out: one
// attempt, since a command that exits cannot retry later.
const cliMailWait = 30 * time.Second

// policyEngine is the policy engine over store as the server runs it:
// config.toml with the changes stored through the admin API.
func (a *app) policyEngine(ctx context.Context, cfg *config.Config, store *storage.Store, trail *audit.Recorder) (*policystore.Engine, error) {
	return policystore.New(ctx, store, cfg.Policy(), trail, newLogger(a.stderr, cfg.Log), time.Now)
}

// globalRegistration is the registration policy the server enforces,
// which decides when accounts expire.
func (a *app) globalRegistration(ctx context.Context, cfg *config.Config, store *storage.Store, trail *audit.Recorder) (policies.Registration, error) {
	engine, err := a.policyEngine(ctx, cfg, store, trail)
	if err != nil {
		return policies.Registration{}, err
	}
	return engine.Global().Registration, nil
}

// record stamps e as the command's successful change and records it.
func (a *app) record(ctx context.Context, trail *audit.Recorder, e audit.Event) error {
	e.Actor, e.Outcome = a.actor(), audit.OutcomeSuccess
	return trail.Record(ctx, e)
}

func (a *app) usersExpireCmd() *cobra.Command {
	var (
		at    string
		clear bool
	)
	cmd := &cobra.Command{
		Use:   "expire <username-or-id> (--at RFC3339 | --clear)",
		Short: "Set or clear the date a user's account expires",
		Long: "Set the date a user's account expires (--at, an RFC 3339 time such as 2030-01-02T15:04:05Z), or clear it " +
			"(--clear) so that registration.account_expire_days decides again. A date at or before now expires the " +
			"account at once: every session and token of the user ends. Audited as account.expiry_changed, like " +
			"PUT /admin/users/{id}/expiry.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var date *time.Time
			switch {
			case clear == cmd.Flags().Changed("at"):
				return errors.New("give exactly one of --at and --clear")
			case !clear:
				t, err := admin.ParseExpiry(at)
				if err != nil {
					return fmt.Errorf("--at %q: %w", at, err)
				}
				date = &t
			}
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				ctx := cmd.Context()
				u, err := findUser(ctx, store, args[0])
				if err != nil {
					return err
				}
				engine, err := a.policyEngine(ctx, cfg, store, trail)
				if err != nil {
					return err
				}
				accounts := authn.NewAccounts(authn.AccountsConfig{
					Store: store, Sessions: store, Hasher: hasherFor(cfg), Recorder: trail, Policies: engine.For,
				})
				actor := authn.Actor{ID: a.actor()}
				var done admin.ExpiryChanged
				err = store.InTx(ctx, func(ctx context.Context) error {
					var err error
					done, err = admin.SetExpiry(ctx, store, accounts, engine.Global().Registration, time.Now(), u.ID, date, actor)
					if err != nil {
						return err
					}
					return a.record(ctx, trail, done.Event())
				})
				if err != nil {
					return err
				}
				printExpiry(a.stdout, u, done)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "the expiry date, an RFC 3339 time (a past one expires the account now)")
	cmd.Flags().BoolVar(&clear, "clear", false, "clear the administrator's date: registration.account_expire_days decides")
	return cmd
}

func printExpiry(w io.Writer, u *storage.User, c admin.ExpiryChanged) {
	switch {
	case c.After.ExpiresAt != nil:
		fmt.Fprintf(w, "user %s expires at %s\n", userLabel(u), c.After.ExpiresAt.UTC().Format(time.RFC3339))
	case c.EffectiveAfter.IsZero():
		fmt.Fprintf(w, "user %s: expiry date cleared; the account never expires\n", userLabel(u))
	default:
		fmt.Fprintf(w, "user %s: expiry date cleared; the account expires at %s (registration.account_expire_days)\n",
			userLabel(u), c.EffectiveAfter.UTC().Format(time.RFC3339))
	}
	if c.Expired {
		fmt.Fprintf(w, "the account has expired: %d session(s) ended, %d token(s) revoked\n", len(c.Ended.Sessions), c.Ended.Tokens)
	}
}

// linkMail is the mail side of account links for one command: mail goes
// out through config's [smtp] server while the command runs, in one
// attempt. Without an [smtp] host, links cannot be mailed.
type linkMail struct {
	mails *notify.AccountMails
	stop  context.CancelFunc
	done  chan struct{}
}

// startLinkMail builds the links service over store, with mail when it is
// configured; call finish before the command ends.
func (a *app) startLinkMail(cfg *config.Config, store *storage.Store, trail *audit.Recorder, engine *policystore.Engine) (*authn.Links, *linkMail, error) {
	lm := &linkMail{}
	var queue authn.LinkMailer
	mailer, err := server.NewMailer(cfg, time.Now)
	if err != nil {
		return nil, nil, err
	}
	if mailer != nil {
		lm.mails, err = notify.NewAccountMails(notify.AccountMailsConfig{
			Mailer: mailer, Issuer: cfg.Server.Issuer, Logger: newLogger(a.stderr, cfg.Log),
			RetryDelays: []time.Duration{}, ShutdownWait: time.Second,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("account mails: %w", err)
		}
		var ctx context.Context
		ctx, lm.stop = context.WithCancel(context.Background())
		lm.done = make(chan struct{})
		go func() { defer close(lm.done); lm.mails.Run(ctx) }()
		queue = server.LinkQueue(lm.mails)
	}
	links := authn.NewLinks(authn.LinksConfig{Store: store, Mail: queue, Issuer: cfg.Server.Issuer,
		Policies: engine.For, Recorder: trail})
	return links, lm, nil
}

// finish waits for the queued mail to be sent or given up on and reports
// whether every one was sent.
func (lm *linkMail) finish(ctx context.Context) (delivered bool, err error) {
	if lm.mails == nil {
		return false, nil
	}
	defer func() { lm.stop(); <-lm.done }()
	wait, cancel := context.WithTimeout(ctx, cliMailWait)
	defer cancel()
	if err := lm.mails.Flush(wait); err != nil {
		return false, err
	}
	st := lm.mails.Stats()
	return st.Sent > 0 && st.Failed == 0 && st.Dropped == 0, nil
}

func (a *app) usersResetPasswordCmd() *cobra.Command {
	var noLink bool
	cmd := &cobra.Command{
		Use:   "reset-password <username-or-id>",
		Short: "Make a user change their password at the next sign-in, and mail them a reset link",
		Long: "Mark a user's password as one to change: their next sign-in asks for a new password before it " +
			"completes. Unless --no-link is given, and when [smtp] is configured and the account has an email address, " +
			"a password reset link is mailed too. Audited as password.change_required, like " +
			"POST /admin/users/{id}/password-reset.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				ctx := cmd.Context()
				u, err := findUser(ctx, store, args[0])
				if err != nil {
					return err
				}
				engine, err := a.policyEngine(ctx, cfg, store, trail)
				if err != nil {
					return err
				}
				links, mail, err := a.startLinkMail(cfg, store, trail, engine)
				if err != nil {
					return err
				}
				var done admin.PasswordChangeRequired
				err = store.InTx(ctx, func(ctx context.Context) error {
					var err error
					done, err = admin.RequirePasswordChange(ctx, store, links, u.ID, !noLink, authn.Actor{ID: a.actor()})
					if err != nil {
						return err
					}
					return a.record(ctx, trail, done.Event())
				})
				// Before anything else: it also stops the mail sender.
				delivered, mailErr := mail.finish(ctx)
				if errors.Is(err, admin.ErrAwaitingActivation) {
					return fmt.Errorf("user %s has no password yet: the owner sets one through the activation link; nothing was changed", userLabel(u))
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "user %s must change their password at the next sign-in\n", userLabel(u))
				switch {
				case done.LinkSent && mailErr != nil:
					return fmt.Errorf("the reset link was not delivered: %w", mailErr)
				case done.LinkSent && !delivered:
					return errors.New("the reset link could not be delivered (see the log); run the command again to send a new one")
				case done.LinkSent:
					fmt.Fprintf(a.stdout, "a password reset link was mailed to %s\n", u.Email)
				default:
					fmt.Fprintf(a.stdout, "no reset link was mailed: %s\n", notSentText(done.NotSent))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&noLink, "no-link", false, "only mark the password; mail no reset link")
	return cmd
}

func notSentText(reason string) string {
	switch reason {
	case admin.LinkNotRequested:
		return "--no-link"
	case admin.LinkNoEmail:
		return "the account has no email address"
	case admin.LinkMailUnavailable:
		return "email is not configured ([smtp] host)"
	default:
		return "the mail could not be queued"
	}
}
