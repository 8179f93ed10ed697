// Package reqinfo carries request identity through a request's context:
// the client address after trusted-proxy resolution, the request id and the
// device id. The server's middleware fills it once per request; every
// sign-in step, session and audit event reads it from there, so no layer
// has to be handed a resolver or recompute an answer that could differ.
//
// It is a leaf: it imports nothing of the project, so any package that
// handles a request or records an event (audit, oauth, authn, admin) may
// import it. CIDR lists live in ipnets, apart, because policies needs them
// for IP rules and has no business with request contexts. It serves no
// routes.
package reqinfo
