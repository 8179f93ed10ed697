package policies

import "time"

// ACR values Portcullis issues, lowest assurance first.
const (
	ACRPassword    = "urn:portcullis:acr:password" // one factor
	ACRMultiFactor = "urn:portcullis:acr:mfa"      // two factors
)

// ACRRank orders known acr values: 1 for ACRPassword, 2 for ACRMultiFactor;
// ok=false for unknown values. A switch rather than a table keeps the
// package free of mutable state.
func ACRRank(acr string) (rank int, ok bool) {
	switch acr {
	case ACRPassword:
		return 1, true
	case ACRMultiFactor:
		return 2, true
	}
	return 0, false
}

// AuthRequest is what an authorization request asks of the browser session,
// already parsed by the authorization endpoint.
type AuthRequest struct {
	Prompt       []string      // the prompt parameter, split on spaces
	MaxAge       time.Duration // meaningful only when HasMaxAge
	HasMaxAge    bool          // max_age was given (max_age=0 is legal)
	ACRValues    []string      // acr_values, in order of preference (voluntary: unknown values are ignored)
	NeedsConsent bool          // the user has not yet granted this client these scopes
	// Reauthenticated: the person signed in during this very request (the
	// login flow completed), so prompt=login, select_account and max_age
	// are already satisfied — without it, max_age=0 or prompt=login would
	// loop forever.
	Reauthenticated bool
}

// SessionState is the browser session the request arrived with, if any.
type SessionState struct {
	Present  bool      // a browser session exists
	AuthTime time.Time // when the person last proved who they are
	LastSeen time.Time // last activity (for the idle rule)
	ACR      string
	// AMR lists the methods used (RFC 8176). The decision reads only ACR,
	// which already states the level those methods reached.
	AMR []string
}

// SessionOutcome is what the authorization endpoint does next.
type SessionOutcome int

// Outcomes of SessionSatisfies.
const (
	SessionOK      SessionOutcome = iota // go on: issue the code
	SessionLogin                         // show the login page (sign in, or sign in again)
	SessionStepUp                        // the session must reach Decision.ACR: ask for a second factor
	SessionConsent                       // show the consent page
	SessionError                         // answer the client with Decision.Error, no page (prompt=none, or a malformed prompt)
)

// String names the outcome for logs and test failures.
func (o SessionOutcome) String() string {
	switch o {
	case SessionOK:
		return "ok"
	case SessionLogin:
		return "login"
	case SessionStepUp:
		return "step_up"
	case SessionConsent:
		return "consent"
	case SessionError:
		return "error"
	}
	return "unknown"
}

// SessionDecision is the answer of SessionSatisfies.
type SessionDecision struct {
	Outcome SessionOutcome
	Error   string // for SessionError: "login_required", "consent_required", "interaction_required" or "invalid_request" (OIDC Core 3.1.2.6)
	Reason  string // why, for audit and logs: "no_session", "session_ended:<reason from BrowserSessionEnded>", "prompt_login", "max_age", "acr", "consent", "prompt_consent", "prompt_none_combined"
	ACR     string // for SessionStepUp, the acr to reach
}

// prompts is the prompt parameter reduced to the values this server knows
// (OIDC Core 3.1.2.1); anything else is ignored, as the spec allows.
type prompts struct {
	none, login, consent, selectAccount bool
}

func parsePrompt(values []string) prompts {
	var p prompts
	for _, v := range values {
		switch v {
		case "none":
			p.none = true
		case "login":
			p.login = true
		case "consent":
			p.consent = true
		case "select_account":
			p.selectAccount = true
		}
	}
	return p
}

// SessionSatisfies decides whether the browser session s satisfies the
// authorization request req at now, before any code is issued. The rules
// run in a fixed order so that the first page the person sees is the one
// that unblocks the others: a malformed prompt, then the session's
// existence and lifetime, then freshness (prompt=login, select_account,
// max_age), then assurance (acr_values), then consent. With prompt=none
// every rule that would show a page answers the client with an error
// instead (OIDC Core 3.1.2.6).
//
// The caller asks again after the login or second-factor page, with
// Reauthenticated set once the person has signed in, but not after the
// consent page: that page leads straight to the code, and asking again
// would show it again for prompt=consent. A person who cannot reach the
// acr asked for (no second factor enrolled) is the caller's to handle,
// since acr_values are voluntary.
func (p Policy) SessionSatisfies(now time.Time, req AuthRequest, s SessionState) SessionDecision {
	prompt := parsePrompt(req.Prompt)

	// Rule 1: none means "show nothing", so any value that asks for a page
	// contradicts it; the request, not the session, is at fault.
	if prompt.none && (prompt.login || prompt.consent || prompt.selectAccount) {
		return SessionDecision{Outcome: SessionError, Error: "invalid_request", Reason: "prompt_none_combined"}
	}

	// login is the login page, or login_required when no page may be shown.
	login := func(reason string) SessionDecision {
		if prompt.none {
			return SessionDecision{Outcome: SessionError, Error: "login_required", Reason: reason}
		}
		return SessionDecision{Outcome: SessionLogin, Reason: reason}
	}

	// Rule 2: the same absolute and idle caps that end the session elsewhere,
	// so an expired cookie that has not yet been cleaned up proves nothing.
	if !s.Present {
		return login("no_session")
	}
	if ended, why := p.Session.BrowserSessionEnded(now, s.AuthTime, s.LastSeen); ended {
		return login("session_ended:" + why)
	}

	// Rules 3 and 4 ask for a fresh sign-in; one that happened during this
	// request is as fresh as it gets, and asking again would never end.
	if !req.Reauthenticated {
		// One account per browser: choosing another account means signing
		// in again. prompt.none cannot be set here (rule 1).
		if prompt.login || prompt.selectAccount {
			return login("prompt_login")
		}
		// OIDC Core 3.1.2.1: re-authenticate when more than max_age has
		// elapsed, so exactly max_age still passes.
		if req.HasMaxAge && now.Sub(s.AuthTime) > req.MaxAge {
			return login("max_age")
		}
	}

	// Rule 5 is not waived by Reauthenticated: signing in again with a
	// password does not raise the level.
	if want, ok := stepUpTo(req.ACRValues, s.ACR); ok {
		if prompt.none {
			return SessionDecision{Outcome: SessionError, Error: "interaction_required", Reason: "acr"}
		}
		return SessionDecision{Outcome: SessionStepUp, Reason: "acr", ACR: want}
	}

	// Rule 6: an explicit prompt=consent is named first, because it asks
	// even when consent was already granted.
	switch {
	case prompt.consent:
		return SessionDecision{Outcome: SessionConsent, Reason: "prompt_consent"}
	case req.NeedsConsent && prompt.none:
		return SessionDecision{Outcome: SessionError, Error: "consent_required", Reason: "consent"}
	case req.NeedsConsent:
		return SessionDecision{Outcome: SessionConsent, Reason: "consent"}
	}
	return SessionDecision{Outcome: SessionOK}
}

// stepUpTo reports the acr a session at sessionACR must reach to satisfy
// requested, if any. Any requested known value is acceptable to the client,
// so the session passes when it reaches the lowest of them, and that lowest
// one is the least to ask of the person. Every session has at least a
// password, so an empty or unknown session acr counts as ACRPassword.
func stepUpTo(requested []string, sessionACR string) (string, bool) {
	have, ok := ACRRank(sessionACR)
	if !ok {
		have, _ = ACRRank(ACRPassword)
	}
	lowest, lowestRank := "", 0
	for _, v := range requested {
		if r, ok := ACRRank(v); ok && (lowest == "" || r < lowestRank) {
			lowest, lowestRank = v, r
		}
	}
	if lowest == "" || have >= lowestRank {
		return "", false
	}
	return lowest, true
}
