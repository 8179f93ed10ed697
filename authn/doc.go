// Package authn owns how a person proves who they are and how that proof is
// remembered: the login pipeline every sign-in goes through (HTML form today;
// the password grant, device verification, QR confirmation and MFA steps
// later), browser sessions, CSRF protection for the HTML forms, and user
// creation.
//
// Expected results of a sign-in (unknown user, wrong password, disabled
// account) are Outcome values with a machine-readable reason; error is kept
// for infrastructure failures. Whatever the reason, a person sees the same
// page, and an unknown account costs the same hashing work as a known one.
//
// Routes: GET and POST /login (NewLoginHandler). The server mounts the
// handler and supplies the trusted client IP through SessionConfig.ClientIP.
//
// It must not import admin, server or cmd, which sit above it. It imports
// templates, a leaf package of pages that imports nothing from the project.
package authn
