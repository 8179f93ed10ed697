// Package authn owns how a person proves who they are and how that proof is
// remembered: the login pipeline every sign-in goes through (HTML form today;
// the password grant, device verification, QR confirmation and MFA steps
// later), browser sessions, CSRF protection for the HTML forms, user
// creation, and the self-service password change.
//
// Expected results of a sign-in (unknown user, wrong password, disabled
// account) are Outcome values with a machine-readable reason; error is kept
// for infrastructure failures. Whatever the reason, a person sees the same
// page, and an unknown account costs the same hashing work as a known one.
//
// Browser sessions follow the global session policy (policies.Session),
// read afresh on every request so a change applies at once: cookie
// lifetime, absolute and idle timeouts, max_concurrent with on_limit, and
// invalidate_on_password_change. Every sign-in, session start and end, and
// password change is an audit event.
//
// Routes: GET and POST /login (NewLoginHandler), GET and POST
// /account/password (NewPasswordHandler). The server mounts the handlers
// and supplies the trusted client IP through SessionConfig.ClientIP.
//
// It must not import admin, server or cmd, which sit above it. It imports
// policies and audit, templates (a leaf package of pages) and storage.
package authn
