package oauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseOAuthForm(w, r); err != nil {
		p.formClientCORS(w, r)
		writeOAuthError(w, err)
		return
	}
	p.formClientCORS(w, r)
	session := newSession()
	grant := r.PostFormValue("grant_type")
	// A mobile or native client names its device in the token request;
	// from here on it is the request's device, in every audit event of the
	// grant.
	if d := r.PostFormValue(reqinfo.DeviceIDParam); d != "" {
		r = r.WithContext(reqinfo.WithDevice(ctx, d))
		ctx = r.Context()
	}
	if grant != "" && !SupportedGrant(grant) {
		p.tokenError(w, r, nil, grant, fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", grant))
		return
	}
	ar, err := p.f.NewAccessRequest(ctx, r, session)
	if err != nil {
		p.tokenError(w, r, ar, grant, err)
		return
	}
	clientID := ar.GetClient().GetID()
	if ar.GetGrantTypes().ExactOne(GrantClientCredentials) {
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
		// RFC 9068: with no end user involved, the subject is the client.
		session.Subject = clientID
		session.ClientID = clientID
	}
	// For code and refresh grants fosite has replaced the session with the
	// stored one; it carries the login's facts.
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		p.tokenError(w, r, ar, grant, fosite.ErrServerError.WithDebug("unexpected session type"))
		return
	}
	now := p.cfg.Now()
	pol := p.cfg.Policies.For(clientID)
	facts := grantFacts(sess, now)
	if grant == GrantClientCredentials {
		facts = policies.Grant{LastUsed: now}
	}
	if ended, reason := pol.FamilyEnded(now, facts); ended {
		if err := p.cfg.Store.RevokeFamily(ctx, ar.GetID()); err != nil {
			p.cfg.Logger.ErrorContext(ctx, "revoke ended family", "err", err.Error())
		}
		p.record(ctx, audit.Event{Type: audit.TypeTokenRevoked, ClientID: clientID, UserID: userOf(sess, grant),
			Outcome: audit.OutcomeSuccess, Reason: reason})
		p.tokenError(w, r, ar, grant, fosite.ErrInvalidGrant.WithHintf("The session has ended (%s); sign in again.", strings.ReplaceAll(reason, "_", " ")))
		return
	}
	lt := pol.Lifetimes(now, facts)
	stampLifetimes(sess, lt, now)
	resp, err := p.f.NewAccessResponse(withLifetimes(ctx, lt), ar)
	if err != nil {
		p.tokenError(w, r, ar, grant, err)
		return
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.TokenIssued(grant)
	}
	event := audit.TypeTokenIssued
	if grant == GrantRefreshToken {
		event = audit.TypeTokenRefreshed
		p.keepForGrace(ctx, r, clientID, resp)
	}
	p.recordIssued(ctx, audit.Event{Type: event, ClientID: clientID, UserID: userOf(sess, grant), Outcome: audit.OutcomeSuccess,
		Reason: grant, Details: map[string]any{"scope": strings.Join(ar.GetGrantedScopes(), " "), "family": ar.GetID()}})
	p.f.WriteAccessResponse(ctx, w, ar, resp)
}

// userOf is the user a grant acts for; client credentials act for none.
func userOf(s *Session, grant string) string {
	if grant == GrantClientCredentials {
		return ""
	}
	return s.GetSubject()
}

// tokenError writes the RFC 6749 5.2 error. A single-use object consumed by
// a concurrent request surfaces from fosite as a storage error; here it
// becomes what it is, a replay: the grant's tokens are revoked (RFC 6749
// 4.1.2 for codes, RFC 6819 5.2.2.3 for refresh tokens) and the client gets
// invalid_grant.
func (p *Provider) tokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, grant string, err error) {
	ctx := r.Context()
	if unavailable(err) {
		p.cfg.Logger.ErrorContext(ctx, "token endpoint: temporarily unavailable", "err", err.Error())
		if p.cfg.Metrics != nil {
			p.cfg.Metrics.TokenFailed(grant, errTemporarilyUnavailable.ErrorField)
		}
		writeUnavailable(w, err)
		return
	}
	// fosite reports a code consumed between its two reads as
	// ErrInvalidatedAuthorizeCode; our conditional update as ErrAlreadyUsed.
	replay := errors.Is(err, storage.ErrAlreadyUsed) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)
	// The loser of a near-simultaneous redemption may instead find that
	// the winner, still at work, already deleted the code's PKCE data. It
	// waits for the winner to finish and then treats itself as the replay
	// it is: the winner's tokens are revoked below. (An ID on ar means the
	// code itself was found: only its PKCE data was not.)
	if !replay && grant == GrantAuthorizationCode && errors.Is(err, fosite.ErrNotFound) && ar != nil && ar.GetID() != "" {
		replay = p.awaitRedemption(ctx, r.PostForm.Get("code"))
	}
	if grant == GrantRefreshToken && p.serveGrace(w, r, ar, err) {
		return
	}
	if replay && ar != nil && ar.GetID() != "" {
		if rerr := p.cfg.Store.RevokeFamily(ctx, ar.GetID()); rerr != nil {
			p.cfg.Logger.ErrorContext(ctx, "revoke replayed grant", "err", rerr.Error(), "request_id", ar.GetID())
		}
		hint := "The authorization code has already been used."
		if grant == GrantRefreshToken {
			hint = "The refresh token was already used."
		}
		p.record(ctx, audit.Event{Type: audit.TypeTokenReuseDetected, ClientID: ar.GetClient().GetID(),
			UserID: ar.GetSession().GetSubject(), Outcome: audit.OutcomeFailure, Reason: grant + "_replayed",
			Details: map[string]any{"family": ar.GetID(), "concurrent": true}})
		err = fosite.ErrInvalidGrant.WithHint(hint)
	} else if grant == GrantRefreshToken && errors.Is(err, fosite.ErrInactiveToken) && ar != nil && ar.GetClient() != nil {
		// fosite found the refresh token already used and has revoked its
		// family; this is the audit trail of it.
		p.record(ctx, audit.Event{Type: audit.TypeTokenReuseDetected, ClientID: ar.GetClient().GetID(),
			Outcome: audit.OutcomeFailure, Reason: "refresh_token_replayed"})
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		p.cfg.Logger.ErrorContext(ctx, "token endpoint", "err", err.Error(), "debug", rfc.DebugField)
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.TokenFailed(grant, rfc.ErrorField)
	}
	// RFC 6749 5.2: a client that tried HTTP authentication and failed is
	// told the scheme to use; fosite leaves the header out.
	if rfc.CodeField == http.StatusUnauthorized && r.Header.Get("Authorization") != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="portcullis"`)
	}
	p.f.WriteAccessError(ctx, w, ar, err)
}

// redemptionWait bounds how long a losing redemption waits for the
// winning one to commit: a token request, not a batch job.
const redemptionWait = 3 * time.Second

// awaitRedemption waits for a concurrent redemption of code to commit and
// reports whether the code is spent. A redemption that never commits (it
// failed) leaves the code active; it is spent here then, so that it cannot
// succeed after a replay was seen.
func (p *Provider) awaitRedemption(ctx context.Context, code string) bool {
	if code == "" {
		return false
	}
	sig := p.strategy.AuthorizeCodeSignature(ctx, code)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(redemptionWait); time.Now().Before(deadline); {
		_, err := p.cfg.Store.GetAuthorizeCodeSession(ctx, sig, newSession())
		if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			return true
		}
		if err != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	err := p.cfg.Store.InvalidateAuthorizeCodeSession(ctx, sig)
	return err == nil || errors.Is(err, storage.ErrAlreadyUsed) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)
}
