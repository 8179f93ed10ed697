// Package policystore is the running side of the policy engine. It layers
// the built-in defaults, config.toml and what administrators set through the
// API (stored in the database) into the effective global policy; keeps the
// sections each application customizes and works out, per loaded version,
// each application's effective policy (its own sections, the global
// others), so that For is a map lookup; applies JSON merge patches
// atomically and audits them with the before and after; and notices
// changes made by any instance sharing the database by polling one version
// counter.
//
// The policy logic itself — the document, validation, patching, lifetime
// arithmetic — is in package policies, which does no I/O. This package may
// import policies, storage, audit and fielderr; oauth, authn, admin and
// server sit above it.
package policystore
