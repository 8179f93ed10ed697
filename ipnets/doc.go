// Package ipnets parses and matches lists of address ranges: CIDRs and
// bare IPv4/IPv6 addresses, with IPv4-mapped IPv6 folded into IPv4 so an
// address matches whichever socket family accepted it. The server's
// trusted-proxy resolution, the config validation of trusted_proxies and
// the IP rules of the policies share it, so an entry means the same thing
// everywhere it can be written.
//
// It is a leaf: it imports nothing of the project, and policies (pure
// logic) may import it. It serves no routes.
package ipnets
