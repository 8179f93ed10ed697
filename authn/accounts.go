package authn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// AccountStore is what Accounts needs to write users.
type AccountStore interface {
	CreateUser(ctx context.Context, u *storage.User) error
	User(ctx context.Context, id string) (*storage.User, error)
	UpdatePasswordHash(ctx context.Context, userID, hash string) error
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// SessionEnder ends a user's browser sessions and revokes their tokens.
type SessionEnder interface {
	// EndUserSessions ends every session of the user but keep and revokes
	// every token of the user not issued under keep.
	EndUserSessions(ctx context.Context, userID, keep string) ([]string, error)
	RevokeTokens(ctx context.Context, f storage.TokenFilter) (int64, error)
}

var (
	_ AccountStore = (*storage.Store)(nil)
	_ SessionEnder = (*storage.Store)(nil)
)

// Actor is who makes an account change, as the audit trail names them.
type Actor struct {
	// ID is the audit actor: the user themselves, an administrator's user
	// or client id, "cli:<login>".
	ID string
	// Details are added to every event of the change (the admin API adds
	// the administering client).
	Details map[string]any
}

// Ended is what ending a user's sessions ended.
type Ended struct {
	// Sessions are the ids of the browser sessions ended.
	Sessions []string
	// Tokens is how many access and refresh tokens were revoked.
	Tokens int64
}

// Reasons of password.changed events.
const (
	PasswordReasonChange = "self_service"
	PasswordReasonReset  = "admin_reset"
)

// EndReasonAdmin is the reason of everything an administrator ends.
const EndReasonAdmin = "admin"

// AccountsConfig configures Accounts.
type AccountsConfig struct {
	Store    AccountStore
	Sessions SessionEnder
	// Hasher holds the password hashing parameters new hashes are made with.
	Hasher hashing.Argon2
	// Limiter bounds the memory of hashes running at once, shared with
	// sign-in; nil means no bound.
	Limiter *hashing.Limiter
	// Recorder receives every event of a change, in its transaction; nil
	// records nothing.
	Recorder *audit.Recorder
	// Policies gives the policy in force; the global one ("") decides
	// whether a password write ends the user's sessions. nil means the
	// built-in defaults.
	Policies PolicySource
	// Rules are an embedding program's own password rules, run on every
	// new password after the password policy's (policies.PasswordPolicyRule).
	Rules []policies.PasswordRule
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Accounts is the one way a password is written and the one way everything
// of a user is ended: self-service change, administrator reset, user
// creation (the admin API and the CLI), and ending every session and token
// family of a user (an administrator's request, a password change, and the
// lockout cascade). Each write runs the same password rules and hashing,
// and each end revokes the same things and records the same events with
// its reason, in the transaction of the change.
type Accounts struct {
	store    AccountStore
	sessions SessionEnder
	hasher   *hashing.Hasher
	recorder *audit.Recorder
	policies PolicySource
	rules    []policies.PasswordRule
	now      func() time.Time
}

// NewAccounts returns the accounts service. It panics without a store or
// a session ender, a wiring mistake better caught at start-up.
func NewAccounts(cfg AccountsConfig) *Accounts {
	if cfg.Store == nil || cfg.Sessions == nil {
		panic("authn.NewAccounts: Store and Sessions are required")
	}
	a := &Accounts{
		store: cfg.Store, sessions: cfg.Sessions, recorder: cfg.Recorder,
		policies: cfg.Policies, rules: append([]policies.PasswordRule{policies.PasswordPolicyRule{}}, cfg.Rules...), now: cfg.Now,
	}
	params := cfg.Hasher
	if params == (hashing.Argon2{}) {
		params = hashing.DefaultArgon2
	}
	a.hasher = hashing.NewHasher(params, cfg.Limiter)
	if a.policies == nil {
		defaults := policies.Defaults()
		a.policies = func(string) policies.Policy { return defaults }
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// Codes of the password problems found before any rule runs; the rules'
// own codes are policies' (policies.PasswordTooShort, …).
const (
	// PasswordInvalidCharacter is a password PRECIS OpaqueString refuses.
	PasswordInvalidCharacter = "invalid_character"
)

// PasswordPolicy is the password policy every password write is judged
// by: the global one. A password belongs to the account, which every
// application shares, so no application's customized section may loosen
// (or tighten) what another's users must choose.
func (a *Accounts) PasswordPolicy() policies.Password { return a.policies("").Password }

// CheckPassword runs every rule on password as the new password of u (for
// a new account, only its username and email set) and returns every
// problem, each with its code, as a *fielderr.Error on field, nil when it
// passes. The rules are the global password policy's, then the embedder's.
// Create, ChangePassword and ResetPassword call it.
func (a *Accounts) CheckPassword(ctx context.Context, field, password string, u *storage.User) error {
	// The byte bound comes before everything: no rule, normalization or
	// hash may be made to work on unbounded input.
	if len(password) > MaxPasswordLength {
		return &fielderr.Error{Fields: []fielderr.Field{{Field: field, Code: policies.PasswordTooLong,
			Message: fmt.Sprintf("must be at most %d bytes", MaxPasswordLength)}}}
	}
	// An empty password is the length rule's to explain.
	if n, err := normalizePassword(password); err == nil {
		password = n
	} else if password != "" {
		return &fielderr.Error{Fields: []fielderr.Field{{Field: field, Code: PasswordInvalidCharacter,
			Message: "contains a control character or another character that cannot be typed reliably"}}}
	}
	c := policies.PasswordCandidate{
		Password: password, UserID: u.ID, Username: u.Username, Email: u.Email, Admin: u.Admin,
		Now: a.now(), Policy: a.policies(""),
	}
	var fe fielderr.Error
	for _, rule := range a.rules {
		problems, err := rule.CheckPassword(ctx, c)
		if err != nil {
			return fmt.Errorf("check password: %w", err)
		}
		fe.Fields = append(fe.Fields, problemFields(field, problems)...)
	}
	return fe.Err()
}

// problemFields turns password problems into field errors on field.
func problemFields(field string, problems []policies.PasswordProblem) []fielderr.Field {
	out := make([]fielderr.Field, len(problems))
	for i, p := range problems {
		out[i] = fielderr.Field{Field: field, Code: p.Code, Message: p.Message}
	}
	return out
}

// Create validates spec, runs the password rules, and stores the new user
// with a user.created event by actor. Invalid input is a *fielderr.Error
// naming each field; a taken username wraps storage.ErrConflict.
func (a *Accounts) Create(ctx context.Context, spec UserSpec, actor Actor) (*storage.User, error) {
	var fe fielderr.Error
	username := checkUsername(&fe, spec)
	u := &storage.User{Username: username, Email: spec.Email, EmailVerified: spec.EmailVerified, Admin: spec.Admin}
	// The password is judged with the rest, so one answer lists every
	// problem, in the order of the fields.
	err := a.CheckPassword(ctx, "password", spec.Password, u)
	if pe, ok := fielderr.As(err); ok {
		fe.Fields = append(fe.Fields, pe.Fields...)
	} else if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	checkEmail(&fe, spec)
	if err := fe.Err(); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	// Normalizable: CheckPassword has refused the password otherwise.
	password, _ := normalizePassword(spec.Password)
	hash, err := a.hasher.Hash(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("create user %s: hash: %w", username, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("create user %s: %w", username, err)
	}
	u.ID, u.PasswordHash = id.String(), hash
	err = a.store.InTx(ctx, func(ctx context.Context) error {
		if err := a.store.CreateUser(ctx, u); err != nil {
			return err
		}
		return a.record(ctx, actor, audit.Event{Type: audit.TypeUserCreated, UserID: u.ID,
			Details: map[string]any{"username": u.Username}})
	})
	if err != nil {
		return nil, fmt.Errorf("create user %s: %w", username, err)
	}
	return u, nil
}

// ChangePassword is the user's own change, made from the browser session
// keep: the new password is judged and stored and, when the session policy
// says invalidate_on_password_change, every other session and token of the
// user ends, in one transaction with the events, so an attacker's session
// cannot survive a change that reports success. The caller has verified
// the current password. The result is nil when the policy keeps sessions.
func (a *Accounts) ChangePassword(ctx context.Context, userID, newPassword string, actor Actor, keep string) (*Ended, error) {
	ended, err := a.setPassword(ctx, userID, newPassword, actor, keep, PasswordReasonChange)
	if err != nil {
		return nil, fmt.Errorf("change password of user %s: %w", userID, err)
	}
	return ended, nil
}

// ResetPassword is an administrator's reset. Unlike a self-service change
// it keeps no session when the policy ends them: whoever held the old
// password may be signed in anywhere. An unknown user wraps
// storage.ErrNotFound, answered before any hashing. The result is nil when
// the policy keeps sessions.
func (a *Accounts) ResetPassword(ctx context.Context, userID, newPassword string, actor Actor) (*Ended, error) {
	ended, err := a.setPassword(ctx, userID, newPassword, actor, "", PasswordReasonReset)
	if err != nil {
		return nil, fmt.Errorf("reset password of user %s: %w", userID, err)
	}
	return ended, nil
}

func (a *Accounts) setPassword(ctx context.Context, userID, password string, actor Actor, keep, reason string) (*Ended, error) {
	u, err := a.store.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	if err := a.CheckPassword(ctx, "password", password, u); err != nil {
		return nil, err
	}
	// Hashing is slow by design; it runs before the transaction so no lock
	// is held while it does.
	password, _ = normalizePassword(password) // CheckPassword refused it otherwise
	hash, err := a.hasher.Hash(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	invalidate := a.policies("").Session.InvalidateOnPasswordChange
	var ended *Ended
	err = a.store.InTx(ctx, func(ctx context.Context) error {
		if err := a.store.UpdatePasswordHash(ctx, userID, hash); err != nil {
			return err
		}
		details := map[string]any{"sessions_revoked": invalidate}
		if keep != "" {
			details["session_id"] = keep
		}
		if invalidate {
			e, err := a.end(ctx, userID, keep, EndReasonPasswordChanged, actor)
			if err != nil {
				return err
			}
			ended = &e
			details["sessions_ended"], details["tokens_revoked"] = len(e.Sessions), e.Tokens
		} else {
			details["sessions_ended"] = 0
		}
		return a.record(ctx, actor, audit.Event{Type: audit.TypePasswordChanged, UserID: userID, Reason: reason, Details: details})
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// EndEverything ends every browser session of the user and revokes every
// token issued to them, also those whose session already expired: nothing
// of the user's survives. The events say why (reason: EndReasonAdmin,
// EndReasonPasswordChanged, a lockout's). An unknown user wraps
// storage.ErrNotFound and changes nothing.
func (a *Accounts) EndEverything(ctx context.Context, userID, reason string, actor Actor) (Ended, error) {
	var ended Ended
	err := a.store.InTx(ctx, func(ctx context.Context) error {
		if _, err := a.store.User(ctx, userID); err != nil {
			return err
		}
		var err error
		ended, err = a.end(ctx, userID, "", reason, actor)
		return err
	})
	if err != nil {
		return Ended{}, fmt.Errorf("end everything of user %s: %w", userID, err)
	}
	return ended, nil
}

// end is the one place a user's sessions and token families end: every
// token of the user not issued under keep is revoked and every session but
// keep deleted, with a session.ended event per session and one
// token.revoked event, all with reason. It must run in a transaction.
func (a *Accounts) end(ctx context.Context, userID, keep, reason string, actor Actor) (Ended, error) {
	if userID == "" {
		// An empty subject filter would match every token of every user.
		return Ended{}, errors.New("end sessions: no user id")
	}
	// Revoking first counts the tokens; EndUserSessions then finds none
	// left to revoke and deletes the sessions.
	revoked, err := a.sessions.RevokeTokens(ctx, storage.TokenFilter{Subject: userID, ExceptSessionID: keep})
	if err != nil {
		return Ended{}, err
	}
	ids, err := a.sessions.EndUserSessions(ctx, userID, keep)
	if err != nil {
		return Ended{}, err
	}
	for _, sid := range ids {
		if err := a.record(ctx, actor, audit.Event{Type: audit.TypeSessionEnded, UserID: userID, Reason: reason,
			Details: map[string]any{"session_id": sid}}); err != nil {
			return Ended{}, err
		}
	}
	if err := a.record(ctx, actor, audit.Event{Type: audit.TypeTokenRevoked, UserID: userID, Reason: reason,
		Details: map[string]any{"tokens_revoked": revoked}}); err != nil {
		return Ended{}, err
	}
	if ids == nil {
		ids = []string{}
	}
	return Ended{Sessions: ids, Tokens: revoked}, nil
}

// record writes e as actor's successful change. The request's address and
// device are added by the recorder.
func (a *Accounts) record(ctx context.Context, actor Actor, e audit.Event) error {
	e.Actor = actor.ID
	e.Outcome = audit.OutcomeSuccess
	if len(actor.Details) > 0 {
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		maps.Copy(e.Details, actor.Details)
	}
	return a.recorder.Record(ctx, e)
}
