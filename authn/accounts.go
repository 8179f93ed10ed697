package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	SetPassword(ctx context.Context, userID string, w storage.PasswordWrite) error
	PasswordHistory(ctx context.Context, userID string, limit int) ([]storage.PasswordHistoryEntry, error)
	InvalidateAccountLinks(ctx context.Context, userID, kind string) (int64, error)
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// BreachChecker says whether a password is known to have leaked: the
// offline list always, and the online service when p asks for it. When
// the online service fails and p says "closed", the error wraps
// ErrBreachCheckUnavailable; under "open" the offline answer stands.
type BreachChecker interface {
	Breached(ctx context.Context, password string, p policies.Password) (bool, error)
}

// ErrBreachCheckUnavailable means a password could not be checked against
// leaked passwords right now and the policy refuses it until it can.
var ErrBreachCheckUnavailable = errors.New("breached password check unavailable")

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
	// PasswordReasonForced: the sign-in asked for a new password first
	// (expired, no longer meeting the policy, or an administrator's mark).
	PasswordReasonForced = "forced_change"
	// PasswordReasonResetLink and PasswordReasonActivation: set through a
	// mailed link.
	PasswordReasonResetLink  = "reset_link"
	PasswordReasonActivation = "activation"
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
	// new password after the built-in ones (the policy's composition and
	// breached rules, policies.PasswordPolicyRule, then the history rule).
	Rules []policies.PasswordRule
	// Breaches looks passwords up among leaked ones; nil finds none.
	Breaches BreachChecker
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
	breaches BreachChecker
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
		policies: cfg.Policies, breaches: cfg.Breaches, now: cfg.Now,
	}
	params := cfg.Hasher
	if params == (hashing.Argon2{}) {
		params = hashing.DefaultArgon2
	}
	a.hasher = hashing.NewHasher(params, cfg.Limiter)
	a.rules = append([]policies.PasswordRule{policies.PasswordPolicyRule{}, historyRule{store: cfg.Store, hasher: a.hasher}}, cfg.Rules...)
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
	// PasswordBreachCheckUnavailable: the online breached-password check
	// did not answer and the policy fails closed.
	PasswordBreachCheckUnavailable = "breach_check_unavailable"
)

// PasswordPolicy is the password policy every password write is judged
// by: the global one. A password belongs to the account, which every
// application shares, so no application's customized section may loosen
// (or tighten) what another's users must choose.
func (a *Accounts) PasswordPolicy() policies.Password { return a.policies("").Password }

// CheckPassword runs every rule on password as the new password of u (for
// a new account, only its username and email set) and returns every
// problem, each with its code, as a *fielderr.Error on field, nil when it
// passes. The rules are the global password policy's (composition,
// breached list, history), then the embedder's.
func (a *Accounts) CheckPassword(ctx context.Context, field, password string, u *storage.User) error {
	_, err := a.checkPassword(ctx, field, password, u)
	return err
}

// checkPassword is CheckPassword, also returning the facts of a password
// that passes, for the write to keep.
func (a *Accounts) checkPassword(ctx context.Context, field, password string, u *storage.User) (policies.PasswordFacts, error) {
	// The byte bound comes before everything: no rule, normalization or
	// hash may be made to work on unbounded input.
	if len(password) > MaxPasswordLength {
		return policies.PasswordFacts{}, &fielderr.Error{Fields: []fielderr.Field{{Field: field, Code: policies.PasswordTooLong,
			Message: fmt.Sprintf("must be at most %d bytes", MaxPasswordLength)}}}
	}
	// An empty password is the length rule's to explain.
	if n, err := normalizePassword(password); err == nil {
		password = n
	} else if password != "" {
		return policies.PasswordFacts{}, &fielderr.Error{Fields: []fielderr.Field{{Field: field, Code: PasswordInvalidCharacter,
			Message: "contains a control character or another character that cannot be typed reliably"}}}
	}
	policy := a.policies("")
	c := policies.PasswordCandidate{
		Password: password, UserID: u.ID, Username: u.Username, Email: u.Email, Admin: u.Admin,
		Now: a.now(), Policy: policy, Facts: policies.FactsOf(password, u.Username, u.Email),
	}
	var fe fielderr.Error
	if a.breaches != nil && password != "" {
		breached, err := a.breaches.Breached(ctx, password, policy.Password)
		switch {
		case errors.Is(err, ErrBreachCheckUnavailable):
			fe.Fields = append(fe.Fields, fielderr.Field{Field: field, Code: PasswordBreachCheckUnavailable,
				Message: "could not be checked against leaked passwords just now; try again in a minute"})
		case err != nil:
			return policies.PasswordFacts{}, fmt.Errorf("check password: %w", err)
		}
		c.Facts.Breached = breached
	}
	for _, rule := range a.rules {
		problems, err := rule.CheckPassword(ctx, c)
		if err != nil {
			return policies.PasswordFacts{}, fmt.Errorf("check password: %w", err)
		}
		fe.Fields = append(fe.Fields, problemFields(field, problems)...)
	}
	return c.Facts, fe.Err()
}

// historyRule is the built-in reuse rule: a new password may not be one
// of the account's recent ones, by the policy's prevent_reuse and
// reuse_days. Each recorded password is an argon2id hash, so every one the
// policy still guards costs a verification; the history keeps at most
// policies.MaxPreventReuse.
type historyRule struct {
	store  AccountStore
	hasher *hashing.Hasher
}

func (r historyRule) CheckPassword(ctx context.Context, c policies.PasswordCandidate) ([]policies.PasswordProblem, error) {
	p := c.Policy.Password
	if c.UserID == "" || !p.KeepsHistory() || c.Password == "" {
		return nil, nil
	}
	entries, err := r.store.PasswordHistory(ctx, c.UserID, policies.MaxPreventReuse)
	if err != nil {
		return nil, fmt.Errorf("history rule: %w", err)
	}
	hashes := make([]string, 0, len(entries)+1)
	times := make([]time.Time, 0, len(entries)+1)
	u, err := r.store.User(ctx, c.UserID)
	if err != nil {
		return nil, fmt.Errorf("history rule: %w", err)
	}
	// A password set before history was kept is still the current one,
	// rank 0, whatever the history holds.
	if len(entries) == 0 || entries[0].PasswordHash != u.PasswordHash {
		at := u.CreatedAt
		if u.PasswordChangedAt != nil {
			at = *u.PasswordChangedAt
		}
		hashes, times = append(hashes, u.PasswordHash), append(times, at)
	}
	for _, e := range entries {
		hashes, times = append(hashes, e.PasswordHash), append(times, e.SetAt)
	}
	for rank, hash := range hashes {
		if hash == "" || p.Reusable(rank, times[rank], c.Now) {
			continue
		}
		same, err := r.hasher.Verify(ctx, hash, c.Password)
		if err != nil {
			return nil, fmt.Errorf("history rule: %w", err)
		}
		if same {
			return []policies.PasswordProblem{{Code: policies.PasswordReused, Message: reusedMessage(p)}}, nil
		}
	}
	return nil, nil
}

// reusedMessage says which earlier passwords are refused.
func reusedMessage(p policies.Password) string {
	switch {
	case p.PreventReuse > 0 && p.ReuseDays > 0:
		return fmt.Sprintf("must differ from your last %d passwords and from any you used in the last %d days", p.PreventReuse, p.ReuseDays)
	case p.PreventReuse == 1:
		return "must differ from your current password"
	case p.PreventReuse > 0:
		return fmt.Sprintf("must differ from your last %d passwords", p.PreventReuse)
	default:
		return fmt.Sprintf("must differ from any password you used in the last %d days", p.ReuseDays)
	}
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
	var facts policies.PasswordFacts
	if spec.WithoutPassword {
		if spec.Password != "" {
			fe.Add("password", "must be empty for an account activated by its owner")
		}
	} else {
		var err error
		facts, err = a.checkPassword(ctx, "password", spec.Password, u)
		if pe, ok := fielderr.As(err); ok {
			fe.Fields = append(fe.Fields, pe.Fields...)
		} else if err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
	}
	checkEmail(&fe, spec)
	if spec.WithoutPassword && spec.Email == "" {
		fe.Add("email", "is required to send the activation link")
	}
	if err := fe.Err(); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	hash := ""
	if !spec.WithoutPassword {
		// Normalizable: checkPassword has refused the password otherwise.
		password, _ := normalizePassword(spec.Password)
		var err error
		if hash, err = a.hasher.Hash(ctx, password); err != nil {
			return nil, fmt.Errorf("create user %s: hash: %w", username, err)
		}
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
		if hash != "" {
			if err := a.writePassword(ctx, u.ID, hash, facts); err != nil {
				return err
			}
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

// SetPasswordWithLink sets the password of the account a reset or
// activation link (kind) names, using up the link in the same transaction
// as the write: of parallel submissions exactly one sets a password, and a
// password the rules refuse leaves the link usable. The mail that carried
// the link proves the address, so it is marked verified. Every session and
// token of the account ends when the session policy says so, none kept:
// whoever knew the old password may be signed in anywhere. An unusable link
// is ErrLinkInvalid.
func (a *Accounts) SetPasswordWithLink(ctx context.Context, links *Links, kind, token, password string) (*storage.User, *Ended, error) {
	link, u, err := links.Peek(ctx, kind, token)
	if err != nil {
		return nil, nil, err
	}
	reason := PasswordReasonResetLink
	if kind == LinkActivation {
		reason = PasswordReasonActivation
	}
	first := func(ctx context.Context) error {
		if _, err := links.use(ctx, kind, token); err != nil {
			return err
		}
		// A reset supersedes every other outstanding reset link.
		if _, err := links.store.InvalidateAccountLinks(ctx, u.ID, LinkReset); err != nil {
			return err
		}
		_, err := links.store.MarkEmailVerified(ctx, u.ID, link.Email)
		return err
	}
	ended, err := a.setPasswordOf(ctx, u, password, Actor{ID: u.ID}, "", reason, first)
	if err != nil {
		return nil, nil, fmt.Errorf("set password of user %s with a %s link: %w", u.ID, kind, err)
	}
	return u, ended, nil
}

// ForcedChange is the password change a sign-in asked for before it may
// complete (Challenge{password_change}); the caller has the login flow
// that proved the current password. Like a reset, no session is kept.
func (a *Accounts) ForcedChange(ctx context.Context, userID, newPassword string) (*Ended, error) {
	u, err := a.store.User(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("forced password change of user %s: %w", userID, err)
	}
	// Whatever the history rule says, a demanded change may not keep the
	// password it replaces.
	if normalized, nerr := normalizePassword(newPassword); nerr == nil && u.PasswordHash != "" && len(newPassword) <= MaxPasswordLength {
		same, err := a.hasher.Verify(ctx, u.PasswordHash, normalized)
		if err != nil {
			return nil, fmt.Errorf("forced password change of user %s: %w", userID, err)
		}
		if same {
			return nil, &fielderr.Error{Fields: []fielderr.Field{{Field: "password", Code: policies.PasswordReused,
				Message: "must differ from your current password"}}}
		}
	}
	ended, err := a.setPasswordOf(ctx, u, newPassword, Actor{ID: userID}, "", PasswordReasonForced, nil)
	if err != nil {
		return nil, fmt.Errorf("forced password change of user %s: %w", userID, err)
	}
	return ended, nil
}

func (a *Accounts) setPassword(ctx context.Context, userID, password string, actor Actor, keep, reason string) (*Ended, error) {
	u, err := a.store.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	return a.setPasswordOf(ctx, u, password, actor, keep, reason, nil)
}

// setPasswordOf judges, hashes and stores password as u's, running first
// (when set) at the start of the write's transaction.
func (a *Accounts) setPasswordOf(ctx context.Context, u *storage.User, password string, actor Actor, keep, reason string, first func(ctx context.Context) error) (*Ended, error) {
	userID := u.ID
	facts, err := a.checkPassword(ctx, "password", password, u)
	if err != nil {
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
		if first != nil {
			if err := first(ctx); err != nil {
				return err
			}
		}
		if err := a.writePassword(ctx, userID, hash, facts); err != nil {
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

// writePassword stores a new password hash with its facts and time, and
// the history the global policy needs (policies.Password.KeepsHistory):
// the last prevent_reuse passwords, or the most the history keeps when
// reuse_days looks back in time.
func (a *Accounts) writePassword(ctx context.Context, userID, hash string, facts policies.PasswordFacts) error {
	p := a.policies("").Password
	keep := p.PreventReuse
	if p.ReuseDays > 0 {
		keep = policies.MaxPreventReuse
	}
	raw, err := json.Marshal(facts)
	if err != nil {
		return fmt.Errorf("encode password facts: %w", err)
	}
	if err := a.store.SetPassword(ctx, userID, storage.PasswordWrite{Hash: hash, Facts: string(raw), At: a.now(), Keep: keep}); err != nil {
		return err
	}
	// A reset link mailed before this change must not undo it.
	_, err = a.store.InvalidateAccountLinks(ctx, userID, LinkReset)
	return err
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
	return record(ctx, a.recorder, actor, e)
}
