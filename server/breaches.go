package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/breach"
	"github.com/portcullis/portcullis/policies"
)

// breaches answers authn's breached-password questions under the password
// policy in force: the offline list shipped with the server always, and
// Have I Been Pwned when the policy turns it on, with the policy's URL,
// timeout and failure mode.
type breaches struct {
	offline *breach.List
	client  *http.Client
	logger  *slog.Logger
}

var _ authn.BreachChecker = (*breaches)(nil)

func newBreaches(logger *slog.Logger) *breaches {
	// The range API's answers are small and its connections are reused;
	// a client of our own keeps its timeouts apart from everyone else's.
	return &breaches{offline: breach.Offline(), client: &http.Client{}, logger: logger}
}

// Breached looks password up. An unanswered range request is logged; under
// hibp_failure "closed" it is an error wrapping
// authn.ErrBreachCheckUnavailable, under "open" the offline answer stands.
func (b *breaches) Breached(ctx context.Context, password string, p policies.Password) (bool, error) {
	c := breach.Checker{Offline: b.offline}
	if p.CheckBreached && p.HIBP {
		c.Online = &breach.HIBP{BaseURL: p.HIBPURL, Client: b.client, Timeout: p.HIBPTimeout.D()}
		if p.HIBPFailure == policies.HIBPFailClosed {
			c.Mode = breach.FailClosed
		}
	}
	breached, err := c.Breached(ctx, password)
	if err == nil {
		return breached, nil
	}
	b.logger.WarnContext(ctx, "breached password check: range API did not answer",
		slog.String("failure_mode", p.HIBPFailure), slog.Any("error", err))
	if c.Mode == breach.FailClosed {
		return false, fmt.Errorf("%w: %w", authn.ErrBreachCheckUnavailable, err)
	}
	return breached, nil
}
