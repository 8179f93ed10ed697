package ipnets

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// List is a set of address ranges. The zero value contains nothing.
type List []netip.Prefix

// EntryError is a List entry that does not parse. Index is the entry's
// position in what Parse was given, so a caller can name the config key or
// policy field at fault ("server.trusted_proxies[1]").
type EntryError struct {
	Index int
	Entry string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("entry %d (%q): %v", e.Index, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// ErrNotAnAddress is what an entry that is neither an address nor a CIDR
// wraps.
var ErrNotAnAddress = errors.New("is neither an IP address nor a CIDR")

// Parse parses entries, each a CIDR ("10.0.0.0/8", "fd00::/8") or a bare
// IPv4 or IPv6 address (a /32 or /128). The first entry that does not parse
// is returned as an *EntryError; callers that report every problem at once
// call ParsePrefix per entry instead.
func Parse(entries []string) (List, error) {
	l := make(List, 0, len(entries))
	for i, s := range entries {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, &EntryError{Index: i, Entry: s, Err: err}
		}
		l = append(l, p)
	}
	return l, nil
}

// ParsePrefix parses one entry of a List. Surrounding spaces are ignored,
// as lists come from comma-separated environment variables too. The result
// is masked (host bits cleared) and in the form Contains compares against:
// an IPv4-mapped IPv6 prefix becomes the IPv4 prefix it stands for, and a
// zone is dropped.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: %w", ErrNotAnAddress, err)
		}
		// An IPv4-mapped prefix would never match, since addresses are
		// unmapped before comparison; translate it to the IPv4 prefix the
		// operator meant.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %w", ErrNotAnAddress, err)
	}
	a = Normalize(a)
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Normalize drops the zone and the IPv4 mapping of a, so the same host
// compares and prints the same way whichever socket family accepted it.
func Normalize(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

// Contains reports whether a, normalized, lies in one of l's ranges. The
// invalid address is in none.
func (l List) Contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = Normalize(a)
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Strings spells l's ranges in canonical CIDR form.
func (l List) Strings() []string {
	out := make([]string, len(l))
	for i, p := range l {
		out[i] = p.String()
	}
	return out
}
