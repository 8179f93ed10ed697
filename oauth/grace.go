package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
)

// Refresh reuse grace (token.refresh_reuse_grace). Every refresh token is
// single-use, and presenting a used one revokes its family. A client that
// raced itself — sent the same refresh twice, or retried after a lost
// response — would lose its session to that rule. Within the grace period
// such a client gets the same answer the first request got: the response is
// kept, sealed with the system secret, keyed by the consumed token's
// signature, and only for the client it was issued to.

// keepForGrace stores a refresh response for the grace period of the
// client's policy.
func (p *Provider) keepForGrace(ctx context.Context, r *http.Request, clientID string, resp fosite.AccessResponder) {
	grace := p.cfg.Policies.For(clientID).Token.RefreshReuseGrace.D()
	if grace <= 0 {
		return
	}
	body, err := json.Marshal(resp.ToMap())
	if err != nil {
		p.cfg.Logger.ErrorContext(ctx, "encode refresh response for grace", "err", err.Error())
		return
	}
	sig := p.strategy.RefreshTokenSignature(ctx, r.PostForm.Get("refresh_token"))
	if err := p.cfg.Store.PutRefreshGrace(ctx, sig, clientID, body, p.cfg.Now().Add(grace)); err != nil {
		p.cfg.Logger.ErrorContext(ctx, "keep refresh response for grace", "err", err.Error())
	}
}

// graceStore is the storage fosite sees. It differs from Store in one
// place: a used refresh token within its client's grace period does not
// reach fosite as "inactive" — which fosite answers by revoking the family
// — but as a graceReplay carrying the kept response.
type graceStore struct {
	Store
	p *Provider
}

// graceReplay is the kept response for a refresh token reused within the
// grace period. It wraps fosite.ErrNotFound so fosite stops with
// invalid_grant and no revocation; the token endpoint then answers with it.
type graceReplay struct {
	clientID string
	body     []byte
}

func (g *graceReplay) Error() string { return "refresh token reused within the grace period" }
func (g *graceReplay) Unwrap() error { return fosite.ErrNotFound }

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s graceStore) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, err := s.Store.GetRefreshTokenSession(ctx, signature, session)
	if errors.Is(err, fosite.ErrInactiveToken) && req != nil && req.GetClient() != nil {
		if body, ok := s.p.waitForGrace(ctx, signature, req.GetClient().GetID()); ok {
			return nil, &graceReplay{clientID: req.GetClient().GetID(), body: body}
		}
	}
	return req, err
}

// waitForGrace returns the response kept for a used refresh token of
// clientID when its policy grants a grace period. A concurrent refresh of
// the same token keeps its response just after it commits, so wait briefly
// for it to appear.
func (p *Provider) waitForGrace(ctx context.Context, signature, clientID string) ([]byte, bool) {
	if p.cfg.Policies.For(clientID).Token.RefreshReuseGrace.D() <= 0 {
		return nil, false
	}
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		owner, body, err := p.cfg.Store.RefreshGrace(ctx, signature)
		if err == nil {
			return body, owner == clientID
		}
		if !errors.Is(err, storage.ErrNotFound) {
			p.cfg.Logger.ErrorContext(ctx, "read refresh grace", "err", err.Error())
			return nil, false
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-deadline.C:
			return nil, false
		case <-tick.C:
		}
	}
}

// serveGrace answers a token request with a kept refresh response when err
// carries one for the authenticated client, or when the request lost a race
// against a concurrent refresh of the same token within the grace period.
func (p *Provider) serveGrace(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) bool {
	if ar == nil || ar.GetClient() == nil {
		return false
	}
	ctx := r.Context()
	clientID := ar.GetClient().GetID()
	var replay *graceReplay
	if errors.As(err, &replay) {
		if replay.clientID != clientID {
			return false
		}
		p.writeGraceResponse(ctx, w, clientID, replay.body)
		return true
	}
	if !errors.Is(err, storage.ErrAlreadyUsed) {
		return false
	}
	sig := p.strategy.RefreshTokenSignature(ctx, r.PostForm.Get("refresh_token"))
	if body, ok := p.waitForGrace(ctx, sig, clientID); ok {
		p.writeGraceResponse(ctx, w, clientID, body)
		return true
	}
	return false
}

func (p *Provider) writeGraceResponse(ctx context.Context, w http.ResponseWriter, clientID string, body []byte) {
	p.record(ctx, audit.Event{Type: audit.TypeTokenRefreshed, ClientID: clientID, Outcome: audit.OutcomeSuccess,
		Reason: "reuse_within_grace"})
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.TokenIssued(GrantRefreshToken)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
