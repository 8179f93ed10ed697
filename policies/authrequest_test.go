package policies

import (
	"strings"
	"testing"
	"time"
)

func TestACRRank(t *testing.T) {
	tests := []struct {
		acr  string
		rank int
		ok   bool
	}{
		{ACRPassword, 1, true},
		{ACRMultiFactor, 2, true},
		{"", 0, false},
		{"urn:portcullis:acr:MFA", 0, false}, // acr values are case-sensitive
		{"urn:mace:incommon:iap:silver", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.acr, func(t *testing.T) {
			rank, ok := ACRRank(tt.acr)
			if rank != tt.rank || ok != tt.ok {
				t.Errorf("ACRRank(%q) = %d, %v; want %d, %v", tt.acr, rank, ok, tt.rank, tt.ok)
			}
		})
	}
}

func TestSessionSatisfies(t *testing.T) {
	now := t0()
	at := func(s string) time.Time { return now.Add(time.Duration(d(s))) }

	// capped has both session caps, so the same table covers them; the
	// other cases' session times stay well inside them.
	capped := Defaults()
	capped.Session.AbsoluteTimeout = d("8h")
	capped.Session.IdleTimeout = d("30m")
	uncapped := Defaults()

	// session is a password session signed in 10 minutes ago, active a
	// minute ago; with changes what a case needs.
	session := func(with ...func(*SessionState)) SessionState {
		s := SessionState{Present: true, AuthTime: at("-10m"), LastSeen: at("-1m"), ACR: ACRPassword, AMR: []string{"pwd"}}
		for _, f := range with {
			f(&s)
		}
		return s
	}
	authAt := func(v string) func(*SessionState) { return func(s *SessionState) { s.AuthTime = at(v) } }
	seenAt := func(v string) func(*SessionState) { return func(s *SessionState) { s.LastSeen = at(v) } }
	acr := func(v string) func(*SessionState) { return func(s *SessionState) { s.ACR = v } }
	prompt := func(v string) []string { return strings.Fields(v) }
	maxAge := func(v string) AuthRequest { return AuthRequest{MaxAge: time.Duration(d(v)), HasMaxAge: true} }

	ok := SessionDecision{Outcome: SessionOK}
	login := func(reason string) SessionDecision { return SessionDecision{Outcome: SessionLogin, Reason: reason} }
	fail := func(err, reason string) SessionDecision {
		return SessionDecision{Outcome: SessionError, Error: err, Reason: reason}
	}
	stepUp := func(to string) SessionDecision {
		return SessionDecision{Outcome: SessionStepUp, Reason: "acr", ACR: to}
	}
	consent := func(reason string) SessionDecision { return SessionDecision{Outcome: SessionConsent, Reason: reason} }

	tests := []struct {
		name string
		p    Policy
		req  AuthRequest
		s    SessionState
		want SessionDecision
	}{
		// Nothing asked of a live session.
		{"plain request", capped, AuthRequest{}, session(), ok},
		{"defaults without caps", uncapped, AuthRequest{}, session(authAt("-1000h"), seenAt("-1000h")), ok},

		// Rule 1: prompt=none combined.
		{"none alone", capped, AuthRequest{Prompt: prompt("none")}, session(), ok},
		{"none login", capped, AuthRequest{Prompt: prompt("none login")}, session(), fail("invalid_request", "prompt_none_combined")},
		{"consent none", capped, AuthRequest{Prompt: prompt("consent none")}, session(), fail("invalid_request", "prompt_none_combined")},
		{"none select_account", capped, AuthRequest{Prompt: prompt("none select_account")}, session(), fail("invalid_request", "prompt_none_combined")},
		{"combined before no session", capped, AuthRequest{Prompt: prompt("none login")}, SessionState{}, fail("invalid_request", "prompt_none_combined")},
		{"combined even when reauthenticated", capped, AuthRequest{Prompt: prompt("none login"), Reauthenticated: true}, session(), fail("invalid_request", "prompt_none_combined")},
		{"none with unknown value", capped, AuthRequest{Prompt: prompt("none create")}, session(), ok},
		{"unknown value alone", capped, AuthRequest{Prompt: prompt("bogus")}, session(), ok},
		{"none twice", capped, AuthRequest{Prompt: prompt("none none")}, session(), ok},
		{"empty elements ignored", capped, AuthRequest{Prompt: []string{"", "none", ""}}, session(), ok},
		{"prompt values are case-sensitive", capped, AuthRequest{Prompt: prompt("LOGIN")}, session(), ok},

		// Rule 2: no session, or one the caps have ended.
		{"no session", capped, AuthRequest{}, SessionState{}, login("no_session")},
		{"no session prompt none", capped, AuthRequest{Prompt: prompt("none")}, SessionState{}, fail("login_required", "no_session")},
		{"no session reauthenticated", capped, AuthRequest{Reauthenticated: true}, SessionState{}, login("no_session")},
		{"just before absolute cap", capped, AuthRequest{}, session(authAt("-7h59m59s")), ok},
		{"at absolute cap", capped, AuthRequest{}, session(authAt("-8h")), login("session_ended:" + ReasonAbsoluteTimeout)},
		{"after absolute cap", capped, AuthRequest{}, session(authAt("-9h"), seenAt("-2h")), login("session_ended:" + ReasonAbsoluteTimeout)},
		{"absolute cap prompt none", capped, AuthRequest{Prompt: prompt("none")}, session(authAt("-8h")), fail("login_required", "session_ended:"+ReasonAbsoluteTimeout)},
		{"just before idle cap", capped, AuthRequest{}, session(seenAt("-29m59s")), ok},
		{"at idle cap", capped, AuthRequest{}, session(authAt("-1h"), seenAt("-30m")), login("session_ended:" + ReasonIdleTimeout)},
		{"after idle cap", capped, AuthRequest{}, session(authAt("-1h"), seenAt("-45m")), login("session_ended:" + ReasonIdleTimeout)},
		{"idle cap prompt none", capped, AuthRequest{Prompt: prompt("none")}, session(authAt("-1h"), seenAt("-30m")), fail("login_required", "session_ended:"+ReasonIdleTimeout)},
		{"ended session before acr", capped, AuthRequest{ACRValues: []string{ACRMultiFactor}}, session(authAt("-8h")), login("session_ended:" + ReasonAbsoluteTimeout)},

		// Rule 3: prompt=login and select_account.
		{"prompt login", capped, AuthRequest{Prompt: prompt("login")}, session(), login("prompt_login")},
		{"prompt select_account", capped, AuthRequest{Prompt: prompt("select_account")}, session(), login("prompt_login")},
		{"prompt login consent", capped, AuthRequest{Prompt: prompt("login consent")}, session(), login("prompt_login")},
		{"prompt login reauthenticated", capped, AuthRequest{Prompt: prompt("login"), Reauthenticated: true}, session(authAt("0s")), ok},
		{"select_account reauthenticated", capped, AuthRequest{Prompt: prompt("select_account"), Reauthenticated: true}, session(authAt("0s")), ok},
		{"login consent reauthenticated", capped, AuthRequest{Prompt: prompt("login consent"), Reauthenticated: true}, session(authAt("0s")), consent("prompt_consent")},

		// Rule 4: max_age, "greater than" elapsed.
		{"within max_age", capped, maxAge("15m"), session(), ok},
		{"exactly max_age", capped, maxAge("10m"), session(), ok},
		{"one second over max_age", capped, maxAge("10m"), session(authAt("-10m1s")), login("max_age")},
		{"max_age over prompt none", capped, func() AuthRequest { r := maxAge("5m"); r.Prompt = prompt("none"); return r }(), session(), fail("login_required", "max_age")},
		{"max_age 0", capped, maxAge("0s"), session(), login("max_age")},
		{"max_age 0 signed in this instant", capped, maxAge("0s"), session(authAt("0s")), ok},
		{"max_age 0 reauthenticated", capped, func() AuthRequest { r := maxAge("0s"); r.Reauthenticated = true; return r }(), session(authAt("-1s")), ok},
		{"max_age over reauthenticated", capped, func() AuthRequest { r := maxAge("1m"); r.Reauthenticated = true; return r }(), session(), ok},
		{"max_age not given", capped, AuthRequest{MaxAge: time.Second}, session(), ok},

		// Rule 5: acr_values.
		{"password session mfa request", capped, AuthRequest{ACRValues: []string{ACRMultiFactor}}, session(), stepUp(ACRMultiFactor)},
		{"mfa session password request", capped, AuthRequest{ACRValues: []string{ACRPassword}}, session(acr(ACRMultiFactor)), ok},
		{"mfa session mfa request", capped, AuthRequest{ACRValues: []string{ACRMultiFactor}}, session(acr(ACRMultiFactor)), ok},
		{"mfa preferred password accepted", capped, AuthRequest{ACRValues: []string{ACRMultiFactor, ACRPassword}}, session(), ok},
		{"unknown acr values ignored", capped, AuthRequest{ACRValues: []string{"urn:example:gold"}}, session(), ok},
		{"unknown then mfa", capped, AuthRequest{ACRValues: []string{"urn:example:gold", ACRMultiFactor}}, session(), stepUp(ACRMultiFactor)},
		{"empty session acr counts as password", capped, AuthRequest{ACRValues: []string{ACRPassword}}, session(acr("")), ok},
		{"empty session acr steps up", capped, AuthRequest{ACRValues: []string{ACRMultiFactor}}, session(acr("")), stepUp(ACRMultiFactor)},
		{"unknown session acr counts as password", capped, AuthRequest{ACRValues: []string{ACRMultiFactor}}, session(acr("urn:example:gold")), stepUp(ACRMultiFactor)},
		{"step up prompt none", capped, AuthRequest{Prompt: prompt("none"), ACRValues: []string{ACRMultiFactor}}, session(), fail("interaction_required", "acr")},
		{"reauthenticated does not waive acr", capped, AuthRequest{Reauthenticated: true, ACRValues: []string{ACRMultiFactor}}, session(authAt("0s")), stepUp(ACRMultiFactor)},
		{"acr before consent", capped, AuthRequest{ACRValues: []string{ACRMultiFactor}, NeedsConsent: true}, session(), stepUp(ACRMultiFactor)},
		{"stepped up then consent", capped, AuthRequest{ACRValues: []string{ACRMultiFactor}, NeedsConsent: true}, session(acr(ACRMultiFactor)), consent("consent")},
		{"max_age before acr", capped, AuthRequest{MaxAge: time.Minute, HasMaxAge: true, ACRValues: []string{ACRMultiFactor}}, session(), login("max_age")},

		// Rule 6: consent.
		{"needs consent", capped, AuthRequest{NeedsConsent: true}, session(), consent("consent")},
		{"prompt consent", capped, AuthRequest{Prompt: prompt("consent")}, session(), consent("prompt_consent")},
		{"prompt consent and needs consent", capped, AuthRequest{Prompt: prompt("consent"), NeedsConsent: true}, session(), consent("prompt_consent")},
		{"needs consent prompt none", capped, AuthRequest{Prompt: prompt("none"), NeedsConsent: true}, session(), fail("consent_required", "consent")},
		{"needs consent reauthenticated", capped, AuthRequest{NeedsConsent: true, Reauthenticated: true}, session(authAt("0s")), consent("consent")},
		{"login before consent", capped, AuthRequest{NeedsConsent: true}, SessionState{}, login("no_session")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.SessionSatisfies(now, tt.req, tt.s)
			if got != tt.want {
				t.Errorf("SessionSatisfies = {%v %q %q %q}; want {%v %q %q %q}",
					got.Outcome, got.Error, got.Reason, got.ACR, tt.want.Outcome, tt.want.Error, tt.want.Reason, tt.want.ACR)
			}
		})
	}
}
