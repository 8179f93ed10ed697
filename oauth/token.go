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
	grant := r.PostFormValue("grant_type")
	if grant != "" && !supportedGrant(grant) {
		p.tokenError(w, r, nil, grant, fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", grant))
		return
	}
	ar, err := p.f.NewAccessRequest(ctx, r, session)
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
	// fosite reports a code consumed between its two reads as
	// ErrInvalidatedAuthorizeCode; our conditional update as ErrAlreadyUsed.
	replay := errors.Is(err, storage.ErrAlreadyUsed) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)
	if replay && ar != nil && ar.GetID() != "" {
		if rerr := p.cfg.Store.RevokeFamily(ctx, ar.GetID()); rerr != nil {
			p.cfg.Logger.ErrorContext(ctx, "revoke replayed grant", "err", rerr.Error(), "request_id", ar.GetID())
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
		p.cfg.Logger.ErrorContext(ctx, "token endpoint", "err", err.Error(), "debug", rfc.DebugField)
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.TokenFailed(grant, rfc.ErrorField)
	}
	p.f.WriteAccessError(ctx, w, ar, err)
}

func supportedGrant(g string) bool {
	switch g {
	case "authorization_code", "refresh_token", "client_credentials":
		return true
	}
	return false
}
