package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage"
)

// reasonAdmin is the audit reason of a session ended or a token revoked by
// an administrator's request; the accounts service uses the same one.
const reasonAdmin = authn.EndReasonAdmin

// SessionView is a browser session as the API shows it. ID is the stored
// id, a hash of the cookie: it names the session without being able to
// impersonate it.
type SessionView struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	AuthTime   time.Time `json:"auth_time"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

// sessionList is the answer of GET /admin/users/{id}/sessions. A user holds
// few sessions (session.max_concurrent), so it is not paginated.
type sessionList struct {
	Items []SessionView `json:"items"`
}

// sessionsEnded is the answer of DELETE /admin/users/{id}/sessions.
type sessionsEnded struct {
	SessionsEnded int   `json:"sessions_ended"`
	TokensRevoked int64 `json:"tokens_revoked"`
}

// tokensRevoked is the answer of POST /admin/tokens/revoke.
type tokensRevoked struct {
	TokensRevoked int64 `json:"tokens_revoked"`
}

func (h *handler) listUserSessions(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	id := r.PathValue("id")
	if _, err := h.store.User(r.Context(), id); err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	rows, err := h.sessions.UserBrowserSessions(r.Context(), id)
	if err != nil {
		return fmt.Errorf("list sessions of user %s: %w", id, err)
	}
	items := make([]SessionView, 0, len(rows))
	for _, bs := range rows {
		items = append(items, SessionView{
			ID: bs.ID, CreatedAt: bs.CreatedAt, AuthTime: bs.AuthTime, LastSeenAt: bs.LastSeenAt,
			ExpiresAt: bs.ExpiresAt, IP: bs.IP, UserAgent: bs.UserAgent,
		})
	}
	h.writeJSON(w, r, http.StatusOK, sessionList{Items: items})
	return nil
}

// endUserSessions ends everything of the user through the accounts
// service, the one place such an end happens, so an administrator's request
// revokes and records exactly what a password change or a lockout does.
func (h *handler) endUserSessions(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id := r.PathValue("id")
	ended, err := h.accounts.EndEverything(r.Context(), id, authn.EndReasonAdmin, accountActor(who))
	if err != nil {
		return err
	}
	h.logChange(r, who, audit.Event{Type: audit.TypeTokenRevoked, UserID: id})
	h.writeJSON(w, r, http.StatusOK, sessionsEnded{SessionsEnded: len(ended.Sessions), TokensRevoked: ended.Tokens})
	return nil
}

func (h *handler) endSession(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	sid := r.PathValue("sid")
	err := h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		// Expired sessions count: their tokens may still be live.
		bs, err := h.sessions.BrowserSessionIncludingExpired(ctx, sid)
		if err != nil {
			return nil, err
		}
		revoked, err := h.sessions.RevokeTokens(ctx, storage.TokenFilter{SessionID: bs.ID})
		if err != nil {
			return nil, err
		}
		found, err := h.sessions.EndBrowserSession(ctx, bs.ID)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("session vanished: %w", storage.ErrNotFound)
		}
		return []audit.Event{{
			Type: audit.TypeSessionEnded, UserID: bs.UserID, Reason: reasonAdmin,
			Details: map[string]any{"session_id": bs.ID, "tokens_revoked": revoked},
		}}, nil
	})
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revokeRequest is the body of POST /admin/tokens/revoke.
type revokeRequest struct {
	ClientID idFilter `json:"client_id"`
	UserID   idFilter `json:"user_id"`
}

// idFilter is an optional id in a request body. It tells null and "" from
// absent, so that neither can silently widen a revocation to every client or
// every user; a script whose variable came out empty gets a 422.
type idFilter struct {
	sent bool
	id   string
}

func (f *idFilter) UnmarshalJSON(b []byte) error {
	f.sent = true
	if string(b) == "null" {
		return nil
	}
	// A wrong type surfaces as encoding/json's own error, which the decoder
	// tags with the field name.
	return json.Unmarshal(b, &f.id)
}

// check adds to fe what is wrong with a sent filter.
func (f idFilter) check(fe *fielderr.Error, field, scope string) {
	if f.sent && f.id == "" {
		fe.Add(field, "must be a non-empty id; leave %s out to revoke the tokens of every %s", field, scope)
	}
}

func (h *handler) revokeTokens(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	var req revokeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	var fe fielderr.Error
	req.ClientID.check(&fe, "client_id", "client")
	req.UserID.check(&fe, "user_id", "user")
	if err := fe.Err(); err != nil {
		return err
	}
	var out tokensRevoked
	err := h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		f := storage.TokenFilter{ClientID: req.ClientID.id, Subject: req.UserID.id}
		if f.ClientID != "" {
			if _, err := h.store.Client(ctx, f.ClientID); err != nil {
				return nil, notFoundFor(err, fmt.Sprintf("no client with client_id %q", f.ClientID))
			}
		}
		if f.Subject != "" {
			if _, err := h.store.User(ctx, f.Subject); err != nil {
				return nil, notFoundFor(err, fmt.Sprintf("no user with id %q", f.Subject))
			}
		}
		n, err := h.sessions.RevokeTokens(ctx, f)
		if err != nil {
			return nil, err
		}
		out.TokensRevoked = n
		return []audit.Event{{
			Type: audit.TypeTokenRevoked, UserID: f.Subject, ClientID: f.ClientID, Reason: reasonAdmin,
			Details: map[string]any{"tokens_revoked": n},
		}}, nil
	})
	if err != nil {
		return fmt.Errorf("revoke tokens: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, out)
	return nil
}

// notFoundFor gives a not-found error a description saying which of
// several ids was unknown; other errors pass unchanged.
func notFoundFor(err error, description string) error {
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return &apiError{status: http.StatusNotFound, code: "not_found", description: description, cause: err}
}
