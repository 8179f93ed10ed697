// Package policies is the security policy engine: the policy document (token
// and session today; password, lockout, ip, registration, captcha, mfa and qr
// later), its defaults, its validation, RFC 7396 merge patches and the
// overlay that layers what administrators set on top of the configuration,
// and the decision functions the rest of the server asks (token lifetimes,
// session admission, re-authentication, timeouts).
//
// It is pure logic so that it can be read and tested in isolation: no I/O,
// no logging, and no clock — every function that depends on time takes now
// as an argument. It imports only the standard library and fielderr, and
// serves no routes; the admin API and the token endpoint call into it.
//
// The same document is read from config.toml (toml tags) and from the admin
// API (json tags); both use the same snake_case key names, and both report
// problems through Policy.Validate, so there is one set of rules. Durations
// are written as Go duration strings ("15m", "168h") in both.
package policies
