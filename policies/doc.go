// Package policies is the security policy engine: the policy document (token,
// session, password, lockout, ip, captcha, registration, mfa and
// device_flow; qr later), its defaults, its validation, RFC 7396 merge
// patches and the overlay that layers what administrators set on top of the
// configuration, and the decision functions the rest of the server asks
// (token lifetimes, session admission, re-authentication, timeouts, lockout,
// the second-factor step of a sign-in, the step-up before a sensitive
// action, and the device authorization grant's code expiry and polling
// interval).
//
// It is pure logic so that it can be read and tested in isolation: no I/O,
// no logging, and no clock — every function that depends on time takes now
// as an argument. It imports only the standard library, fielderr and ipnets
// (address ranges, for the IP rules), and serves no routes; the admin API
// and the token endpoint call into it.
//
// It also owns the one decision the authorization endpoint asks before
// consent: whether the browser session satisfies the request
// (Policy.SessionSatisfies), from prompt, max_age and acr_values through the
// session caps to consent. Keeping it here, in one place, means every entry
// point answers the same request the same way, including the errors that
// prompt=none returns instead of a page.
//
// The document's sections are listed once, in Sections: defaults,
// validation, cloning, merge patches, the config.toml tables and the admin
// API's schema follow that list, and tests fail when a section or a key is
// missing from any of them or has a type one of them cannot handle. An
// application customizes sections one by one (ClientPolicy, PatchClient):
// a section it customizes starts as a snapshot of the global section and
// keeps its own values; the others follow the global policy live. Global
// IP block rules and an account's lock state are not per-application: they
// apply whatever an application customized.
//
// The same document is read from config.toml (toml tags) and from the admin
// API (json tags); both use the same snake_case key names, and both report
// problems through Policy.Validate, so there is one set of rules. Durations
// are written as Go duration strings ("15m", "168h") in both.
package policies
