package policies

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/portcullis/portcullis/ipnets"
)

// Values of IP.Mode.
const (
	IPModeOff       = "off"
	IPModeAllowlist = "allowlist"
	IPModeBlocklist = "blocklist"
)

// Surfaces IP.ApplyTo may list besides sign-in, which the rules always
// guard when they are on.
const (
	IPSurfaceAdmin = "admin"
)

// Rules IPAllowed names when it refuses an address; they are for logs, not
// for the person refused.
const (
	// IPRuleGlobalBlock: the global ip.block lists the address. It refuses
	// the address for every application, whatever it customized.
	IPRuleGlobalBlock = "global ip.block"
	// IPRuleBlock: the application's own ip.block lists the address.
	IPRuleBlock = "ip.block"
	// IPRuleAllow: an allowlist is in force and does not list the address,
	// or the address is not known.
	IPRuleAllow = "ip.allow"
)

// IP is the IP rules policy: which client addresses may sign in (and, with
// ApplyTo, use the admin API). Entries of Allow and Block are IPv4 or IPv6
// addresses or CIDR ranges ("10.0.0.0/8", "2001:db8::/32"); an IPv4-mapped
// IPv6 address or range means the IPv4 one. The address judged is the
// client's as the server resolved it through server.trusted_proxies.
//
// An application that customizes the section has its own mode and lists,
// but the global block list still refuses what it lists: a global block
// is a defence for the whole server, not a default an application may
// lift. A global allowlist, by contrast, is the application's to replace.
type IP struct {
	// Mode turns the rules on: "off" (default) judges no address;
	// "blocklist" refuses the addresses in Block; "allowlist" refuses every
	// address not in Allow, and those in Block too (an exception carved out
	// of an allowed range), and refuses an attempt whose address is not
	// known.
	Mode string `json:"mode" toml:"mode"`
	// Allow lists the addresses and ranges an allowlist lets in. Default
	// []; must not be empty when Mode is "allowlist" (that would refuse
	// everyone); ignored, with a warning, under "blocklist".
	Allow []string `json:"allow" toml:"allow"`
	// Block lists the addresses and ranges refused while Mode is not "off".
	// Default [].
	Block []string `json:"block" toml:"block"`
	// ApplyTo lists what the rules guard besides sign-in (every sign-in,
	// the password grant included, is always guarded while Mode is not
	// "off"): "admin" for the admin API. Default []. Only the global value
	// counts, since the admin API belongs to no application.
	ApplyTo []string `json:"apply_to" toml:"apply_to"`
}

func defaultIP() IP {
	// Empty rather than nil lists, so the defaults equal what an empty
	// config.toml list decodes to.
	return IP{Mode: IPModeOff, Allow: []string{}, Block: []string{}, ApplyTo: []string{}}
}

// Guards reports whether the rules are on and guard surface (IPSurfaceAdmin).
func (ip IP) Guards(surface string) bool {
	return ip.Mode != IPModeOff && slices.Contains(ip.ApplyTo, surface)
}

func (ip IP) validate(v *validator) {
	switch ip.Mode {
	case IPModeOff, IPModeAllowlist, IPModeBlocklist:
	default:
		v.fail("ip.mode", "must be %q, %q or %q (got %q)", IPModeOff, IPModeAllowlist, IPModeBlocklist, ip.Mode)
	}
	validateIPList(v, "ip.allow", ip.Allow)
	validateIPList(v, "ip.block", ip.Block)
	switch {
	case ip.Mode == IPModeAllowlist && len(ip.Allow) == 0:
		v.fail("ip.allow", "must list at least one address or range while ip.mode is %q: an empty allowlist refuses everyone", IPModeAllowlist)
	case ip.Mode == IPModeBlocklist && len(ip.Allow) > 0:
		v.warn("ip.allow", "is ignored while ip.mode is %q; only ip.block applies (use %q to refuse everything else)", IPModeBlocklist, IPModeAllowlist)
	case ip.Mode == IPModeOff && len(ip.Allow)+len(ip.Block) > 0:
		v.warn("ip.mode", "is %q, so ip.allow and ip.block are not in force", IPModeOff)
	}
	for i, s := range ip.ApplyTo {
		switch {
		case s != IPSurfaceAdmin:
			v.fail(indexKey("ip.apply_to", i), "must be %q (got %q); sign-in is always guarded", IPSurfaceAdmin, s)
		case slices.Index(ip.ApplyTo, s) < i:
			v.fail(indexKey("ip.apply_to", i), "%q is listed twice", s)
		}
	}
}

// validateIPList reports every entry of list that does not parse, and warns
// of a range written with host bits, which is read as the range it falls in
// and so may not be what was meant.
func validateIPList(v *validator, field string, list []string) {
	for i, s := range list {
		key := indexKey(field, i)
		p, err := ipnets.ParsePrefix(s)
		if err != nil {
			v.fail(key, "%q is not an address or CIDR range", s)
			continue
		}
		if raw, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil && raw != raw.Masked() {
			v.warn(key, "%q has host bits set and means %s", s, p)
		}
	}
}

// IPRules is an IP section parsed for matching: its ranges merged and
// sorted, so that an address is found by binary search whatever the length
// of the lists. The zero value judges no address (as mode "off").
type IPRules struct {
	mode  string
	allow ipSet
	block ipSet
}

// Rules parses ip for IPAllowed. Only an entry Validate refuses makes it
// fail, and the error names it.
func (ip IP) Rules() (IPRules, error) {
	if ip.Mode == IPModeOff {
		return IPRules{mode: IPModeOff}, nil
	}
	allow, err := parseIPSet("ip.allow", ip.Allow)
	if err != nil {
		return IPRules{}, err
	}
	block, err := parseIPSet("ip.block", ip.Block)
	if err != nil {
		return IPRules{}, err
	}
	return IPRules{mode: ip.Mode, allow: allow, block: block}, nil
}

// IPAllowed decides whether addr may go on, under global (the global IP
// rules) and app (the IP rules of the application the request is for,
// which are global's when it has not customized them). When refused, rule
// names which rule refused it (IPRuleGlobalBlock, IPRuleBlock or
// IPRuleAllow).
//
// global's block list applies whatever app is; app's rules apply as its
// mode says. The invalid address, a client whose address is not known, is
// in no list: a block list lets it through and an allowlist refuses it.
func IPAllowed(global, app IPRules, addr netip.Addr) (allowed bool, rule string) {
	addr = ipnets.Normalize(addr)
	switch {
	case global.blocks(addr):
		return false, IPRuleGlobalBlock
	case app.blocks(addr):
		return false, IPRuleBlock
	case app.mode == IPModeAllowlist && !app.allow.contains(addr):
		return false, IPRuleAllow
	}
	return true, ""
}

func (r IPRules) blocks(addr netip.Addr) bool {
	return (r.mode == IPModeBlocklist || r.mode == IPModeAllowlist) && r.block.contains(addr)
}

// ipRange is the addresses from lo to hi, both included, of one family.
type ipRange struct{ lo, hi netip.Addr }

// ipSet is a set of addresses as disjoint ranges sorted by address.
// netip.Addr orders every IPv4 address before every IPv6 one, so both
// families share one slice.
type ipSet []ipRange

func parseIPSet(field string, entries []string) (ipSet, error) {
	set := make(ipSet, 0, len(entries))
	for i, s := range entries {
		p, err := ipnets.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an address or CIDR range: %w", indexKey(field, i), s, err)
		}
		set = append(set, ipRange{lo: p.Addr(), hi: lastAddr(p)})
	}
	slices.SortFunc(set, func(a, b ipRange) int { return a.lo.Compare(b.lo) })
	// Merge ranges that overlap or touch, so that the search below finds at
	// most one candidate.
	merged := set[:0]
	for _, r := range set {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			if r.lo.Compare(last.hi) <= 0 || last.hi.Next() == r.lo {
				if r.hi.Compare(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	return slices.Clip(merged), nil
}

// contains reports whether s holds addr, a normalized address.
func (s ipSet) contains(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	// The first range not ending before addr is the only one that can
	// hold it.
	i, _ := slices.BinarySearchFunc(s, addr, func(r ipRange, a netip.Addr) int {
		return r.hi.Compare(a)
	})
	return i < len(s) && s[i].lo.Compare(addr) <= 0
}

// lastAddr is the highest address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	bits := p.Bits()
	if p.Addr().Is4() {
		b := p.Addr().As4()
		// A shift by the full width yields 0 in Go, which is right for /32.
		binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|^uint32(0)>>bits)
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	if bits >= 64 {
		lo |= ^uint64(0) >> (bits - 64)
	} else {
		hi |= ^uint64(0) >> bits
		lo = ^uint64(0)
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// IPCache keeps the parsed form of the IP sections it is asked about, one
// per key (a client id, "" for the global policy), so that a check made on
// every request parses a section once per change rather than once per
// request. An entry is used only while the section it was parsed from is
// unchanged, entry by entry, so the cache can never judge by stale rules.
// The zero value is ready to use; it is safe for concurrent use.
type IPCache struct {
	mu      sync.Mutex
	entries map[string]ipCacheEntry
}

// maxIPCacheEntries bounds the cache; beyond it, it starts again empty.
// Keys are registered applications, so this is only reached by a server
// with very many of them, which then parses a little more often.
const maxIPCacheEntries = 4096

type ipCacheEntry struct {
	src   IP // a private copy: a caller changing its lists in place must not match it
	rules IPRules
}

// Rules is ip.Rules(), parsed afresh only when ip differs from what key
// was last parsed from.
func (c *IPCache) Rules(key string, ip IP) (IPRules, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && e.src.Mode == ip.Mode && slices.Equal(e.src.Allow, ip.Allow) && slices.Equal(e.src.Block, ip.Block) {
		return e.rules, nil
	}
	rules, err := ip.Rules()
	if err != nil {
		return IPRules{}, err
	}
	src := IP{Mode: ip.Mode, Allow: slices.Clone(ip.Allow), Block: slices.Clone(ip.Block)}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxIPCacheEntries {
		c.entries = make(map[string]ipCacheEntry)
	}
	c.entries[key] = ipCacheEntry{src: src, rules: rules}
	c.mu.Unlock()
	return rules, nil
}
