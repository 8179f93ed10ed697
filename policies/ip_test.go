package policies

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestValidateIP(t *testing.T) {
	tests := []struct {
		name     string
		ip       IP
		errs     map[string]string
		warnings map[string]string
	}{
		{name: "defaults", ip: defaultIP()},
		{name: "blocklist v4 and v6", ip: IP{Mode: IPModeBlocklist, Block: []string{"192.0.2.1", "10.0.0.0/8", "2001:db8::/32", "::1", " 198.51.100.0/24 "}}},
		{name: "allowlist with exceptions", ip: IP{Mode: IPModeAllowlist, Allow: []string{"10.0.0.0/8"}, Block: []string{"10.6.6.6"}, ApplyTo: []string{"admin"}}},
		{name: "unknown mode", ip: IP{Mode: "deny"}, errs: map[string]string{"ip.mode": `must be "off", "allowlist" or "blocklist" (got "deny")`}},
		{name: "empty mode", ip: IP{}, errs: map[string]string{"ip.mode": `(got "")`}},
		{
			name: "entries that are not addresses",
			ip:   IP{Mode: IPModeBlocklist, Block: []string{"10.0.0.1", "192.0.2.0/24", "10.0.0.0/33", "example.com", ""}, Allow: []string{"::ffff:1.2.3.4/129"}},
			errs: map[string]string{
				"ip.block[2]": `"10.0.0.0/33" is not an address or CIDR range`,
				"ip.block[3]": `"example.com" is not an address or CIDR range`,
				"ip.block[4]": `"" is not an address or CIDR range`,
				"ip.allow[0]": `"::ffff:1.2.3.4/129" is not an address or CIDR range`,
			},
			warnings: map[string]string{"ip.allow": "ignored"},
		},
		{name: "empty allowlist refuses everyone", ip: IP{Mode: IPModeAllowlist, Block: []string{"10.0.0.0/8"}}, errs: map[string]string{"ip.allow": "an empty allowlist refuses everyone"}},
		{name: "allow under blocklist", ip: IP{Mode: IPModeBlocklist, Allow: []string{"10.0.0.0/8"}}, warnings: map[string]string{"ip.allow": `ignored while ip.mode is "blocklist"`}},
		{name: "lists while off", ip: IP{Mode: IPModeOff, Block: []string{"10.0.0.0/8"}}, warnings: map[string]string{"ip.mode": "not in force"}},
		{name: "host bits", ip: IP{Mode: IPModeBlocklist, Block: []string{"10.1.2.3/8", "2001:db8::1/32"}}, warnings: map[string]string{
			"ip.block[0]": `"10.1.2.3/8" has host bits set and means 10.0.0.0/8`,
			"ip.block[1]": "means 2001:db8::/32",
		}},
		{name: "apply_to", ip: IP{Mode: IPModeOff, ApplyTo: []string{"admin", "signin", "admin"}}, errs: map[string]string{
			"ip.apply_to[1]": `must be "admin" (got "signin")`,
			"ip.apply_to[2]": `"admin" is listed twice`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			p.IP = tt.ip
			warnings, err := p.Validate()
			checkFields(t, "errors", errorFields(t, err), tt.errs)
			checkFields(t, "warnings", warnings, tt.warnings)
			if err == nil {
				if _, err := tt.ip.Rules(); err != nil {
					t.Errorf("Rules() of a valid section: %v", err)
				}
			}
		})
	}
}

func TestIPRulesRefusesWhatValidateRefuses(t *testing.T) {
	_, err := IP{Mode: IPModeBlocklist, Block: []string{"10.0.0.0/8", "10.0.0.0/33"}}.Rules()
	if err == nil {
		t.Fatal("Rules() accepted 10.0.0.0/33")
	}
	if got := err.Error(); !strings.Contains(got, `ip.block[1]: "10.0.0.0/33"`) {
		t.Errorf("error %q does not name ip.block[1]", got)
	}
}

func mustRules(t testing.TB, ip IP) IPRules {
	t.Helper()
	r, err := ip.Rules()
	if err != nil {
		t.Fatalf("Rules(%+v): %v", ip, err)
	}
	return r
}

func TestIPAllowed(t *testing.T) {
	off := IP{Mode: IPModeOff}
	block := func(entries ...string) IP { return IP{Mode: IPModeBlocklist, Block: entries} }
	allow := func(entries ...string) IP { return IP{Mode: IPModeAllowlist, Allow: entries} }
	tests := []struct {
		name        string
		global, app IP
		addr        string // "" is the invalid address: not known
		allowed     bool
		rule        string
	}{
		{name: "off lets anything in", global: off, app: off, addr: "10.0.0.1", allowed: true},
		{name: "off lets an unknown address in", global: off, app: off, addr: "", allowed: true},
		{name: "off ignores its lists", global: IP{Mode: IPModeOff, Block: []string{"10.0.0.0/8"}}, app: IP{Mode: IPModeOff, Block: []string{"10.0.0.0/8"}}, addr: "10.0.0.1", allowed: true},

		// IPv4 CIDR boundaries.
		{name: "v4 block, first address", global: block("10.1.0.0/16"), app: block("10.1.0.0/16"), addr: "10.1.0.0", rule: IPRuleGlobalBlock},
		{name: "v4 block, last address", global: block("10.1.0.0/16"), app: block("10.1.0.0/16"), addr: "10.1.255.255", rule: IPRuleGlobalBlock},
		{name: "v4 block, just below", global: block("10.1.0.0/16"), app: block("10.1.0.0/16"), addr: "10.0.255.255", allowed: true},
		{name: "v4 block, just above", global: block("10.1.0.0/16"), app: block("10.1.0.0/16"), addr: "10.2.0.0", allowed: true},
		{name: "v4 single address", global: block("192.0.2.7"), app: block("192.0.2.7"), addr: "192.0.2.7", rule: IPRuleGlobalBlock},
		{name: "v4 single address, neighbour", global: block("192.0.2.7"), app: block("192.0.2.7"), addr: "192.0.2.8", allowed: true},
		{name: "v4 /0", global: block("0.0.0.0/0"), app: block("0.0.0.0/0"), addr: "203.0.113.1", rule: IPRuleGlobalBlock},
		{name: "v4 /0 is not v6", global: block("0.0.0.0/0"), app: block("0.0.0.0/0"), addr: "2001:db8::1", allowed: true},
		{name: "v4 top of the space", global: block("255.255.255.0/24"), app: block("255.255.255.0/24"), addr: "255.255.255.255", rule: IPRuleGlobalBlock},
		{name: "host bits are masked", global: block("10.1.2.3/8"), app: block("10.1.2.3/8"), addr: "10.200.0.1", rule: IPRuleGlobalBlock},

		// IPv6.
		{name: "v6 block, first address", global: block("2001:db8::/32"), app: block("2001:db8::/32"), addr: "2001:db8::", rule: IPRuleGlobalBlock},
		{name: "v6 block, last address", global: block("2001:db8::/32"), app: block("2001:db8::/32"), addr: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", rule: IPRuleGlobalBlock},
		{name: "v6 block, just above", global: block("2001:db8::/32"), app: block("2001:db8::/32"), addr: "2001:db9::", allowed: true},
		{name: "v6 block, just below", global: block("2001:db8::/32"), app: block("2001:db8::/32"), addr: "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", allowed: true},
		{name: "v6 /64 boundary", global: block("2001:db8:1:2::/64"), app: block("2001:db8:1:2::/64"), addr: "2001:db8:1:2:ffff:ffff:ffff:ffff", rule: IPRuleGlobalBlock},
		{name: "v6 /64 next", global: block("2001:db8:1:2::/64"), app: block("2001:db8:1:2::/64"), addr: "2001:db8:1:3::", allowed: true},
		{name: "v6 /100 boundary", global: block("2001:db8::1:0:0/100"), app: block("2001:db8::1:0:0/100"), addr: "2001:db8::1:fff:ffff", rule: IPRuleGlobalBlock},
		{name: "v6 /100 next", global: block("2001:db8::1:0:0/100"), app: block("2001:db8::1:0:0/100"), addr: "2001:db8::1:1000:0", allowed: true},
		{name: "v6 single address", global: block("::1"), app: block("::1"), addr: "::1", rule: IPRuleGlobalBlock},
		{name: "v6 zone is ignored", global: block("fe80::1"), app: block("fe80::1"), addr: "fe80::1%eth0", rule: IPRuleGlobalBlock},
		{name: "v6 ::/0 is not v4", global: block("::/0"), app: block("::/0"), addr: "192.0.2.1", allowed: true},

		// IPv4-mapped IPv6, either side.
		{name: "mapped address matches a v4 range", global: block("10.0.0.0/8"), app: block("10.0.0.0/8"), addr: "::ffff:10.9.8.7", rule: IPRuleGlobalBlock},
		{name: "mapped range matches a v4 address", global: block("::ffff:10.0.0.0/104"), app: block("::ffff:10.0.0.0/104"), addr: "10.9.8.7", rule: IPRuleGlobalBlock},
		{name: "mapped single entry", global: block("::ffff:192.0.2.1"), app: block("::ffff:192.0.2.1"), addr: "192.0.2.1", rule: IPRuleGlobalBlock},
		{name: "mapped address outside", global: block("10.0.0.0/8"), app: block("10.0.0.0/8"), addr: "::ffff:11.0.0.0", allowed: true},

		// Allowlists.
		{name: "allowlist lets a listed address in", global: allow("10.0.0.0/8", "2001:db8::/32"), app: allow("10.0.0.0/8", "2001:db8::/32"), addr: "2001:db8::42", allowed: true},
		{name: "allowlist refuses what it does not list", global: allow("10.0.0.0/8"), app: allow("10.0.0.0/8"), addr: "192.0.2.1", rule: IPRuleAllow},
		{name: "allowlist refuses an unknown address", global: allow("0.0.0.0/0", "::/0"), app: allow("0.0.0.0/0", "::/0"), addr: "", rule: IPRuleAllow},
		{name: "blocklist lets an unknown address in", global: block("0.0.0.0/0", "::/0"), app: block("0.0.0.0/0", "::/0"), addr: "", allowed: true},
		{name: "allowlist with a blocked exception", global: IP{Mode: IPModeAllowlist, Allow: []string{"10.0.0.0/8"}, Block: []string{"10.6.6.6"}},
			app: IP{Mode: IPModeAllowlist, Allow: []string{"10.0.0.0/8"}, Block: []string{"10.6.6.6"}}, addr: "10.6.6.6", rule: IPRuleGlobalBlock},
		{name: "blocklist ignores allow", global: IP{Mode: IPModeBlocklist, Allow: []string{"10.0.0.0/8"}}, app: IP{Mode: IPModeBlocklist, Allow: []string{"10.0.0.0/8"}}, addr: "192.0.2.1", allowed: true},

		// An application that customized the section.
		{name: "app's own block", global: off, app: block("192.0.2.0/24"), addr: "192.0.2.1", rule: IPRuleBlock},
		{name: "app's own allowlist", global: off, app: allow("10.0.0.0/8"), addr: "192.0.2.1", rule: IPRuleAllow},
		{name: "app's allowlist lets its range in", global: off, app: allow("10.0.0.0/8"), addr: "10.0.0.1", allowed: true},
		{name: "global block overrides an app allowlist", global: block("10.6.0.0/16"), app: allow("10.0.0.0/8"), addr: "10.6.0.1", rule: IPRuleGlobalBlock},
		{name: "global block overrides an app that turned the rules off", global: block("10.6.0.0/16"), app: off, addr: "10.6.0.1", rule: IPRuleGlobalBlock},
		{name: "global allowlist's block overrides the app", global: IP{Mode: IPModeAllowlist, Allow: []string{"10.0.0.0/8"}, Block: []string{"192.0.2.0/24"}}, app: off, addr: "192.0.2.9", rule: IPRuleGlobalBlock},
		{name: "global allowlist is the app's to replace", global: allow("10.0.0.0/8"), app: off, addr: "192.0.2.1", allowed: true},
		{name: "global allowlist replaced by the app's", global: allow("10.0.0.0/8"), app: allow("192.0.2.0/24"), addr: "192.0.2.1", allowed: true},
		{name: "global off leaves the app's block", global: off, app: block("2001:db8::/32"), addr: "2001:db8::1", rule: IPRuleBlock},
		{name: "global block does not reach past its range", global: block("10.6.0.0/16"), app: allow("10.0.0.0/8"), addr: "10.7.0.1", allowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}
			allowed, rule := IPAllowed(mustRules(t, tt.global), mustRules(t, tt.app), addr)
			if allowed != tt.allowed || rule != tt.rule {
				t.Errorf("IPAllowed(%s) = %v, %q; want %v, %q", tt.addr, allowed, rule, tt.allowed, tt.rule)
			}
		})
	}
}

func TestIPAllowedZeroRules(t *testing.T) {
	if ok, rule := IPAllowed(IPRules{}, IPRules{}, netip.Addr{}); !ok || rule != "" {
		t.Errorf("zero rules: %v %q, want allowed", ok, rule)
	}
}

// TestIPSetMerges: overlapping, nested, adjacent and duplicate ranges of
// both families merge into disjoint ones, and nothing is lost or gained.
func TestIPSetMerges(t *testing.T) {
	entries := []string{
		"10.0.0.0/24", "10.0.1.0/24", // adjacent: one range
		"10.0.0.128/25", // nested
		"10.0.0.5",      // nested, single
		"10.0.3.0/24",   // a gap at 10.0.2.0/24
		"2001:db8::/48", "2001:db8::/64", "2001:db8:0:ffff::/64",
		"255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"10.0.3.0/24", // duplicate
	}
	set, err := parseIPSet("ip.block", entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 6 {
		t.Errorf("merged into %d ranges, want 6: %v", len(set), set)
	}
	for i := 1; i < len(set); i++ {
		if set[i-1].hi.Compare(set[i].lo) >= 0 {
			t.Errorf("ranges %v and %v overlap or are out of order", set[i-1], set[i])
		}
	}
	for _, tt := range []struct {
		addr string
		in   bool
	}{
		{"10.0.0.0", true}, {"10.0.1.255", true}, {"10.0.2.0", false}, {"10.0.2.255", false}, {"10.0.3.0", true},
		{"10.0.3.255", true}, {"10.0.4.0", false}, {"9.255.255.255", false},
		{"255.255.255.255", true}, {"255.255.255.254", false},
		{"::", true}, {"::1", false}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"2001:db8:0:ffff:ffff:ffff:ffff:ffff", true}, {"2001:db8:1::", false},
	} {
		if got := set.contains(netip.MustParseAddr(tt.addr)); got != tt.in {
			t.Errorf("contains(%s) = %v, want %v", tt.addr, got, tt.in)
		}
	}
}

func TestIPGuards(t *testing.T) {
	for _, tt := range []struct {
		ip   IP
		want bool
	}{
		{IP{Mode: IPModeOff, ApplyTo: []string{IPSurfaceAdmin}}, false},
		{IP{Mode: IPModeBlocklist}, false},
		{IP{Mode: IPModeBlocklist, ApplyTo: []string{IPSurfaceAdmin}}, true},
		{IP{Mode: IPModeAllowlist, ApplyTo: []string{IPSurfaceAdmin}}, true},
	} {
		if got := tt.ip.Guards(IPSurfaceAdmin); got != tt.want {
			t.Errorf("%+v.Guards(admin) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}

// TestIPSectionCustomized: an application that customizes ip keeps its own
// lists through a global change, while the global block list still refuses
// what it lists; one that did not follows the global section live.
func TestIPSectionCustomized(t *testing.T) {
	global := Defaults()
	global.IP = IP{Mode: IPModeBlocklist, Block: []string{"192.0.2.0/24"}}
	custom, err := PatchClient(global, ClientPolicy{Customized: []string{}, Effective: global},
		[]byte(`{"ip":{"mode":"allowlist","allow":["10.0.0.0/8"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(custom.Customized, []string{"ip"}) {
		t.Fatalf("customized %q, want [ip]", custom.Customized)
	}
	plain, err := ResolveClient(global, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The global block list grows; the customized app stores its document.
	later, err := ApplyPatch(global, []byte(`{"ip":{"block":["192.0.2.0/24","10.6.0.0/16"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	custom, err = ResolveClient(later, custom.Document())
	if err != nil {
		t.Fatal(err)
	}
	if plain, err = ResolveClient(later, plain.Document()); err != nil {
		t.Fatal(err)
	}
	g := mustRules(t, later.IP)
	for _, tt := range []struct {
		who     string
		app     IP
		addr    string
		allowed bool
		rule    string
	}{
		{"customized, in its allowlist", custom.Effective.IP, "10.0.0.1", true, ""},
		{"customized, outside its allowlist", custom.Effective.IP, "198.51.100.1", false, IPRuleAllow},
		{"customized, in its allowlist but globally blocked", custom.Effective.IP, "10.6.0.1", false, IPRuleGlobalBlock},
		{"customized, globally blocked", custom.Effective.IP, "192.0.2.1", false, IPRuleGlobalBlock},
		{"following the global policy, the new block", plain.Effective.IP, "10.6.0.1", false, IPRuleGlobalBlock},
		{"following the global policy, elsewhere", plain.Effective.IP, "198.51.100.1", true, ""},
	} {
		allowed, rule := IPAllowed(g, mustRules(t, tt.app), netip.MustParseAddr(tt.addr))
		if allowed != tt.allowed || rule != tt.rule {
			t.Errorf("%s: IPAllowed(%s) = %v, %q; want %v, %q", tt.who, tt.addr, allowed, rule, tt.allowed, tt.rule)
		}
	}
}

func TestIPCache(t *testing.T) {
	var c IPCache
	ip := IP{Mode: IPModeBlocklist, Block: []string{"10.0.0.0/8"}}
	r1, err := c.Rules("", ip)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := IPAllowed(r1, r1, netip.MustParseAddr("10.1.1.1")); ok {
		t.Fatal("10.1.1.1 allowed under a block of 10.0.0.0/8")
	}
	// A change in place (which no policy holder should make) is noticed:
	// the cache compares with its own copy.
	ip.Block[0] = "192.0.2.0/24"
	r2, err := c.Rules("", ip)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := IPAllowed(r2, r2, netip.MustParseAddr("10.1.1.1")); !ok {
		t.Error("the cache judged by the rules before the change")
	}
	if ok, _ := IPAllowed(r2, r2, netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("the cache does not judge by the changed rules")
	}
	ip.Mode = IPModeOff
	r3, _ := c.Rules("", ip)
	if ok, _ := IPAllowed(r3, r3, netip.MustParseAddr("192.0.2.1")); !ok {
		t.Error("mode off not picked up")
	}
	if _, err := c.Rules("app", IP{Mode: IPModeBlocklist, Block: []string{"nonsense"}}); err == nil {
		t.Error("an invalid section parsed")
	}
}

// manyRules is an IP section of n v4 and v6 ranges, none holding probe.
func manyRules(n int) IP {
	ip := IP{Mode: IPModeAllowlist}
	for i := range n {
		if i%2 == 0 {
			ip.Allow = append(ip.Allow, fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256))
			ip.Block = append(ip.Block, fmt.Sprintf("172.%d.%d.%d", 16+i/65536%16, i/256%256, i%256))
		} else {
			ip.Allow = append(ip.Allow, fmt.Sprintf("2001:db8:%x::/48", i))
			ip.Block = append(ip.Block, fmt.Sprintf("2001:db8:%x::1", i))
		}
	}
	return ip
}

// BenchmarkIPAllowed judges one address against global and application
// sections of 1000 allow and 1000 block entries each: the decision alone
// on parsed rules, through the cache every sign-in uses, and what parsing
// costs on a change.
func BenchmarkIPAllowed(b *testing.B) {
	ip := manyRules(1000)
	addrs := []netip.Addr{netip.MustParseAddr("10.3.200.9"), netip.MustParseAddr("2001:db8:3e7::5"), netip.MustParseAddr("198.51.100.1")}
	b.Run("parsed", func(b *testing.B) {
		r := mustRules(b, ip)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			IPAllowed(r, r, addrs[i%len(addrs)])
		}
	})
	b.Run("cached", func(b *testing.B) {
		var c IPCache
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			g, err := c.Rules("", ip)
			if err != nil {
				b.Fatal(err)
			}
			a, _ := c.Rules("app", ip)
			IPAllowed(g, a, addrs[i%len(addrs)])
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ip.Rules(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
