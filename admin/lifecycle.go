package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/storage"
)

// The password and account lifecycle routes: what a candidate password
// policy would do to the accounts there are, an administrator's expiry
// date, a password to change at the next sign-in, and activation links.

// LinkSender mails account links; *authn.Links satisfies it.
type LinkSender interface {
	// CanMail reports whether links can be mailed at all.
	CanMail() bool
	// Send mails u a new link of kind and records its event by actor;
	// false when nothing was queued.
	Send(ctx context.Context, u *storage.User, kind string, actor authn.Actor) (bool, error)
}

var _ LinkSender = (*authn.Links)(nil)

// LifecycleStore is the part of storage the lifecycle routes write;
// *storage.Store has it. It is asked of Config.Store, as LockoutStore is,
// because each write must be in the transaction of its audit event.
type LifecycleStore interface {
	User(ctx context.Context, id string) (*storage.User, error)
	SetPasswordMustChange(ctx context.Context, userID string, must bool) error
	SetUserExpiry(ctx context.Context, userID string, at *time.Time) error
}

var _ LifecycleStore = (*storage.Store)(nil)

// Ender ends every session and token of a user; *authn.Accounts
// satisfies it.
type Ender interface {
	EndEverything(ctx context.Context, userID, reason string, actor authn.Actor) (authn.Ended, error)
}

// lifecycle is the store's LifecycleStore, nil when it has none: then the
// routes that write the account are not served.
func (h *handler) lifecycle() LifecycleStore {
	ls, _ := h.store.(LifecycleStore)
	return ls
}

// canMail reports whether account links can be mailed.
func (h *handler) canMail() bool { return h.links != nil && h.links.CanMail() }

// registration is the global registration policy, which decides account
// expiry: an account is shared by every application.
func (h *handler) registration() policies.Registration {
	if h.policies == nil {
		return policies.Defaults().Registration
	}
	return h.policies.Global().Registration
}

// Error codes of the lifecycle routes.
const (
	codeAlreadyActive      = "already_active"
	codeAwaitingActivation = "awaiting_activation"
	codeNoEmail            = "no_email"
	codeMailUnavailable    = "mail_unavailable"
)

func mailUnavailable(description string) error {
	return &apiError{status: http.StatusServiceUnavailable, code: codeMailUnavailable, description: description}
}

// decodeOptionalJSON is decodeJSON for a body that may be left out: no
// body at all leaves dst as it is. A null body is refused rather than
// read as no body, as a script's empty variable should not pass for a
// choice.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{body, r.Body}
	raw := json.RawMessage(nil)
	if err := decodeJSON(w, r, &raw); err != nil {
		return err
	}
	if string(raw) == "null" {
		return badRequest(errors.New("null body"), "the request body must be a JSON object; leave it out for the defaults")
	}
	return decodeStrict(raw, dst)
}

// decodeStrict decodes a JSON value decodeJSON has already checked into
// dst, refusing unknown fields.
func decodeStrict(raw json.RawMessage, dst any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	return nil
}

// sentValue is a JSON member that knows whether it was sent, and null
// from any value, so that "left out" can mean a default while null is
// refused instead of read as one. A wrong type surfaces as encoding/json's
// own error, which the decoder tags with the field name.
type sentValue[T any] struct {
	sent, null bool
	v          T
}

func (s *sentValue[T]) UnmarshalJSON(b []byte) error {
	s.sent = true
	if string(b) == "null" {
		s.null = true
		return nil
	}
	return json.Unmarshal(b, &s.v)
}

// ---------------------------------------------------------------------
// POST /admin/policies/password/preview

// previewBatch is how many users the preview reads at a time, so that a
// large directory is never held in memory at once.
const previewBatch = 500

// PasswordPreview is how many accounts a candidate password policy would
// make change their password, judged from what is stored of each password
// (its facts and when it was set), never the password.
type PasswordPreview struct {
	// Accounts counts every account, disabled ones included.
	Accounts int `json:"accounts"`
	// WouldChange counts, once each, the accounts whose password has
	// expired under the candidate, and, unless ForceResetIfInvalid is
	// "off", those whose facts break its rules.
	WouldChange int `json:"would_change"`
	// ByCode counts the accounts breaking each rule, by problem code,
	// whatever ForceResetIfInvalid says; codes no account breaks are
	// left out.
	ByCode map[string]int `json:"by_code"`
	// Expired counts passwords older than the candidate's expire_days.
	Expired int `json:"expired"`
	// Unknown counts passwords without recorded facts (set before facts
	// were kept), which cannot be judged until their next sign-in.
	Unknown int `json:"unknown"`
	// WithoutPassword counts accounts awaiting activation, which have no
	// password to judge.
	WithoutPassword     int    `json:"without_password"`
	ForceResetIfInvalid string `json:"force_reset_if_invalid"`
}

// PasswordTally adds accounts up into a PasswordPreview under a candidate
// policy at a time; it does no I/O, so a caller pages through users and
// feeds it each page.
type PasswordTally struct {
	pol policies.Password
	now time.Time
	out PasswordPreview
}

// NewPasswordTally starts a tally under candidate at now.
func NewPasswordTally(candidate policies.Password, now time.Time) *PasswordTally {
	return &PasswordTally{pol: candidate, now: now,
		out: PasswordPreview{ByCode: map[string]int{}, ForceResetIfInvalid: candidate.ForceResetIfInvalid}}
}

// Add counts u. Its password's age runs from its last change or, when
// that was not recorded, from the account's creation, as the sign-in
// judges it.
func (t *PasswordTally) Add(u *storage.User) {
	t.out.Accounts++
	if u.PasswordHash == "" {
		t.out.WithoutPassword++
		return
	}
	changed := u.CreatedAt
	if u.PasswordChangedAt != nil {
		changed = *u.PasswordChangedAt
	}
	expired := t.pol.Expired(changed, t.now)
	if expired {
		t.out.Expired++
	}
	invalid := false
	var facts policies.PasswordFacts
	// Facts that do not decode are as good as none: judging a zero value
	// would count the account as breaking every rule.
	if u.PasswordFacts == "" || json.Unmarshal([]byte(u.PasswordFacts), &facts) != nil {
		t.out.Unknown++
	} else {
		codes := map[string]bool{}
		for _, p := range t.pol.Problems(facts) {
			codes[p.Code] = true
		}
		for code := range codes {
			t.out.ByCode[code]++
		}
		invalid = len(codes) > 0 && t.pol.ForceResetIfInvalid != policies.ForceResetOff
	}
	if expired || invalid {
		t.out.WouldChange++
	}
}

// Result is the preview of the accounts added so far.
func (t *PasswordTally) Result() PasswordPreview {
	out := t.out
	out.ByCode = maps.Clone(t.out.ByCode)
	return out
}

// passwordPreviewed is the answer of the preview: the counts and the
// candidate section's warnings, as a patch would have them.
type passwordPreviewed struct {
	PasswordPreview
	Warnings []fielderr.Field `json:"warnings"`
}

// CandidatePassword applies patch, a merge patch of the password section
// (what PATCH /admin/policies takes under "password"), to the section of
// global and validates the result as the policy engine would: an invalid
// candidate is an error wrapping policystore.ErrInvalid and a
// *fielderr.Error naming keys such as password.min_length. Warnings are
// the section's.
func CandidatePassword(global policies.Policy, patch []byte) (policies.Password, []fielderr.Field, error) {
	wrapped := make([]byte, 0, len(patch)+len(`{"password":}`))
	wrapped = append(append(append(wrapped, `{"password":`...), patch...), '}')
	p, err := policies.ApplyPatch(global, wrapped)
	if err != nil {
		return policies.Password{}, nil, fmt.Errorf("%w: %w", policystore.ErrInvalid, err)
	}
	warnings, err := p.Validate()
	if err != nil {
		return policies.Password{}, nil, fmt.Errorf("%w: %w", policystore.ErrInvalid, err)
	}
	own := []fielderr.Field{}
	for _, w := range warnings {
		if strings.HasPrefix(w.Field, "password.") {
			own = append(own, w)
		}
	}
	return p.Password, own, nil
}

// previewPassword counts what a candidate password policy would do. It
// reads only, so it records nothing.
func (h *handler) previewPassword(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	patch, err := readMergePatch(w, r)
	if err != nil {
		return err
	}
	candidate, warnings, err := CandidatePassword(h.policies.Global(), patch)
	if err != nil {
		return fmt.Errorf("preview password policy: %w", policyError(err))
	}
	tally := NewPasswordTally(candidate, h.now())
	for after := ""; ; {
		rows, err := h.store.ListUsers(r.Context(), after, previewBatch)
		if err != nil {
			return fmt.Errorf("preview password policy: list users after %q: %w", after, err)
		}
		for i := range rows {
			tally.Add(&rows[i])
		}
		if len(rows) < previewBatch {
			break
		}
		after = rows[len(rows)-1].ID
	}
	h.writeJSON(w, r, http.StatusOK, passwordPreviewed{PasswordPreview: tally.Result(), Warnings: warnings})
	return nil
}

// ---------------------------------------------------------------------
// PUT /admin/users/{id}/expiry

// minExpiryYear bounds an expiry date from below: a zero time means
// "never" to the policy, so dates near it are refused rather than stored
// to be misread. RFC 3339's four-digit years bound it from above.
const minExpiryYear = 1970

// ParseExpiry reads an administrator's expiry date: an RFC 3339 time
// from 1970 to 9999, kept in UTC to the microsecond (what both databases
// store).
func ParseExpiry(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("must be an RFC 3339 time such as 2030-01-02T15:04:05Z")
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Year() < minExpiryYear {
		return time.Time{}, errors.New("must be 1970-01-01T00:00:00Z or later")
	}
	return t, nil
}

// expiryRequest is the body of PUT /admin/users/{id}/expiry.
type expiryRequest struct {
	ExpiresAt sentValue[string] `json:"expires_at"`
}

// readExpiry reads the date to set, nil to clear it.
func readExpiry(w http.ResponseWriter, r *http.Request) (*time.Time, error) {
	var req *expiryRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	if req == nil {
		return nil, badRequest(errors.New("null body"), "the request body must be a JSON object")
	}
	switch {
	case !req.ExpiresAt.sent:
		return nil, fielderr.New("expires_at", "is required: an RFC 3339 time, or null to clear the date")
	case req.ExpiresAt.null:
		return nil, nil
	}
	t, err := ParseExpiry(req.ExpiresAt.v)
	if err != nil {
		return nil, fielderr.New("expires_at", "%v, or null to clear the date", err)
	}
	return &t, nil
}

// ExpiryChanged is what an expiry change found and left.
type ExpiryChanged struct {
	UserID        string
	Before, After *storage.User
	// EffectiveBefore and EffectiveAfter are when the account expires
	// under the registration policy; zero for never.
	EffectiveBefore, EffectiveAfter time.Time
	// Expired is whether the account has expired after the change; its
	// sessions and tokens were then ended (Ended).
	Expired bool
	Ended   authn.Ended
}

// SetExpiry is an administrator's change of an account's expiry date,
// for the API and the CLI alike: at, or nil to leave the date to the
// registration policy reg. When the account has expired after it (a date
// at or before now), every session and token of the user ends at once,
// with reason account_expired, by actor: an expiry that leaves a
// signed-in session working has not expired anything. Run it in a
// transaction of the store, the one its event (ExpiryChanged.Event) is
// recorded in; an unknown user wraps storage.ErrNotFound.
func SetExpiry(ctx context.Context, st LifecycleStore, ender Ender, reg policies.Registration, now time.Time, userID string, at *time.Time, actor authn.Actor) (ExpiryChanged, error) {
	c := ExpiryChanged{UserID: userID}
	var err error
	if c.Before, err = st.User(ctx, userID); err != nil {
		return c, fmt.Errorf("set expiry of user %s: %w", userID, err)
	}
	if err := st.SetUserExpiry(ctx, userID, at); err != nil {
		return c, fmt.Errorf("set expiry of user %s: %w", userID, err)
	}
	if c.After, err = st.User(ctx, userID); err != nil {
		return c, fmt.Errorf("set expiry of user %s: read back: %w", userID, err)
	}
	c.EffectiveBefore = reg.AccountExpiry(c.Before.CreatedAt, c.Before.ExpiresAt)
	c.EffectiveAfter = reg.AccountExpiry(c.After.CreatedAt, c.After.ExpiresAt)
	c.Expired = reg.AccountExpired(c.After.CreatedAt, c.After.ExpiresAt, now)
	if c.Expired {
		if c.Ended, err = ender.EndEverything(ctx, userID, authn.ReasonAccountExpired, actor); err != nil {
			return c, fmt.Errorf("set expiry of user %s: %w", userID, err)
		}
	}
	return c, nil
}

// Event is the account.expiry_changed event of the change, without its
// actor: the administrator's date and the effective one, before and after
// (null for none, never), and what an expiry ended.
func (c ExpiryChanged) Event() audit.Event {
	details := map[string]any{
		"before":           rfc3339(c.Before.ExpiresAt),
		"after":            rfc3339(c.After.ExpiresAt),
		"effective_before": rfc3339(timeRef(c.EffectiveBefore)),
		"effective_after":  rfc3339(timeRef(c.EffectiveAfter)),
		"expired":          c.Expired,
	}
	if c.Expired {
		details["sessions_ended"] = len(c.Ended.Sessions)
		details["tokens_revoked"] = c.Ended.Tokens
	}
	return audit.Event{Type: audit.TypeAccountExpiryChanged, UserID: c.UserID, Reason: reasonAdmin, Details: details}
}

// rfc3339 is t as the audit trail shows a time, nil for none.
func rfc3339(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (h *handler) setExpiry(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	at, err := readExpiry(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	reg, now := h.registration(), h.now()
	var done ExpiryChanged
	err = h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		var err error
		done, err = SetExpiry(ctx, h.lifecycle(), h.accounts, reg, now, id, at, accountActor(who))
		if err != nil {
			return nil, err
		}
		return []audit.Event{done.Event()}, nil
	})
	if err != nil {
		return err
	}
	h.writeJSON(w, r, http.StatusOK, NewUserView(done.After, reg, now))
	return nil
}

// ---------------------------------------------------------------------
// POST /admin/users/{id}/password-reset

// ErrAwaitingActivation means the account has no password yet: it is
// activated, not reset.
var ErrAwaitingActivation = errors.New("the account has no password yet")

// Reasons a reset link was not mailed.
const (
	LinkNotRequested    = "not_requested"
	LinkNoEmail         = "no_email"
	LinkMailUnavailable = "mail_unavailable"
	LinkNotQueued       = "not_queued"
)

// PasswordChangeRequired is what an administrator's demand for a new
// password did.
type PasswordChangeRequired struct {
	UserID string
	// AlreadyMarked is whether the password was marked before.
	AlreadyMarked bool
	SendLink      bool
	LinkSent      bool
	// NotSent is why no link was mailed (a Link constant), "" when one was.
	NotSent string
}

// RequirePasswordChange marks userID's password as one to change at the
// next sign-in and, with sendLink, mails the owner a reset link when links
// can be mailed (links may be nil) and the account has an address. Run it
// in a transaction of the store, the one its event is recorded in, so the
// mark and the link are made together or not at all. An unknown user
// wraps storage.ErrNotFound, one awaiting activation ErrAwaitingActivation.
func RequirePasswordChange(ctx context.Context, st LifecycleStore, links LinkSender, userID string, sendLink bool, actor authn.Actor) (PasswordChangeRequired, error) {
	p := PasswordChangeRequired{UserID: userID, SendLink: sendLink}
	u, err := st.User(ctx, userID)
	if err != nil {
		return p, fmt.Errorf("require password change of user %s: %w", userID, err)
	}
	if u.PasswordHash == "" {
		return p, fmt.Errorf("require password change of user %s: %w", userID, ErrAwaitingActivation)
	}
	p.AlreadyMarked = u.PasswordMustChange
	if err := st.SetPasswordMustChange(ctx, userID, true); err != nil {
		return p, fmt.Errorf("require password change of user %s: %w", userID, err)
	}
	switch {
	case !sendLink:
		p.NotSent = LinkNotRequested
	case links == nil || !links.CanMail():
		p.NotSent = LinkMailUnavailable
	case u.Email == "":
		p.NotSent = LinkNoEmail
	default:
		// In the transaction: should it roll back after the mail was
		// queued, the mail carries a link that was never stored, which
		// opens nothing; the other order could leave a stored link
		// nobody was sent, or a mark without the promised mail.
		if p.LinkSent, err = links.Send(ctx, u, authn.LinkReset, actor); err != nil {
			return p, fmt.Errorf("require password change of user %s: %w", userID, err)
		}
		if !p.LinkSent {
			p.NotSent = LinkNotQueued
		}
	}
	return p, nil
}

// Event is the password.change_required event, without its actor.
func (p PasswordChangeRequired) Event() audit.Event {
	details := map[string]any{"already_marked": p.AlreadyMarked, "send_link": p.SendLink, "link_sent": p.LinkSent}
	if p.NotSent != "" {
		details["link_not_sent_reason"] = p.NotSent
	}
	return audit.Event{Type: audit.TypePasswordChangeRequired, UserID: p.UserID, Reason: reasonAdmin, Details: details}
}

// passwordResetRequest is the body of POST /admin/users/{id}/password-reset.
type passwordResetRequest struct {
	SendLink sentValue[bool] `json:"send_link"`
}

// passwordResetDone is its answer.
type passwordResetDone struct {
	MustChange bool   `json:"must_change"`
	LinkSent   bool   `json:"link_sent"`
	NotSent    string `json:"link_not_sent_reason,omitempty"`
}

func (h *handler) requirePasswordReset(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	var req passwordResetRequest
	if err := decodeOptionalJSON(w, r, &req); err != nil {
		return err
	}
	if req.SendLink.null {
		return fielderr.New("send_link", "must be true or false; leave it out to send the link")
	}
	sendLink := !req.SendLink.sent || req.SendLink.v
	id := r.PathValue("id")
	var done PasswordChangeRequired
	err := h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		var err error
		done, err = RequirePasswordChange(ctx, h.lifecycle(), h.links, id, sendLink, accountActor(who))
		if errors.Is(err, ErrAwaitingActivation) {
			return nil, &apiError{status: http.StatusConflict, code: codeAwaitingActivation, cause: err,
				description: "the account has no password yet; send its activation link (POST /admin/users/" + id + "/activation) instead"}
		}
		if err != nil {
			return nil, err
		}
		return []audit.Event{done.Event()}, nil
	})
	if err != nil {
		return err
	}
	h.writeJSON(w, r, http.StatusOK, passwordResetDone{MustChange: true, LinkSent: done.LinkSent, NotSent: done.NotSent})
	return nil
}

// ---------------------------------------------------------------------
// POST /admin/users/{id}/activation

// activationSent is the answer of POST /admin/users/{id}/activation.
type activationSent struct {
	LinkSent bool `json:"link_sent"`
}

// sendActivation (re)sends the activation link of an account created
// without a password. The link's own event (account_link.sent, reason
// activation) is the audit of it.
func (h *handler) sendActivation(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	if err := decodeOptionalJSON(w, r, &struct{}{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	err := h.store.InTx(r.Context(), func(ctx context.Context) error {
		u, err := h.store.User(ctx, id)
		if err != nil {
			return err
		}
		if u.PasswordHash != "" {
			return &apiError{status: http.StatusConflict, code: codeAlreadyActive,
				description: "the account has a password; use POST /admin/users/" + id + "/password-reset to have it changed"}
		}
		if u.Email == "" {
			return &apiError{status: http.StatusConflict, code: codeNoEmail,
				description: "the account has no email address to send the activation link to"}
		}
		if !h.canMail() {
			return mailUnavailable("email is not configured ([smtp] host), so no link can be sent")
		}
		sent, err := h.links.Send(ctx, u, authn.LinkActivation, accountActor(who))
		if err != nil {
			return err
		}
		if !sent {
			// Rolled back with the link it stored: nothing was sent.
			return mailUnavailable("the mail could not be queued; try again shortly")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("send activation link of user %s: %w", id, err)
	}
	h.writeJSON(w, r, http.StatusOK, activationSent{LinkSent: true})
	return nil
}
