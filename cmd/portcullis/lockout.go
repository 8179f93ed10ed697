package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/admin"
	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/storage"
)

// findUser is the user a command names by id or by username. A name that
// is one user's id and another's username is refused rather than guessed:
// an unlock of the wrong account is not what anyone asked for.
func findUser(ctx context.Context, store *storage.Store, ref string) (*storage.User, error) {
	byID, err := store.User(ctx, ref)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	byName, err := store.UserByUsername(ctx, ref)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	switch {
	case byID != nil && byName != nil && byID.ID != byName.ID:
		return nil, fmt.Errorf("%q is the id of user %q and the username of user %s; give that user's id", ref, byID.Username, byName.ID)
	case byID != nil:
		return byID, nil
	case byName != nil:
		return byName, nil
	}
	return nil, fmt.Errorf("no user has the id or username %q", ref)
}

// globalLockout is the lockout policy the server enforces, config.toml
// with the changes stored through the admin API: the global one, since an
// account's lock is shared by every application.
func (a *app) globalLockout(ctx context.Context, cfg *config.Config, store *storage.Store, trail *audit.Recorder) (policies.Lockout, error) {
	engine, err := policystore.New(ctx, store, cfg.Policy(), trail, newLogger(a.stderr, cfg.Log), time.Now)
	if err != nil {
		return policies.Lockout{}, err
	}
	return engine.Global().Lockout, nil
}

func (a *app) usersLockoutCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lockout <username-or-id>",
		Short: "Show whether a user, and each of their devices, is locked",
		Long: "Show whether a user, and each of their devices, is locked, and the failure counters that lead to " +
			"locks, under the global lockout policy as it is now. --json prints what GET /admin/users/{id}/lockout answers.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				ctx := cmd.Context()
				u, err := findUser(ctx, store, args[0])
				if err != nil {
					return err
				}
				pol, err := a.globalLockout(ctx, cfg, store, trail)
				if err != nil {
					return err
				}
				v, err := admin.ReadLockoutView(ctx, store, pol, time.Now(), u.ID)
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(v)
				}
				printLockout(a.stdout, u, v)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state as JSON, as the admin API does")
	return cmd
}

func (a *app) usersUnlockCmd() *cobra.Command {
	var device string
	cmd := &cobra.Command{
		Use:   "unlock <username-or-id>",
		Short: "Clear a user's locks and failure counters, or one device's",
		Long: "Clear every lock and failure counter of a user and of all their devices, or with --device those of " +
			"that device only, and print what was cleared. Audited as account.unlocked, like the admin API's unlock. " +
			"A device without lockout facts is an error that changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("device") {
				if err := admin.CheckDeviceID(device); err != nil {
					return fmt.Errorf("--device %q: %w (leave --device out to unlock the whole account)", device, err)
				}
			}
			return a.withStore(cmd.Context(), func(cfg *config.Config, store *storage.Store, trail *audit.Recorder) error {
				ctx := cmd.Context()
				u, err := findUser(ctx, store, args[0])
				if err != nil {
					return err
				}
				pol, err := a.globalLockout(ctx, cfg, store, trail)
				if err != nil {
					return err
				}
				var done admin.Unlocked
				err = store.InTx(ctx, func(ctx context.Context) error {
					// Again in the transaction: the user may have gone since.
					if _, err := store.User(ctx, u.ID); err != nil {
						return err
					}
					var err error
					if done, err = admin.Unlock(ctx, store, pol, time.Now(), u.ID, device); err != nil {
						return err
					}
					e := done.Event()
					e.Actor, e.Outcome = a.actor(), audit.OutcomeSuccess
					return trail.Record(ctx, e)
				})
				if errors.Is(err, admin.ErrNoDeviceLockout) {
					return fmt.Errorf("user %s has no lockout facts for device %q: it is not locked; nothing was changed "+
						"(portcullis users lockout %s lists the devices)", userLabel(u), device, u.ID)
				}
				if err != nil {
					return err
				}
				printUnlocked(a.stdout, u, done)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "unlock only this device of the user (as listed by users lockout)")
	return cmd
}

func userLabel(u *storage.User) string { return fmt.Sprintf("%s (%s)", u.Username, u.ID) }

// lockText says how long a lock lasts, for people.
func lockText(locked, permanent bool, until *time.Time) string {
	switch {
	case permanent:
		return "locked until an administrator unlocks"
	case locked:
		return "locked until " + until.Format(time.RFC3339)
	}
	return "not locked"
}

func failuresText(n int, since *time.Time) string {
	if n == 0 {
		return "no failures in the current window"
	}
	return fmt.Sprintf("%d failure(s) since %s", n, since.Format(time.RFC3339))
}

func printLockout(w io.Writer, u *storage.User, v admin.LockoutView) {
	fmt.Fprintf(w, "user %s\n", userLabel(u))
	account := lockText(v.Locked, v.Permanent, v.Until)
	if v.Locked {
		account += fmt.Sprintf(" (cause %s, since %s)", v.Cause, v.Since.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "account: %s\n", account)
	fmt.Fprintf(w, "failures: %s\n", failuresText(v.Failures, v.WindowStart))
	if v.CaptchaRequired {
		fmt.Fprintln(w, "captcha: required before the next attempt")
	}
	fmt.Fprintf(w, "device locks in the cascade window: %d\n", v.DeviceLocks)
	fmt.Fprintf(w, "account locks since the last success or unlock: %d\n", v.Locks)
	if len(v.Devices) == 0 {
		fmt.Fprintln(w, "devices: none with lockout facts")
		return
	}
	fmt.Fprintln(w, "devices:")
	for _, d := range v.Devices {
		fmt.Fprintf(w, "  %s: %s, %s\n", d.DeviceID, lockText(d.Locked, false, d.Until), failuresText(d.Failures, d.WindowStart))
	}
}

// printUnlocked says what an unlock cleared: the locks it ended and the
// counters it reset, from the state it found.
func printUnlocked(w io.Writer, u *storage.User, done admin.Unlocked) {
	if !done.Cleared {
		fmt.Fprintf(w, "user %s had no lockout facts; nothing to clear\n", userLabel(u))
		return
	}
	b := done.Before
	var lines []string
	if done.DeviceID == "" {
		if b.Locked {
			lines = append(lines, fmt.Sprintf("account: was %s (cause %s)", lockText(true, b.Permanent, b.Until), b.Cause))
		}
		var counters []string
		if b.Failures > 0 {
			counters = append(counters, fmt.Sprintf("%d failure(s)", b.Failures))
		}
		if b.DeviceLocks > 0 {
			counters = append(counters, fmt.Sprintf("%d device lock(s) toward the cascade", b.DeviceLocks))
		}
		if b.Locks > 0 {
			counters = append(counters, fmt.Sprintf("%d account lock(s) toward escalation", b.Locks))
		}
		if len(counters) > 0 {
			lines = append(lines, "account counters: "+strings.Join(counters, ", "))
		}
	}
	for _, d := range b.Devices {
		if done.DeviceID != "" && d.DeviceID != done.DeviceID {
			continue
		}
		what := "stale facts"
		switch {
		case d.Locked:
			what = "was " + lockText(true, false, d.Until)
		case d.Failures > 0:
			what = fmt.Sprintf("%d failure(s)", d.Failures)
		}
		lines = append(lines, fmt.Sprintf("device %s: %s", d.DeviceID, what))
	}
	if len(lines) == 0 {
		lines = append(lines, "stale facts only (no lock or counter in force)")
	}
	target := "user " + userLabel(u)
	if done.DeviceID != "" {
		target = fmt.Sprintf("device %s of user %s", done.DeviceID, userLabel(u))
	}
	fmt.Fprintf(w, "unlocked %s; cleared:\n", target)
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
}
