package storagetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/portcullis/portcullis/storage"
)

// sidSession is an OpenID Connect session that names the browser session it
// was issued under, as Portcullis's own session type does.
type sidSession struct {
	*openid.DefaultSession
	SID string `json:"sid"`
}

func (s *sidSession) GetBrowserSessionID() string { return s.SID }

// issue stores an access and a refresh token for subject under browser
// session sid (may be empty) and returns their signatures.
func issue(t *testing.T, s *storage.Store, clk *Clock, c fosite.Client, requestID, subject, sid string) (access, refresh string) {
	t.Helper()
	req := newRequest(c, requestID, subject, clk.Now())
	req.Session = &sidSession{DefaultSession: req.Session.(*openid.DefaultSession), SID: sid}
	access, refresh = "at-"+requestID, "rt-"+requestID
	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(t.Context(), access, req))
	must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(t.Context(), refresh, access, req))
	return access, refresh
}

func isActive(t *testing.T, s *storage.Store, access string) bool {
	t.Helper()
	_, err := s.GetAccessTokenSession(t.Context(), access, &openid.DefaultSession{})
	switch {
	case err == nil:
		return true
	case errors.Is(err, fosite.ErrInactiveToken):
		return false
	}
	t.Fatalf("GetAccessTokenSession(%s): %v", access, err)
	return false
}

func sessionCases() []suiteCase {
	return []suiteCase{
		{"Sessions/RevokeTokensByFilter", func(t *testing.T, s *storage.Store, clk *Clock) {
			a, b := createClient(t, s, "a"), createClient(t, s, "b")
			aliceA, _ := issue(t, s, clk, a, "r1", "alice", "s1")
			bobA, _ := issue(t, s, clk, a, "r2", "bob", "s2")
			clk.Advance(time.Minute)
			aliceB, _ := issue(t, s, clk, b, "r3", "alice", "")

			n, err := s.RevokeTokens(t.Context(), storage.TokenFilter{ClientID: "a", Subject: "alice"})
			must(t, "RevokeTokens client+subject", err)
			if n != 2 || isActive(t, s, aliceA) || !isActive(t, s, bobA) || !isActive(t, s, aliceB) {
				t.Fatalf("client+subject revoked %d (alice@a active=%v bob@a=%v alice@b=%v)", n, isActive(t, s, aliceA), isActive(t, s, bobA), isActive(t, s, aliceB))
			}
			n, err = s.RevokeTokens(t.Context(), storage.TokenFilter{IssuedBefore: clk.Now()})
			must(t, "RevokeTokens issued before", err)
			if n != 2 || isActive(t, s, bobA) || !isActive(t, s, aliceB) {
				t.Fatalf("issued-before revoked %d; bob@a active=%v alice@b active=%v", n, isActive(t, s, bobA), isActive(t, s, aliceB))
			}
			n, err = s.RevokeTokens(t.Context(), storage.TokenFilter{})
			must(t, "RevokeTokens all", err)
			if n != 2 || isActive(t, s, aliceB) {
				t.Fatalf("revoke all revoked %d", n)
			}

			kept, _ := issue(t, s, clk, a, "r4", "carol", "s1")
			sessionless, _ := issue(t, s, clk, a, "r5", "carol", "")
			other, _ := issue(t, s, clk, b, "r6", "carol", "s2")
			n, err = s.RevokeTokens(t.Context(), storage.TokenFilter{Subject: "carol", ExceptSessionID: "s1"})
			must(t, "RevokeTokens except session", err)
			if n != 4 || !isActive(t, s, kept) || isActive(t, s, sessionless) || isActive(t, s, other) {
				t.Fatalf("except-session revoked %d; s1 active=%v sessionless=%v s2=%v", n,
					isActive(t, s, kept), isActive(t, s, sessionless), isActive(t, s, other))
			}
		}},
		{"Sessions/EndBrowserSessionRevokesItsTokens", func(t *testing.T, s *storage.Store, clk *Clock) {
			app := createClient(t, s, "app")
			u := createUser(t, s, "u1", "alice")
			createBrowserSession(t, s, clk, "s1", u.ID)
			createBrowserSession(t, s, clk, "s2", u.ID)
			inS1, _ := issue(t, s, clk, app, "r1", u.ID, "s1")
			inS2, _ := issue(t, s, clk, app, "r2", u.ID, "s2")
			found, err := s.EndBrowserSession(t.Context(), "s1")
			must(t, "EndBrowserSession", err)
			if !found || isActive(t, s, inS1) || !isActive(t, s, inS2) {
				t.Fatalf("found=%v s1 token active=%v s2 token active=%v", found, isActive(t, s, inS1), isActive(t, s, inS2))
			}
			if found, err := s.EndBrowserSession(t.Context(), "s1"); err != nil || found {
				t.Fatalf("ending a missing session: found=%v err=%v", found, err)
			}
		}},
		{"Sessions/EndUserSessionsKeepsOne", func(t *testing.T, s *storage.Store, clk *Clock) {
			app := createClient(t, s, "app")
			u := createUser(t, s, "u1", "alice")
			other := createUser(t, s, "u2", "bob")
			for _, id := range []string{"s1", "s2", "s3"} {
				createBrowserSession(t, s, clk, id, u.ID)
			}
			createBrowserSession(t, s, clk, "b1", other.ID)
			kept, _ := issue(t, s, clk, app, "r1", u.ID, "s1")
			ended, _ := issue(t, s, clk, app, "r2", u.ID, "s2")
			orphan, _ := issue(t, s, clk, app, "r3", u.ID, "gone") // its session already expired
			bobs, _ := issue(t, s, clk, app, "r4", other.ID, "b1")

			ids, err := s.EndUserSessions(t.Context(), u.ID, "s1")
			must(t, "EndUserSessions keep s1", err)
			if strings.Join(ids, ",") != "s2,s3" && strings.Join(ids, ",") != "s3,s2" {
				t.Fatalf("ended %v, want s2 and s3", ids)
			}
			if !isActive(t, s, kept) || isActive(t, s, ended) || isActive(t, s, orphan) || !isActive(t, s, bobs) {
				t.Fatalf("kept=%v ended=%v orphan=%v bob=%v", isActive(t, s, kept), isActive(t, s, ended), isActive(t, s, orphan), isActive(t, s, bobs))
			}
			left, err := s.UserBrowserSessions(t.Context(), u.ID)
			must(t, "UserBrowserSessions", err)
			if len(left) != 1 || left[0].ID != "s1" {
				t.Fatalf("sessions left: %v", left)
			}
			if _, err := s.EndUserSessions(t.Context(), u.ID, ""); err != nil {
				t.Fatal(err)
			}
			if isActive(t, s, kept) {
				t.Fatal("ending every session left a token of the user active")
			}
		}},
		{"Policies/DocumentsAndVersion", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			v0, err := s.PolicyVersion(ctx)
			must(t, "PolicyVersion", err)
			must(t, "Put global", s.PutPolicyDocument(ctx, &storage.PolicyDocument{Scope: storage.PolicyScopeGlobal, Document: `{"a":1}`, UpdatedBy: "x"}))
			must(t, "Put global again", s.PutPolicyDocument(ctx, &storage.PolicyDocument{Scope: storage.PolicyScopeGlobal, Document: `{"a":2}`, UpdatedBy: "y"}))
			must(t, "Put client", s.PutPolicyDocument(ctx, &storage.PolicyDocument{Scope: storage.PolicyScopeClient("app"), Document: `{}`}))
			d, err := s.PolicyDocument(ctx, storage.PolicyScopeGlobal)
			must(t, "PolicyDocument", err)
			if d.Document != `{"a":2}` || d.UpdatedBy != "y" {
				t.Fatalf("upsert kept %+v", d)
			}
			all, err := s.PolicyDocuments(ctx)
			must(t, "PolicyDocuments", err)
			if len(all) != 2 {
				t.Fatalf("documents: %v", all)
			}
			must(t, "Delete", s.DeletePolicyDocument(ctx, storage.PolicyScopeClient("app")))
			_, err = s.PolicyDocument(ctx, storage.PolicyScopeClient("app"))
			wantErr(t, "deleted document", err, storage.ErrNotFound)
			v1, err := s.BumpPolicyVersion(ctx)
			must(t, "BumpPolicyVersion", err)
			v2, err := s.BumpPolicyVersion(ctx)
			must(t, "BumpPolicyVersion", err)
			if v1 != v0+1 || v2 != v0+2 {
				t.Fatalf("versions %d %d %d", v0, v1, v2)
			}
		}},
		{"Policies/DeleteClientDropsItsPolicy", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			createClient(t, s, "app")
			must(t, "Put client policy", s.PutPolicyDocument(ctx, &storage.PolicyDocument{Scope: storage.PolicyScopeClient("app"), Document: `{}`}))
			v0, err := s.PolicyVersion(ctx)
			must(t, "PolicyVersion", err)
			must(t, "DeleteClient", s.DeleteClient(ctx, "app"))
			_, err = s.PolicyDocument(ctx, storage.PolicyScopeClient("app"))
			wantErr(t, "policy of a deleted client", err, storage.ErrNotFound)
			if v1, _ := s.PolicyVersion(ctx); v1 != v0+1 {
				t.Fatalf("policy version %d after deleting a customized client, want %d", v1, v0+1)
			}
		}},
		{"Grace/SealedAndExpiring", func(t *testing.T, s *storage.Store, clk *Clock) {
			ctx := t.Context()
			secret := []byte(`{"access_token":"pc_at_secret"}`)
			must(t, "PutRefreshGrace", s.PutRefreshGrace(ctx, "rt-sig", "app", secret, clk.Now().Add(30*time.Second)))
			client, body, err := s.RefreshGrace(ctx, "rt-sig")
			must(t, "RefreshGrace", err)
			if client != "app" || string(body) != string(secret) {
				t.Fatalf("got %q %q", client, body)
			}
			clk.Advance(31 * time.Second)
			_, _, err = s.RefreshGrace(ctx, "rt-sig")
			wantErr(t, "expired grace", err, storage.ErrNotFound)
		}},
	}
}
