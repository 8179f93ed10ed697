package authn

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis/portcullis/policies"
)

// IPRulesHookName names the IP rules step in errors.
const IPRulesHookName = "ip_rules"

// IPRules returns the step that enforces the IP rules (the ip policy
// section) on every sign-in: a PhaseNetwork gate, so a refused address
// costs no account lookup and no hashing, which is what lets the rules
// shed a flood. It judges the attempt's address under the global rules,
// whose block list refuses whatever the application customized, and the
// application's own (Check.Policy). policyFor gives the global policy for
// "".
//
// Each section is parsed once per change, not per attempt (policies.IPCache).
func IPRules(policyFor PolicySource) Hook {
	cache := &policies.IPCache{}
	return Hook{
		Name:  IPRulesHookName,
		Phase: PhaseNetwork,
		Run: func(_ context.Context, c *Check) (Decision, error) {
			global, err := cache.Rules("", policyFor("").IP)
			if err != nil {
				return Decision{}, fmt.Errorf("global ip rules: %w", err)
			}
			// The key keeps an application apart from the global entry even
			// when an attempt names no client.
			app, err := cache.Rules("client:"+c.ClientID, c.Policy.IP)
			if err != nil {
				return Decision{}, fmt.Errorf("ip rules of client %q: %w", c.ClientID, err)
			}
			// An address that does not parse is not known, which an
			// allowlist refuses; the pipeline fills IP from the request, so
			// only a caller's own Attempt.IP can get here malformed.
			addr, _ := netip.ParseAddr(c.IP)
			if ok, _ := policies.IPAllowed(global, app, addr); !ok {
				return Denied(ReasonIPRule, time.Time{}), nil
			}
			return Proceed(), nil
		},
	}
}
