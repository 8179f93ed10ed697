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
	"github.com/portcullis/portcullis/policies"
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

// clientPolicyView is an application's rules: which sections it
// customizes (customized is whether any does) and the policy that judges
// its requests, its own sections and the global others.
type clientPolicyView struct {
	Customized         bool            `json:"customized"`
	CustomizedSections []string        `json:"customized_sections"`
	Policy             json.RawMessage `json:"policy"`
}

// clientPolicyChanged is the answer to a patch of an application's rules.
type clientPolicyChanged struct {
	Customized         bool             `json:"customized"`
	CustomizedSections []string         `json:"customized_sections"`
	Policy             json.RawMessage  `json:"policy"`
	Warnings           []fielderr.Field `json:"warnings"`
	TokensRevoked      int64            `json:"tokens_revoked"`
}

// sectionReporter is the optional part of a PolicyEngine that tells which
// sections an application customizes; *policystore.Engine has it. An
// engine without it is taken to customize all sections or none.
type sectionReporter interface {
	ClientSections(clientID string) (sections []string, p policies.Policy)
}

var _ sectionReporter = (*policystore.Engine)(nil)

// clientSections asks the engine which sections clientID customizes.
func (h *handler) clientSections(clientID string) ([]string, policies.Policy) {
	if r, ok := h.policies.(sectionReporter); ok {
		sections, p := r.ClientSections(clientID)
		return nonNil(sections), p
	}
	customized, p := h.policies.Client(clientID)
	if customized {
		return policies.SectionKeys(), p
	}
	return []string{}, p
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
	if err := h.keepsCallerIn(r, patch); err != nil {
		return fmt.Errorf("patch global policy: %w", err)
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
	sections, p := h.clientSections(id)
	h.writeJSON(w, r, http.StatusOK, clientPolicyView{Customized: len(sections) > 0, CustomizedSections: sections, Policy: p.Canonical()})
	return nil
}

// patchClientPolicies changes an application's rules with a merge patch of
// the policy document plus two switches (policies.PatchClient has the
// details):
//
//	{"customized": true}                 customize every section (a snapshot of each global one)
//	{"customized": false}                every section back to the global policy
//	{"customized_sections": ["token"]}   customize exactly these; those left out go back
//	{"token": {"access_token_ttl": "5m"}} change the app's own token rules, customizing token first if need be
//
// A section it customizes keeps its values from then on; the others follow
// the global policy live. The answer has the sections it customizes after
// the change and its whole policy.
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
		Customized:         ch.Customized,
		CustomizedSections: nonNil(ch.Sections),
		Policy:             ch.Policy.Canonical(),
		Warnings:           nonNilFields(ch.Warnings),
		TokensRevoked:      ch.Revoked,
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
// refused here (400, 413, 415), text no database can store included; what
// it says is for the engine to judge, which names the policy keys at fault.
func readMergePatch(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != mergePatchType && mt != "application/json") {
		return nil, &apiError{
			status: http.StatusUnsupportedMediaType, code: "invalid_request",
			description: "the request body must be " + mergePatchType + " or application/json",
		}
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
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
	// The engine's rules would refuse most such strings as values out of
	// range, but only as long as every policy string is an enum or a
	// duration; unstorable text gets the same 400 as on every other route.
	if err := checkJSONText(body); err != nil {
		return nil, err
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
