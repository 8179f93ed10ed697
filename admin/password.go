package admin

import (
	"net/http"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
)

// passwordReset is the body of PUT /admin/users/{id}/password.
type passwordReset struct {
	Password string `json:"password"`
}

// resetPassword sets a user's password through the accounts service: the
// same rules as any password write and, when the policy ends sessions on a
// password change, every session and token of the user ends (a reset keeps
// none, unlike a self-service change: whoever held the old password may be
// signed in anywhere).
func (h *handler) resetPassword(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id := r.PathValue("id")
	var req passwordReset
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if _, err := h.accounts.ResetPassword(r.Context(), id, req.Password, accountActor(who)); err != nil {
		return err
	}
	h.logChange(r, who, audit.Event{Type: audit.TypePasswordChanged, UserID: id})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// accountActor is who acts in the accounts service's audit events, as
// auditedAll names them for the API's own changes.
func accountActor(who *oauth.TokenInfo) authn.Actor {
	return authn.Actor{ID: actor(who), Details: map[string]any{"admin_client_id": who.ClientID}}
}
