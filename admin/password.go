package admin

import (
	"context"
	"fmt"
	"net/http"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
)

// reasonAdminReset is the audit reason of a password set by an
// administrator, telling it from the user's own change.
const reasonAdminReset = "admin_reset"

// passwordReset is the body of PUT /admin/users/{id}/password.
type passwordReset struct {
	Password string `json:"password"`
}

// resetPassword sets a user's password. Unlike a self-service change, which
// keeps the session it was made from, a reset keeps nothing when the policy
// ends sessions on a password change: whoever held the old password may be
// signed in anywhere.
func (h *handler) resetPassword(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id := r.PathValue("id")
	var req passwordReset
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	// Unknown users are answered before the costly hash.
	if _, err := h.store.User(r.Context(), id); err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	if err := authn.CheckPassword("password", req.Password); err != nil {
		return fmt.Errorf("reset password of user %s: %w", id, err)
	}
	// Hashing is slow by design; it runs before the transaction so no lock
	// is held while it does.
	hash, err := h.hasher.Hash(req.Password)
	if err != nil {
		return fmt.Errorf("reset password of user %s: hash: %w", id, err)
	}
	invalidate := h.policies.Global().Session.InvalidateOnPasswordChange
	err = h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		if err := h.passwords.UpdatePasswordHash(ctx, id, hash); err != nil {
			return nil, err
		}
		var (
			ended   []string
			revoked int64
		)
		if invalidate {
			var err error
			if ended, revoked, err = h.endAllSessions(ctx, id); err != nil {
				return nil, err
			}
		}
		events := sessionEndedEvents(id, ended, authn.EndReasonPasswordChanged)
		return append(events, audit.Event{
			Type: audit.TypePasswordChanged, UserID: id, Reason: reasonAdminReset,
			Details: map[string]any{
				"sessions_revoked": invalidate,
				"sessions_ended":   len(ended),
				"tokens_revoked":   revoked,
			},
		}), nil
	})
	if err != nil {
		return fmt.Errorf("reset password of user %s: %w", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
