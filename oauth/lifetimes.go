package oauth

import (
	"context"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/policies"
)

// PolicySource says which policy judges requests for a client: per
// section, its own where it customized that section, the global one
// elsewhere.
type PolicySource interface {
	For(clientID string) policies.Policy
}

// grantFacts are what the lifetime rules need to know about a token family.
func grantFacts(s *Session, now time.Time) policies.Grant {
	g := policies.Grant{Admin: s.Admin, LastUsed: s.LastUsed}
	if s.Claims != nil {
		g.AuthTime = s.Claims.AuthTime
	}
	if g.LastUsed.IsZero() {
		g.LastUsed = now
	}
	return g
}

// stampLifetimes sets every expiry of what is about to be issued from the
// policy, replacing fosite's global lifespans: per-client rules,
// administrator overrides, refresh windows and the session's absolute cap
// all live in policies.Lifetimes.
func stampLifetimes(s *Session, l policies.Lifetimes, now time.Time) {
	s.SetExpiresAt(fosite.AccessToken, l.AccessExpiresAt)
	s.SetExpiresAt(fosite.RefreshToken, l.RefreshExpiresAt)
	if s.Claims != nil {
		s.Claims.ExpiresAt = l.IDTokenExpiresAt
	}
	s.LastUsed = now
}

type lifetimesKey struct{}

// withLifetimes carries the policy's lifetimes to the fosite handlers that
// read lifespans from their config (the authorization code, the ID token),
// through clockedConfig.
func withLifetimes(ctx context.Context, l policies.Lifetimes) context.Context {
	return context.WithValue(ctx, lifetimesKey{}, l)
}

func lifetimesFrom(ctx context.Context) (policies.Lifetimes, bool) {
	l, ok := ctx.Value(lifetimesKey{}).(policies.Lifetimes)
	return l, ok
}
