// Package authn owns how a person proves who they are and how that proof is
// remembered: the login pipeline every sign-in goes through (HTML form, the
// password grant, second factors and passkeys; device verification and QR
// confirmation later), browser sessions, CSRF protection for the HTML forms, the
// accounts service, and the self-service password change.
//
// The accounts service (Accounts, accounts.go) is the one way a password is
// written and the one way everything of a user ends: the self-service
// change, an administrator's reset and user creation (admin API and CLI)
// run the same policies.PasswordRule list (the password policy first, then the
// embedder's) and hashing; ending every session and token family of a user
// (an administrator's request, a password change under
// invalidate_on_password_change, an account lock) revokes the same
// things and records session.ended and token.revoked with its reason, in
// the change's transaction. Only the rehash of a verified password under
// newer hashing parameters is written by the pipeline itself: it is the
// same password, so no rule or session end applies.
//
// Expected results of a sign-in (unknown user, wrong password, disabled
// account, a lock) are Outcome values with a machine-readable reason; error
// is kept for infrastructure failures. A person sees the same page for
// every failure but a lock, which says until when (FailureMessage), and an
// unknown account costs the same hashing work as a known one.
//
// The brute-force defence (lockout.go, WithLockout) is built into the
// pipeline's phases: a blocked address is refused before the account is
// looked up; a locked account or device, or an account whose failures
// demand a captcha, is refused before the password is checked; and the
// record phase counts each wrong credential for the account, its device
// and the address under the account's row lock, in the transaction of the
// attempt's audit event, deciding by the pure policies.Lockout state
// machine. A lock of the account ends everything of it through the
// accounts service in the same transaction; a LockNotice follows the
// commit (the server emails it).
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
// Second factors (SecondFactors, mfa.go; the primitives are package mfa's)
// are steps of the same pipeline: after the password and its rules, the
// mfa policy of the flow's client may answer Challenge{second_factor} or
// Challenge{mfa_enrollment}, which the flow keeps as its stage; the code or
// passkey is then checked by Pipeline.SecondFactor through the same
// network and account gates and counted by the same record phase as a
// wrong password. Pipeline.Passwordless does the same for a discoverable
// passkey alone. The session records second_factor_at, which the step-up
// before removing a factor or making new recovery codes reads.
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
// /login/password (NewForcedChangeHandler: the change a sign-in demands),
// /account/password (NewPasswordHandler), /register and POST
// /api/registrations (NewRegisterHandler, NewRegistrationAPI),
// /forgot-password (NewForgotHandler), /reset-password and /activate
// (NewResetHandler), /verify-email (NewVerifyEmailHandler), /login/mfa and
// /login/mfa/enroll (NewMFAPages), /account/mfa and the pages under it
// (NewAccountMFA). Account links
// (Links) are single-use, stored hashed, and mailed through the
// LinkMailer the server gives. The server mounts the handlers;
// the client address and device of an attempt, a session and their events
// are the request's (package reqinfo), which the server's middleware fills.
// POST /login honours a device_id form parameter, as the token endpoint
// does.
//
// It must not import admin, server or cmd, which sit above it. It imports
// policies and audit, templates (a leaf package of pages), reqinfo, mfa
// and storage.
package authn
