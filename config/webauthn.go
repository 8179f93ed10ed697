package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultRPDisplayName is the relying party's name when
// webauthn.rp_display_name is empty.
const DefaultRPDisplayName = "Portcullis"

// maxRPDisplayName is the length every authenticator must store (WebAuthn
// Level 3, section 6.4.1); a longer name may be cut short on some.
const maxRPDisplayName = 64

// WebAuthnConfig is the [webauthn] table: the relying party that passkeys
// and security keys are bound to. Every key may be left empty to follow the
// issuer, which suits a server reached at one host name.
type WebAuthnConfig struct {
	// RPID is the relying party id: a host name, without scheme or port
	// and never an IP address, equal to every origin's host or a parent
	// domain of it. Credentials are bound to it for good, so changing it
	// orphans every registered key. "" means the issuer's host.
	RPID string `toml:"rp_id"`
	// RPDisplayName is the name authenticators show when a key is
	// registered, and authenticator apps above TOTP codes. "" means
	// DefaultRPDisplayName.
	RPDisplayName string `toml:"rp_display_name"`
	// Origins are the exact origins (scheme://host[:port]) the sign-in
	// pages are served from; empty means the issuer's origin.
	Origins []string `toml:"origins"`
}

// Resolve fills the keys left empty from issuer (the server.issuer URL):
// rpID is the issuer's host, displayName DefaultRPDisplayName and origins
// the issuer's origin. err is an *Error naming each key at fault, as
// Validate reports them. An rpID taken from an issuer at an IP address is
// returned as it is, without an error: WebAuthn cannot use it, and it is
// the caller's to turn passkeys off (the default configuration's issuer is
// 127.0.0.1).
func (c WebAuthnConfig) Resolve(issuer string) (rpID, displayName string, origins []string, err error) {
	var p problems
	rpID, displayName, origins = c.resolve(issuer, &p)
	if iss, ok := issuerOrigin(issuer); !ok && (c.RPID == "" || len(c.Origins) == 0) {
		p.add("server.issuer", "%q is not an absolute http or https URL, so the webauthn defaults cannot follow it", iss)
	}
	if err := p.err(); err != nil {
		return "", "", nil, err
	}
	return rpID, displayName, origins, nil
}

// validate reports every problem with [webauthn], and with the defaults it
// takes from issuer; a broken issuer is reported under server.issuer by
// validateIssuer, once.
func (c WebAuthnConfig) validate(issuer string, p *problems) { c.resolve(issuer, p) }

// resolve is Resolve without the issuer's own problems.
func (c WebAuthnConfig) resolve(issuer string, p *problems) (rpID, displayName string, origins []string) {
	displayName = c.RPDisplayName
	if displayName == "" {
		displayName = DefaultRPDisplayName
	} else if msg := checkDisplayName(displayName); msg != "" {
		p.add("webauthn.rp_display_name", "%s", msg)
	}

	issOrigin, issuerOK := issuerOrigin(issuer)
	rpIDOK := true
	switch {
	case c.RPID != "":
		rpID = c.RPID
		if msg := checkRPID(c.RPID); msg != "" {
			p.add("webauthn.rp_id", "%s (got %q)", msg, c.RPID)
			rpIDOK = false
		}
	case issuerOK:
		u, _ := url.Parse(issOrigin)
		rpID = strings.ToLower(u.Hostname())
	}
	// An rp_id from an IP address issuer is not WebAuthn's: passkeys are
	// off, and nothing is gained by judging origins against it.
	judge := rpIDOK && rpID != "" && !isIPHost(rpID)

	origins = make([]string, 0, max(len(c.Origins), 1))
	for i, o := range c.Origins {
		key := fmt.Sprintf("webauthn.origins[%d]", i)
		norm, msg := checkOrigin(o)
		if msg != "" {
			p.add(key, "%s (got %q)", msg, o)
			continue
		}
		if judge && !underRPID(norm, rpID) {
			p.add(key, "host must be %s or a subdomain of it, or browsers refuse every ceremony on it (got %q)", rpIDSource(c.RPID, rpID), o)
		}
		origins = append(origins, norm)
	}
	if len(c.Origins) == 0 && issuerOK {
		origins = append(origins, issOrigin)
		if judge && c.RPID != "" && !underRPID(issOrigin, rpID) {
			p.add("webauthn.rp_id", "the issuer's host, whose origin %q is the default of webauthn.origins, is not %q or a subdomain of it; set webauthn.origins, or an rp_id it is under", issOrigin, rpID)
		}
	}
	return rpID, displayName, origins
}

// warnings are the [webauthn] settings that are valid but may not do what
// they seem to.
func (c WebAuthnConfig) warnings() []string {
	if len(c.RPDisplayName) > maxRPDisplayName {
		return []string{fmt.Sprintf("webauthn.rp_display_name: %d bytes; authenticators need only keep %d, so some show it cut short", len(c.RPDisplayName), maxRPDisplayName)}
	}
	return nil
}

// issuerOrigin is the origin of an absolute http(s) issuer URL; ok is
// false for anything else, which validateIssuer reports.
func issuerOrigin(issuer string) (origin string, ok bool) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return issuer, false
	}
	return u.Scheme + "://" + u.Host, true
}

// checkRPID says what is wrong with id as a relying party id, or "". A
// relying party id is a domain: browsers refuse an IP address, and a
// scheme, port or path is not part of one. Upper case is refused rather
// than folded because credentials are bound to the id's exact bytes.
func checkRPID(id string) string {
	const example = `such as "id.example.com"`
	switch {
	case strings.Contains(id, "://"):
		return "must be a host name without a scheme, " + example
	case strings.ContainsAny(id, "/?#@ "):
		return "must be a host name without a path, " + example
	case isIPHost(id):
		return "must be a host name, not an IP address: WebAuthn refuses IP addresses (use a name that resolves to it, or leave passkeys off)"
	case strings.Contains(id, ":"):
		return "must be a host name without a port; the port belongs in webauthn.origins"
	case strings.ToLower(id) != id:
		return "must be lower case, as browsers write host names"
	}
	if len(id) > 253 {
		return "must be at most 253 characters"
	}
	for _, label := range strings.Split(id, ".") {
		if label == "" {
			return "must be dot-separated labels, none empty (no leading or trailing dot)"
		}
		if len(label) > 63 {
			return "each label must be at most 63 characters"
		}
		for _, r := range label {
			if r >= utf8.RuneSelf {
				return "must be ASCII: write an internationalized name in its xn-- form"
			}
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "labels may hold only letters, digits and hyphens"
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "labels must not start or end with a hyphen"
		}
	}
	return ""
}

// isIPHost reports whether h is an IP address, bracketed or not.
func isIPHost(h string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	return err == nil
}

// checkOrigin says what is wrong with o as a WebAuthn origin, or returns
// it in origin form (a bare trailing "/" dropped, as browsers send none).
// Plain http is refused except on loopback, where browsers treat it as
// secure; elsewhere they offer no WebAuthn at all.
func checkOrigin(o string) (string, string) {
	const example = `such as "https://id.example.com"`
	u, err := url.Parse(o)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", "must be an absolute http or https origin, " + example
	case u.User != nil:
		return "", "must not contain user information"
	case u.Path != "" && u.Path != "/", u.RawQuery != "" || u.ForceQuery, u.Fragment != "" || strings.Contains(o, "#"):
		return "", "must be scheme://host[:port] without a path, query or fragment, " + example
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return "", "must use https unless the host is loopback or localhost: browsers offer WebAuthn only on secure origins"
	}
	return u.Scheme + "://" + u.Host, ""
}

// underRPID reports whether origin's host is rpID or a subdomain of it, as
// browsers demand.
func underRPID(origin, rpID string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	return host == rpID || strings.HasSuffix(host, "."+rpID)
}

// rpIDSource names the relying party id in messages: the configured key,
// or the issuer's host it defaulted to.
func rpIDSource(configured, rpID string) string {
	if configured != "" {
		return fmt.Sprintf("webauthn.rp_id %q", rpID)
	}
	return fmt.Sprintf("the issuer's host %q (webauthn.rp_id is empty)", rpID)
}

// checkDisplayName says what is wrong with a relying party name, or "".
// Authenticators show it as it is, so control characters (a newline to
// fake a second line) and a blank name are refused.
func checkDisplayName(name string) string {
	switch {
	case !utf8.ValidString(name):
		return "must be valid UTF-8"
	case strings.TrimSpace(name) == "":
		return `must not be blank; leave it "" for "` + DefaultRPDisplayName + `"`
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}
