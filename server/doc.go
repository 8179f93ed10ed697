// Package server wires Portcullis together: configuration → storage →
// services → one http.Handler, with the middleware every request passes
// through (request id, client IP from trusted proxies, access log, metrics,
// panic recovery, security headers), health and metrics endpoints, and
// graceful shutdown. Tests start the whole server in-process from here.
//
// Routes it adds itself: /health/alive, /health/ready, /metrics, /login,
// /static/, / — the protocol endpoints come from oauth and /admin/ from
// admin.
package server
