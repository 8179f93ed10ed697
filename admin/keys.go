package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/portcullis/portcullis/oauth"
)

// rotateRequest is the body of POST /admin/keys/rotate.
type rotateRequest struct {
	RevokeExisting bool `json:"revoke_existing"`
}

// keyRotated is the answer of POST /admin/keys/rotate.
type keyRotated struct {
	KID            string `json:"kid"`
	Algorithm      string `json:"algorithm"`
	RevokeExisting bool   `json:"revoke_existing"`
	TokensRevoked  int64  `json:"tokens_revoked"`
}

func (h *handler) rotateKeys(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	var req rotateRequest
	// The body is optional: a bare POST is the everyday, non-revoking
	// rotation.
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); !errors.Is(err, io.EOF) {
		r.Body = struct {
			io.Reader
			io.Closer
		}{body, r.Body}
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	// The key manager records key.rotated in the rotation's transaction.
	kid, revoked, err := h.keys.RotateBy(r.Context(), actor(who), req.RevokeExisting)
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, keyRotated{
		KID: kid, Algorithm: h.keys.Algorithm(), RevokeExisting: req.RevokeExisting, TokensRevoked: revoked,
	})
	return nil
}
