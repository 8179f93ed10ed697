package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage"
)

// MFAService is the second factors of accounts as the admin API manages
// them; *authn.SecondFactors has it. Removal and reset record their own
// audit events, in their own transactions.
type MFAService interface {
	Enrolled(ctx context.Context, userID string) ([]authn.Factor, error)
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
	Remove(ctx context.Context, userID, id string, actor authn.Actor) error
	Reset(ctx context.Context, userID string, actor authn.Actor) (int64, error)
}

var _ MFAService = (*authn.SecondFactors)(nil)

// MFAStatsStore counts factor adoption; *storage.Store has it.
type MFAStatsStore interface {
	MFAStats(ctx context.Context, now time.Time) (storage.MFAStats, error)
}

var _ MFAStatsStore = (*storage.Store)(nil)

// FactorView is one enrolled factor as the API shows it; secrets and
// credentials never leave the server.
type FactorView struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// UserMFAView is GET /admin/users/{id}/mfa.
type UserMFAView struct {
	UserID            string       `json:"user_id"`
	Factors           []FactorView `json:"factors"`
	RecoveryCodesLeft int          `json:"recovery_codes_left"`
}

// ReadUserMFA lists userID's factors, for the API and the CLI.
func ReadUserMFA(ctx context.Context, m MFAService, userID string) (UserMFAView, error) {
	fs, err := m.Enrolled(ctx, userID)
	if err != nil {
		return UserMFAView{}, err
	}
	v := UserMFAView{UserID: userID, Factors: []FactorView{}}
	for _, f := range fs {
		v.Factors = append(v.Factors, FactorView{ID: f.ID, Type: f.Type, Name: f.Name, CreatedAt: f.CreatedAt.UTC(), LastUsedAt: utcRef(f.LastUsedAt)})
	}
	if len(fs) > 0 {
		if v.RecoveryCodesLeft, err = m.RecoveryCodesLeft(ctx, userID); err != nil {
			return UserMFAView{}, err
		}
	}
	return v, nil
}

func utcRef(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (h *handler) getUserMFA(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	id := r.PathValue("id")
	if _, err := h.store.User(r.Context(), id); err != nil {
		return fmt.Errorf("get factors: %w", err)
	}
	v, err := ReadUserMFA(r.Context(), h.mfa, id)
	if err != nil {
		return fmt.Errorf("get factors of user %s: %w", id, err)
	}
	h.writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (h *handler) deleteUserFactor(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id, factorID := r.PathValue("id"), r.PathValue("factor_id")
	// The user is checked in the transaction the removal joins, so one
	// deleted meanwhile is a 404, not an event about nobody.
	var userErr error
	err := h.store.InTx(r.Context(), func(ctx context.Context) error {
		if _, userErr = h.store.User(ctx, id); userErr != nil {
			return userErr
		}
		return h.mfa.Remove(ctx, id, factorID, accountActor(who))
	})
	if userErr != nil {
		return fmt.Errorf("remove factor: %w", userErr)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return notFoundFor(err, fmt.Sprintf("user %s has no factor %q", id, factorID))
	}
	if err != nil {
		return err
	}
	h.log.InfoContext(r.Context(), "admin removed a second factor", "user_id", id, "factor_id", factorID, "actor", actor(who))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// MFAReset is DELETE /admin/users/{id}/mfa's answer.
type MFAReset struct {
	UserID         string `json:"user_id"`
	FactorsRemoved int64  `json:"factors_removed"`
}

func (h *handler) resetUserMFA(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id := r.PathValue("id")
	var n int64
	err := h.store.InTx(r.Context(), func(ctx context.Context) error {
		if _, err := h.store.User(ctx, id); err != nil {
			return fmt.Errorf("reset factors: %w", err)
		}
		var err error
		n, err = h.mfa.Reset(ctx, id, accountActor(who))
		return err
	})
	if err != nil {
		return err
	}
	h.log.InfoContext(r.Context(), "admin reset second factors", "user_id", id, "factors", n, "actor", actor(who))
	h.writeJSON(w, r, http.StatusOK, MFAReset{UserID: id, FactorsRemoved: n})
	return nil
}

// MFAStatsView is GET /admin/mfa/stats: how many active accounts (not
// disabled, not expired) have each kind of factor, and as a share of them.
type MFAStatsView struct {
	ActiveUsers       int64              `json:"active_users"`
	WithAnyFactor     int64              `json:"with_any_factor"`
	WithTOTP          int64              `json:"with_totp"`
	WithWebAuthn      int64              `json:"with_webauthn"`
	WithRecoveryCodes int64              `json:"with_recovery_codes"`
	Adoption          map[string]float64 `json:"adoption"`
}

// NewMFAStatsView adds the shares to counts.
func NewMFAStatsView(s storage.MFAStats) MFAStatsView {
	share := func(n int64) float64 {
		if s.ActiveUsers == 0 {
			return 0
		}
		return float64(n) / float64(s.ActiveUsers)
	}
	return MFAStatsView{
		ActiveUsers: s.ActiveUsers, WithAnyFactor: s.WithAnyFactor, WithTOTP: s.WithTOTP, WithWebAuthn: s.WithWebAuthn,
		WithRecoveryCodes: s.WithRecoveryCodes,
		Adoption: map[string]float64{"any": share(s.WithAnyFactor), "totp": share(s.WithTOTP), "webauthn": share(s.WithWebAuthn),
			"recovery_codes": share(s.WithRecoveryCodes)},
	}
}

func (h *handler) mfaStats(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	st, ok := h.store.(MFAStatsStore)
	if !ok {
		return notFound()
	}
	s, err := st.MFAStats(r.Context(), h.now())
	if err != nil {
		return fmt.Errorf("mfa stats: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, NewMFAStatsView(s))
	return nil
}
