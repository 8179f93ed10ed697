package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
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
}

// NewUserView shows u.
func NewUserView(u *storage.User) UserView {
	return UserView{
		ID:            u.ID,
		Username:      u.Username,
		Email:         u.Email,
		EmailVerified: u.EmailVerified,
		Admin:         u.Admin,
		Disabled:      u.Disabled,
		CreatedAt:     u.CreatedAt,
		UpdatedAt:     u.UpdatedAt,
	}
}

func (h *handler) createUser(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	var spec authn.UserSpec
	if err := decodeJSON(w, r, &spec); err != nil {
		return err
	}
	u, err := h.accounts.Create(r.Context(), spec, accountActor(who))
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
	h.logChange(r, who, audit.Event{Type: audit.TypeUserCreated, UserID: u.ID, Details: map[string]any{"username": u.Username}})
	h.writeJSON(w, r, http.StatusCreated, NewUserView(u))
	return nil
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
	h.writeJSON(w, r, http.StatusOK, paginate(rows, limit,
		func(u storage.User) string { return u.ID },
		func(u storage.User) UserView { return NewUserView(&u) }))
	return nil
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	u, err := h.store.User(r.Context(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get user: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, NewUserView(u))
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
