package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

// Attempt is one try at proving who someone is.
type Attempt struct {
	Username string
	Password string
	// IP is the client address, as resolved by the server.
	IP string
	// ClientID is the OAuth client the attempt is made for, when known; it
	// will select the per-application policy.
	ClientID string
	// UserID, when set, names the account and Username is ignored: a
	// signed-in user confirming their password before a sensitive action.
	UserID string
	// Action is that sensitive action (policies.ActionPasswordChange, …);
	// empty for a sign-in. It is recorded with the outcome.
	Action string
}

// Outcome is how an Attempt ended. Reason is machine-readable, for audit
// and counters; a person must never be shown it, since it tells whether
// an account exists. User is set only when OK, so no caller can start a
// session from a failed attempt by mistake.
type Outcome struct {
	User   *storage.User
	OK     bool
	Reason string
}

// Outcome reasons.
const (
	ReasonOK          = "ok"
	ReasonUnknownUser = "unknown_user"
	ReasonBadPassword = "bad_password"
	ReasonDisabled    = "disabled"
)

// maxLoggedUsername bounds what an attacker can push into one log line.
const maxLoggedUsername = 128

// Pipeline runs every sign-in through one ordered list of steps, so a rule
// added as a step (lockout, captcha, MFA) applies to every way of signing in.
type Pipeline struct {
	users    UserStore
	hasher   hashing.Argon2
	logger   *slog.Logger
	recorder *audit.Recorder
	steps    []step
}

// step is one stage of the pipeline. It settles the attempt by calling
// state.fail, or leaves it undecided for the next step; an error is an
// infrastructure failure and aborts the attempt.
type step struct {
	name string
	run  func(context.Context, *attemptState) error
}

// attemptState is what the steps share while one attempt runs.
type attemptState struct {
	Attempt
	user    *storage.User
	failed  bool
	outcome Outcome
}

func (st *attemptState) fail(reason string) {
	st.failed = true
	st.outcome = Outcome{Reason: reason}
}

// NewPipeline returns the login pipeline. hasher holds the current password
// hashing parameters: the cost of the dummy hash for unknown accounts, and
// the target that older hashes are upgraded to. recorder receives a
// login.success or login.failed event per attempt; nil records nothing.
func NewPipeline(users UserStore, hasher hashing.Argon2, logger *slog.Logger, recorder *audit.Recorder) *Pipeline {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Pipeline{users: users, hasher: hasher, logger: logger, recorder: recorder}
	// Order matters. The password is checked before the account gates so a
	// disabled account costs the same work as any other and its state is
	// only revealed (to the audit log) by the correct password. Rehash runs
	// last: only a fully successful sign-in may touch the stored hash.
	p.steps = []step{
		{"identify", p.identify},
		{"verify_password", p.verifyPassword},
		{"account_gates", p.accountGates},
		{"rehash", p.rehash},
	}
	return p
}

// PasswordLogin checks a username and password. Failures of the attempt are
// an Outcome with OK false; the error is only for infrastructure failures.
func (p *Pipeline) PasswordLogin(ctx context.Context, a Attempt) (Outcome, error) {
	st := &attemptState{Attempt: a}
	for _, s := range p.steps {
		if err := s.run(ctx, st); err != nil {
			p.logger.LogAttrs(ctx, slog.LevelError, "password login failed", append(p.logAttrs(st), slog.String("step", s.name), slog.Any("error", err))...)
			return Outcome{}, fmt.Errorf("password login: %s: %w", s.name, err)
		}
		if st.failed {
			break
		}
	}
	out := Outcome{User: st.user, OK: true, Reason: ReasonOK}
	level := slog.LevelInfo
	if st.failed {
		out = st.outcome
		level = slog.LevelWarn
	}
	p.logger.LogAttrs(ctx, level, "password login", append(p.logAttrs(st), slog.String("reason", out.Reason))...)
	p.record(ctx, st, out)
	return out, nil
}

// record writes the outcome to the audit trail. The attempt is decided by
// then, so a failed write is logged (the recorder logs the event itself
// too) rather than turned into a failed sign-in.
func (p *Pipeline) record(ctx context.Context, st *attemptState, out Outcome) {
	e := audit.Event{
		Type: audit.TypeLoginSuccess, ClientID: st.ClientID, IP: st.IP,
		Outcome: audit.OutcomeSuccess, Reason: out.Reason,
		// Only what was typed as a username; never the password.
		Details: map[string]any{"username": truncateUTF8(st.Username, maxLoggedUsername)},
	}
	if !out.OK {
		e.Type, e.Outcome = audit.TypeLoginFailed, audit.OutcomeFailure
	}
	if st.user != nil {
		e.UserID = st.user.ID
		e.Details["username"] = st.user.Username
	}
	if st.Action != "" {
		e.Details["action"] = st.Action
	}
	if out.OK {
		e.Actor = e.UserID
	}
	if err := p.recorder.Record(ctx, e); err != nil {
		p.logger.ErrorContext(ctx, "record login outcome", slog.String("reason", out.Reason), slog.Any("error", err))
	}
}

// logAttrs describes an attempt for the log; the password is never among them.
func (p *Pipeline) logAttrs(st *attemptState) []slog.Attr {
	attrs := []slog.Attr{
		slog.String("username", truncateUTF8(st.Username, maxLoggedUsername)),
		slog.String("ip", st.IP),
		slog.String("client_id", st.ClientID),
	}
	if st.Action != "" {
		attrs = append(attrs, slog.String("action", st.Action))
	}
	if st.user != nil {
		attrs = append(attrs, slog.String("user_id", st.user.ID))
	}
	return attrs
}

// identify finds the account. An unknown account still costs one hash, so
// response time does not tell whether it exists.
func (p *Pipeline) identify(ctx context.Context, st *attemptState) error {
	var (
		u   *storage.User
		err error
	)
	if st.UserID != "" {
		u, err = p.users.User(ctx, st.UserID)
	} else {
		u, err = p.users.UserByUsername(ctx, st.Username)
	}
	if errors.Is(err, storage.ErrNotFound) {
		p.hasher.Dummy(st.Password)
		st.fail(ReasonUnknownUser)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up user: %w", err)
	}
	st.user = u
	return nil
}

func (p *Pipeline) verifyPassword(_ context.Context, st *attemptState) error {
	ok, err := hashing.Verify(st.user.PasswordHash, st.Password)
	if err != nil {
		return fmt.Errorf("verify password of user %s: %w", st.user.ID, err)
	}
	if !ok {
		st.fail(ReasonBadPassword)
	}
	return nil
}

func (p *Pipeline) accountGates(_ context.Context, st *attemptState) error {
	if st.user.Disabled {
		st.fail(ReasonDisabled)
	}
	return nil
}

// rehash upgrades a hash made under older parameters, now that the password
// is known. Failing to do so costs nothing but the upgrade, so it is logged
// and the sign-in goes ahead.
func (p *Pipeline) rehash(ctx context.Context, st *attemptState) error {
	if !p.hasher.NeedsRehash(st.user.PasswordHash) {
		return nil
	}
	hash, err := p.hasher.Hash(st.Password)
	if err == nil {
		err = p.users.UpdatePasswordHash(ctx, st.user.ID, hash)
	}
	if err != nil {
		p.logger.WarnContext(ctx, "rehash password", slog.String("user_id", st.user.ID), slog.Any("error", err))
		return nil
	}
	st.user.PasswordHash = hash
	p.logger.InfoContext(ctx, "rehashed password", slog.String("user_id", st.user.ID))
	return nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
