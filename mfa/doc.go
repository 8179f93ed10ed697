// Package mfa owns the second factors' own logic: TOTP (RFC 6238 over
// github.com/pquerna/otp: keys, codes, otpauth URIs and their QR codes),
// WebAuthn ceremonies (security keys and passkeys, over
// github.com/go-webauthn/webauthn) and recovery codes (generation, the one
// accepted spelling, the hash that is stored).
//
// It is pure: no I/O, no clock (every function that depends on time takes
// now), no state between calls. What must be remembered — a factor, the
// last TOTP step accepted, a ceremony in progress, a used recovery code —
// is handed to the caller as values to keep in storage, and the single-use
// guarantees are the storage layer's conditional updates, not this
// package's. Deciding when a second factor is required (policy), running it
// as a sign-in step (authn) and serving its pages and routes are done
// elsewhere; this package serves no routes.
//
// It must not import storage, authn or server (nor anything else of the
// project): those sit above it and call into it.
package mfa
