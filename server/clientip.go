package server

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP resolves the address of the client behind a chain of trusted
// reverse proxies. X-Forwarded-For is only believed when the TCP peer is one
// of the trusted proxies, because anyone can send the header; without that
// rule rate limits and audit logs could be pointed at arbitrary addresses.
type ClientIP struct {
	trusted []netip.Prefix
}

// NewClientIP builds a resolver trusting the given proxies, each a CIDR
// ("10.0.0.0/8", "fd00::/8") or a bare IPv4/IPv6 address. An empty list
// trusts nobody, so the TCP peer is always the client.
func NewClientIP(trusted []string) (*ClientIP, error) {
	c := &ClientIP{trusted: make([]netip.Prefix, 0, len(trusted))}
	for _, s := range trusted {
		p, err := parseTrusted(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		c.trusted = append(c.trusted, p)
	}
	return c, nil
}

func parseTrusted(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
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
		return netip.Prefix{}, err
	}
	a = normalizeAddr(a)
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// normalizeAddr drops zones and IPv4-mapping so the same host always
// compares and prints the same way whichever socket family accepted it.
func normalizeAddr(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	if c == nil {
		return false
	}
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
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
		return normalizeAddr(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	return netip.Addr{}, false
}

type clientIPKey struct{}

// Middleware resolves the client address once per request and stores it in
// the context for AccessLog, rate limiting and audit logging.
func (c *ClientIP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := c.From(r)
		r2 := r.WithContext(context.WithValue(r.Context(), clientIPKey{}, ip))
		next.ServeHTTP(w, r2)
		propagatePattern(r, r2)
	})
}

// ClientIPFrom returns the address stored by ClientIP.Middleware, or the zero
// netip.Addr (IsValid false) outside it.
func ClientIPFrom(ctx context.Context) netip.Addr {
	ip, _ := ctx.Value(clientIPKey{}).(netip.Addr)
	return ip
}
