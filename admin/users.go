package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// UserView is a user as the API and the CLI show it: never the password hash.
type UserView struct {
	ID            string    `json:"id"`
	Username      string    `json:"username"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	Admin         bool      `json:"admin"`
	Disabled      bool      `json:"disabled"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// ExpiresAt is the administrator's expiry date, null for none.
	ExpiresAt *time.Time `json:"expires_at"`
	// EffectiveExpiresAt is when the account expires: ExpiresAt, else
	// registration.account_expire_days after creation; null for never.
	EffectiveExpiresAt *time.Time `json:"effective_expires_at"`
	// Expired is whether EffectiveExpiresAt has passed: the account
	// cannot sign in.
	Expired bool `json:"expired"`
	// PasswordChangedAt is when the password was last set, null when
	// that was not recorded or there is none.
	PasswordChangedAt  *time.Time `json:"password_changed_at"`
	PasswordMustChange bool       `json:"password_must_change"`
	// AwaitingActivation is an account created without a password, whose
	// owner has not yet set one through the activation link.
	AwaitingActivation bool `json:"awaiting_activation"`
}

// NewUserView shows u at now, its expiry decided by the global
// registration policy reg (an account is shared by every application).
func NewUserView(u *storage.User, reg policies.Registration, now time.Time) UserView {
	return UserView{
		ID:                 u.ID,
		Username:           u.Username,
		Email:              u.Email,
		EmailVerified:      u.EmailVerified,
		Admin:              u.Admin,
		Disabled:           u.Disabled,
		CreatedAt:          u.CreatedAt,
		UpdatedAt:          u.UpdatedAt,
		ExpiresAt:          timePtr(u.ExpiresAt),
		EffectiveExpiresAt: timeRef(reg.AccountExpiry(u.CreatedAt, u.ExpiresAt)),
		Expired:            reg.AccountExpired(u.CreatedAt, u.ExpiresAt, now),
		PasswordChangedAt:  timePtr(u.PasswordChangedAt),
		PasswordMustChange: u.PasswordMustChange,
		AwaitingActivation: u.PasswordHash == "",
	}
}

// timePtr is a stored optional time as shown: UTC, in a copy of its own.
func timePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return timeRef(*t)
}

// createUserRequest is the body of POST /admin/users: the spec, whose
// WithoutPassword is not JSON on purpose (a client must not create an
// account nobody can open by leaving the password out), and the request
// that the account be activated by its owner, which sets it.
type createUserRequest struct {
	authn.UserSpec
	// SendActivation creates the account without a password and mails its
	// owner the activation link, through which they choose one.
	SendActivation bool `json:"send_activation"`
}

// unembedded names the fields of a refused create body as the client
// sent them: encoding/json prefixes the fields of the embedded spec with
// its type name ("UserSpec.admin").
func unembedded(err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	const prefix = "UserSpec."
	for i := range ae.fields {
		ae.fields[i].Field = strings.TrimPrefix(ae.fields[i].Field, prefix)
	}
	ae.description = strings.TrimPrefix(ae.description, prefix)
	return err
}

// userCreated is the answer of POST /admin/users.
type userCreated struct {
	UserView
	ActivationLinkSent bool `json:"activation_link_sent"`
}

func (h *handler) createUser(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	var req createUserRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return unembedded(err)
	}
	spec := req.UserSpec
	u, err := h.createAccount(r.Context(), req, accountActor(who))
	if err != nil {
		if errors.Is(err, storage.ErrConflict) {
			// Ids are fresh UUIDs, so the clash is the username. Naming it
			// enumerates nothing an admin cannot list anyway; it is named as
			// stored, so "José" and "josé" are seen to be the same name.
			name, _ := storage.NormalizeUsername(spec.Username) // valid: it reached the insert
			return conflict(err, fmt.Sprintf("a user named %q already exists", name))
		}
		return err
	}
	// Read back: the password's time and facts are written by the
	// accounts service, not set on the user it returns.
	if stored, err := h.store.User(r.Context(), u.ID); err == nil {
		u = stored
	} else {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: read back created user", slog.String("user_id", u.ID), slog.Any("error", err))
	}
	h.logChange(r, who, audit.Event{Type: audit.TypeUserCreated, UserID: u.ID, Details: map[string]any{"username": u.Username}})
	h.writeJSON(w, r, http.StatusCreated, userCreated{
		UserView: NewUserView(u, h.registration(), h.now()), ActivationLinkSent: req.SendActivation,
	})
	return nil
}

// createAccount creates the account req asks for and, with
// send_activation, mails its activation link in the same transaction: an
// account whose link could not be sent is not created, so the request can
// simply be repeated. Mail that is not configured refuses the request
// before anything is done.
func (h *handler) createAccount(ctx context.Context, req createUserRequest, actor authn.Actor) (*storage.User, error) {
	if !req.SendActivation {
		// Outside any transaction: the password is hashed first, which
		// should not hold a database connection.
		return h.accounts.Create(ctx, req.UserSpec, actor)
	}
	if !h.canMail() {
		return nil, mailUnavailable("send_activation needs email, which is not configured ([smtp] host); nothing was created")
	}
	spec := req.UserSpec
	spec.WithoutPassword = true
	var u *storage.User
	err := h.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if u, err = h.accounts.Create(ctx, spec, actor); err != nil {
			return err
		}
		sent, err := h.links.Send(ctx, u, authn.LinkActivation, actor)
		if err != nil {
			return err
		}
		if !sent {
			return mailUnavailable("the activation mail could not be queued; nothing was created, try again shortly")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	rows, err := h.store.ListUsers(r.Context(), after, limit+1)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	reg, now := h.registration(), h.now()
	h.writeJSON(w, r, http.StatusOK, paginate(rows, limit,
		func(u storage.User) string { return u.ID },
		func(u storage.User) UserView { return NewUserView(&u, reg, now) }))
	return nil
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	u, err := h.store.User(r.Context(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get user: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, NewUserView(u, h.registration(), h.now()))
	return nil
}

func (h *handler) deleteUser(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id := r.PathValue("id")
	err := h.audited(r, who, audit.Event{Type: audit.TypeUserDeleted, UserID: id}, func(ctx context.Context) error {
		return h.store.DeleteUser(ctx, id)
	})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
