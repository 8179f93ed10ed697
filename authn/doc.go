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
// Every sign-in is a login flow (flows.go), stored server-side like Hydra's
// login challenge: an entry point (the authorization endpoint, a page that
// needs a session) starts one holding the client, the request to resume
// and the login hint; the login page works on it by id (/login?flow=ID);
// the flow is bound to the browser that started it by a cookie and
// completes once, atomically, before a session starts. The attempt is
// judged under the flow's client, and the session records how it was
// proven (amr, acr) for the ID token.
//
// Browser sessions follow the global session policy (policies.Session),
// read afresh on every request so a change applies at once: cookie
// lifetime, absolute and idle timeouts and invalidate_on_password_change;
// the application signed in to decides admission (max_concurrent with
// on_limit). Every sign-in, session start and end, and
// password change is an audit event.
//
// Routes: GET /login?flow=ID and POST /login (NewLoginHandler; GET /login
// without a flow starts one returning to return_to), GET and POST
// /account/password (NewPasswordHandler). The server mounts the handlers
// and supplies the trusted client IP through SessionConfig.ClientIP.
//
// It must not import admin, server or cmd, which sit above it. It imports
// policies and audit, templates (a leaf package of pages) and storage.
package authn
