package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policystore"
)

// mergePatchType is the media type of an RFC 7396 JSON merge patch.
const mergePatchType = "application/merge-patch+json"

// policyView is the global policy. Policy is the canonical encoding, so
// that two reads of one policy are byte-identical.
type policyView struct {
	Policy json.RawMessage `json:"policy"`
}

// policyChanged is the answer to a patch of the global policy.
type policyChanged struct {
	Policy        json.RawMessage  `json:"policy"`
	Warnings      []fielderr.Field `json:"warnings"`
	TokensRevoked int64            `json:"tokens_revoked"`
}

// clientPolicyView is an application's rules.
type clientPolicyView struct {
	Customized bool            `json:"customized"`
	Policy     json.RawMessage `json:"policy"`
}

// clientPolicyChanged is the answer to a patch of an application's rules.
type clientPolicyChanged struct {
	Customized    bool             `json:"customized"`
	Policy        json.RawMessage  `json:"policy"`
	Warnings      []fielderr.Field `json:"warnings"`
	TokensRevoked int64            `json:"tokens_revoked"`
}

func (h *handler) getPolicies(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	h.writeJSON(w, r, http.StatusOK, policyView{Policy: h.policies.Global().Canonical()})
	return nil
}

func (h *handler) patchPolicies(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	patch, err := readMergePatch(w, r)
	if err != nil {
		return err
	}
	ch, err := h.policies.PatchGlobal(r.Context(), actor(who), patch)
	if ch, err = h.committed(r, ch, err); err != nil {
		return fmt.Errorf("patch global policy: %w", policyError(err))
	}
	h.writeJSON(w, r, http.StatusOK, policyChanged{
		Policy:        ch.Policy.Canonical(),
		Warnings:      nonNilFields(ch.Warnings),
		TokensRevoked: ch.Revoked,
	})
	return nil
}

func (h *handler) getClientPolicies(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	id := r.PathValue("id")
	// The engine answers for any id; only a registered client has rules.
	if _, err := h.store.Client(r.Context(), id); err != nil {
		return fmt.Errorf("get client policy: %w", err)
	}
	customized, p := h.policies.Client(id)
	h.writeJSON(w, r, http.StatusOK, clientPolicyView{Customized: customized, Policy: p.Canonical()})
	return nil
}

func (h *handler) patchClientPolicies(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	patch, err := readMergePatch(w, r)
	if err != nil {
		return err
	}
	ch, err := h.policies.PatchClient(r.Context(), actor(who), r.PathValue("id"), patch)
	if ch, err = h.committed(r, ch, err); err != nil {
		return fmt.Errorf("patch client policy: %w", policyError(err))
	}
	h.writeJSON(w, r, http.StatusOK, clientPolicyChanged{
		Customized:    ch.Customized,
		Policy:        ch.Policy.Canonical(),
		Warnings:      nonNilFields(ch.Warnings),
		TokensRevoked: ch.Revoked,
	})
	return nil
}

// committed separates a failed patch from a committed one whose reload
// failed: the engine returns both the change and the reload error then. The
// change is in the database and every instance's next reload picks it up,
// so answering 500 would tell the administrator it did not happen.
func (h *handler) committed(r *http.Request, ch *policystore.Change, err error) (*policystore.Change, error) {
	if ch == nil {
		if err == nil {
			err = errors.New("policy engine returned neither a change nor an error")
		}
		return nil, err
	}
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "admin: policy changed but not reloaded", slog.Any("error", err))
	}
	return ch, nil
}

// policyError renders a refused patch as invalid_policy; the engine has
// changed nothing.
func policyError(err error) error {
	fe, ok := fielderr.As(err)
	if !errors.Is(err, policystore.ErrInvalid) || !ok {
		return err
	}
	return &apiError{
		status: http.StatusUnprocessableEntity, code: "invalid_policy",
		description: "the policy was refused and nothing was changed: " + fe.Error(),
		fields:      fe.Fields, cause: err,
	}
}

// readMergePatch reads a merge patch body. Only what makes it unreadable is
// refused here (400, 413, 415); what it says is for the engine to judge,
// which names the policy keys at fault.
func readMergePatch(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != mergePatchType && mt != "application/json") {
		return nil, &apiError{
			status: http.StatusUnsupportedMediaType, code: "invalid_request",
			description: "the request body must be " + mergePatchType + " or application/json",
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, decodeError(fmt.Errorf("read merge patch: %w", err))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, decodeError(io.EOF)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, decodeError(err)
	}
	if obj == nil {
		// RFC 7396 would let null replace the whole document; a policy
		// cannot be null.
		return nil, badRequest(errors.New("merge patch is null"), "the request body must be a JSON object")
	}
	return body, nil
}

// nonNilFields keeps an empty warning list as [] in responses.
func nonNilFields(f []fielderr.Field) []fielderr.Field {
	if f == nil {
		return []fielderr.Field{}
	}
	return f
}
