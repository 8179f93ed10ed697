package oauth

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/storage"
)

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	session := newSession()
	ar, err := p.f.NewAccessRequest(ctx, r, session)
	grant := r.PostFormValue("grant_type")
	if err != nil {
		p.tokenError(w, r, ar, grant, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
		// RFC 9068: with no end user involved, the subject is the client.
		session.Subject = ar.GetClient().GetID()
		session.ClientID = ar.GetClient().GetID()
	}
	resp, err := p.f.NewAccessResponse(ctx, ar)
	if err != nil {
		p.tokenError(w, r, ar, grant, err)
		return
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.TokenIssued(grant)
	}
	p.f.WriteAccessResponse(ctx, w, ar, resp)
}

// tokenError writes the RFC 6749 5.2 error. A single-use object consumed by
// a concurrent request surfaces from fosite as a storage error; here it
// becomes what it is, a replay: the grant's tokens are revoked (RFC 6749
// 4.1.2 for codes, RFC 6819 5.2.2.3 for refresh tokens) and the client gets
// invalid_grant.
func (p *Provider) tokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, grant string, err error) {
	ctx := r.Context()
	if errors.Is(err, storage.ErrAlreadyUsed) && ar != nil {
		if rerr := p.cfg.Store.RevokeFamily(ctx, ar.GetID()); rerr != nil {
			p.cfg.Logger.ErrorContext(ctx, "revoke replayed grant", "err", rerr, "request_id", ar.GetID())
		}
		hint := "The authorization code has already been used."
		if grant == "refresh_token" {
			hint = "The refresh token was already used."
		}
		p.cfg.Logger.WarnContext(ctx, "single-use credential replayed", "grant_type", grant, "client_id", ar.GetClient().GetID())
		err = fosite.ErrInvalidGrant.WithHint(hint)
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		p.cfg.Logger.ErrorContext(ctx, "token endpoint", "err", err, "debug", rfc.DebugField)
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.TokenFailed(grant, rfc.ErrorField)
	}
	p.f.WriteAccessError(ctx, w, ar, err)
}
