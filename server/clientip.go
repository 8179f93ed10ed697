package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/portcullis/portcullis/ipnets"
)

// ClientIP resolves the address of the client behind a chain of trusted
// reverse proxies. X-Forwarded-For is only believed when the TCP peer is one
// of the trusted proxies, because anyone can send the header; without that
// rule rate limits and audit logs could be pointed at arbitrary addresses.
type ClientIP struct {
	trusted ipnets.List
}

// NewClientIP builds a resolver trusting the given proxies, each a CIDR
// ("10.0.0.0/8", "fd00::/8") or a bare IPv4/IPv6 address. An empty list
// trusts nobody, so the TCP peer is always the client.
func NewClientIP(trusted []string) (*ClientIP, error) {
	l, err := ipnets.Parse(trusted)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	return &ClientIP{trusted: l}, nil
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	return c != nil && c.trusted.Contains(a)
}

// From returns the client address for r, or the zero netip.Addr when
// RemoteAddr cannot be parsed.
//
// X-Forwarded-For is walked from the right, because each trusted proxy
// appends the peer it saw; the first untrusted hop is therefore the furthest
// address vouched for by our own infrastructure. Everything to its left was
// supplied by the client and is ignored. A malformed entry stops the walk at
// the last hop that parsed, rather than skipping over it to a value an
// attacker may control.
func (c *ClientIP) From(r *http.Request) netip.Addr {
	peer := remoteAddr(r.RemoteAddr)
	if !peer.IsValid() || !c.isTrusted(peer) {
		return peer
	}
	last := peer
	// Several X-Forwarded-For lines are one list in order (RFC 9110 5.3).
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			var hop string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				hop, rest = rest, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				// Tolerate "a, , b" and trailing commas some proxies emit.
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				return last
			}
			last = a
			if !c.isTrusted(a) {
				return a
			}
		}
	}
	return last
}

// parseHop accepts a bare address or address:port; some proxies append the
// client's source port.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return ipnets.Normalize(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ipnets.Normalize(ap.Addr()), true
	}
	return netip.Addr{}, false
}
