package authn

import (
	"context"
	"log/slog"
	"testing"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
)

func TestIPRulesHook(t *testing.T) {
	withIP := func(ip policies.IP) policies.Policy {
		p := policies.Defaults()
		p.IP = ip
		return p
	}
	globalBlock := withIP(policies.IP{Mode: policies.IPModeBlocklist, Block: []string{"192.0.2.0/24", "2001:db8:bad::/48"}})
	tests := []struct {
		name   string
		global policies.Policy
		app    policies.Policy // the attempt's Check.Policy
		ip     string
		denied bool
	}{
		{name: "defaults let anyone in", global: policies.Defaults(), app: policies.Defaults(), ip: "192.0.2.1"},
		{name: "global v4 block", global: globalBlock, app: globalBlock, ip: "192.0.2.200", denied: true},
		{name: "global v6 block", global: globalBlock, app: globalBlock, ip: "2001:db8:bad:1::1", denied: true},
		{name: "v4-mapped v6 address", global: globalBlock, app: globalBlock, ip: "::ffff:192.0.2.5", denied: true},
		{name: "outside the block", global: globalBlock, app: globalBlock, ip: "198.51.100.1"},
		{name: "unknown address under a block list", global: globalBlock, app: globalBlock, ip: ""},
		{name: "allowlist refuses others", global: policies.Defaults(),
			app: withIP(policies.IP{Mode: policies.IPModeAllowlist, Allow: []string{"10.0.0.0/8"}}), ip: "198.51.100.1", denied: true},
		{name: "allowlist lets its own in", global: policies.Defaults(),
			app: withIP(policies.IP{Mode: policies.IPModeAllowlist, Allow: []string{"10.0.0.0/8"}}), ip: "10.1.2.3"},
		{name: "allowlist refuses an unknown address", global: policies.Defaults(),
			app: withIP(policies.IP{Mode: policies.IPModeAllowlist, Allow: []string{"0.0.0.0/0", "::/0"}}), ip: "", denied: true},
		{name: "allowlist refuses a malformed address", global: policies.Defaults(),
			app: withIP(policies.IP{Mode: policies.IPModeAllowlist, Allow: []string{"0.0.0.0/0", "::/0"}}), ip: "not-an-ip", denied: true},
		{name: "the global block refuses an app that customized its rules off", global: globalBlock,
			app: withIP(policies.IP{Mode: policies.IPModeOff}), ip: "192.0.2.1", denied: true},
		{name: "the global block refuses an app's allowlisted address", global: globalBlock,
			app: withIP(policies.IP{Mode: policies.IPModeAllowlist, Allow: []string{"192.0.2.0/24"}}), ip: "192.0.2.1", denied: true},
		{name: "an app's own block leaves the global policy alone", global: policies.Defaults(),
			app: withIP(policies.IP{Mode: policies.IPModeBlocklist, Block: []string{"203.0.113.0/24"}}), ip: "203.0.113.9", denied: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			h := IPRules(func(clientID string) policies.Policy {
				asked = append(asked, clientID)
				if clientID != "" {
					t.Errorf("the hook asked for the policy of %q; the attempt's is in Check.Policy", clientID)
				}
				return tt.global
			})
			if h.Phase != PhaseNetwork {
				t.Fatalf("phase = %d, want PhaseNetwork: a refused address must cost no lookup and no hashing", h.Phase)
			}
			c := &Check{Attempt: Attempt{Username: "alice", IP: tt.ip, ClientID: "app"}, Policy: tt.app}
			for range 2 { // the second run comes from the cache
				d, err := h.Run(t.Context(), c)
				if err != nil {
					t.Fatal(err)
				}
				want := Proceed()
				if tt.denied {
					want = Denied(ReasonIPRule, d.Until)
				}
				if d != want || !d.Until.IsZero() {
					t.Fatalf("decision = %+v, want %+v", d, want)
				}
			}
			if len(asked) != 2 {
				t.Errorf("global policy asked %d times in 2 runs, want 2 (it changes at run time)", len(asked))
			}
		})
	}
}

// TestIPRulesFollowChanges: a change to the rules takes effect on the next
// attempt, the parsed form notwithstanding.
func TestIPRulesFollowChanges(t *testing.T) {
	global := policies.Defaults()
	h := IPRules(func(string) policies.Policy { return global })
	run := func(ip string) Verdict {
		t.Helper()
		d, err := h.Run(t.Context(), &Check{Attempt: Attempt{IP: ip}, Policy: policies.Defaults()})
		if err != nil {
			t.Fatal(err)
		}
		return d.Verdict
	}
	if v := run("192.0.2.1"); v != Continue {
		t.Fatalf("defaults: verdict %d", v)
	}
	global.IP = policies.IP{Mode: policies.IPModeBlocklist, Block: []string{"192.0.2.0/24"}}
	if v := run("192.0.2.1"); v != Deny {
		t.Fatalf("after blocking: verdict %d, want Deny", v)
	}
	global.IP = policies.IP{Mode: policies.IPModeBlocklist, Block: []string{"198.51.100.0/24"}}
	if v := run("192.0.2.1"); v != Continue {
		t.Fatalf("after unblocking: verdict %d, want Continue", v)
	}
}

func TestIPRulesInvalidPolicyIsAnError(t *testing.T) {
	bad := policies.Defaults()
	bad.IP = policies.IP{Mode: policies.IPModeBlocklist, Block: []string{"10.0.0.0/33"}}
	h := IPRules(func(string) policies.Policy { return bad })
	if _, err := h.Run(t.Context(), &Check{Attempt: Attempt{IP: "10.0.0.1"}, Policy: policies.Defaults()}); err == nil {
		t.Fatal("an unparseable global block list let the attempt through")
	}
}

// TestIPRulesInThePipeline: a refused address is denied with ip_rule before
// the account is looked up, and audited as such.
func TestIPRulesInThePipeline(t *testing.T) {
	clock := newClock()
	st := openAuthnStore(t, clock)
	addUser(t, st, cheapArgon2, "alice", "correct horse battery", false)
	p := policies.Defaults()
	p.IP = policies.IP{Mode: policies.IPModeBlocklist, Block: []string{"192.0.2.0/24"}}
	src := func(string) policies.Policy { return p }
	users := &countingUsers{UserStore: st}
	rec := audit.NewRecorder(st.Store, nil, clock.Now)
	pl := NewPipeline(users, cheapArgon2, slog.New(slog.DiscardHandler), rec,
		WithPolicies(src), WithHooks(IPRules(src)), WithClock(clock.Now), WithTransactions(st.Store))
	out, err := pl.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: "correct horse battery", IP: "192.0.2.9", ClientID: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if out.OK || out.Reason != ReasonIPRule || out.Decision.Verdict != Deny {
		t.Fatalf("outcome = %+v, want a denial for ip_rule", out)
	}
	if n := users.lookups.Load(); n != 0 {
		t.Errorf("account looked up %d times before the IP rules refused the address", n)
	}
	evs, _, err := rec.Query(t.Context(), audit.Query{Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Type != audit.TypeLoginFailed || evs[0].Reason != ReasonIPRule || evs[0].IP != "192.0.2.9" {
		t.Fatalf("audit = %+v, %v; want one login.failed for ip_rule from 192.0.2.9", evs, err)
	}

	out, err = pl.PasswordLogin(context.Background(), Attempt{Username: "alice", Password: "correct horse battery", IP: "198.51.100.1", ClientID: "app"})
	if err != nil || !out.OK {
		t.Fatalf("an address outside the block: %+v, %v", out, err)
	}
}
