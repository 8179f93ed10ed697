// Package server wires Portcullis together: configuration → storage →
// services → one http.Handler, with the middleware every request passes
// through (request identity, access log, metrics, panic recovery, security
// headers), health and metrics endpoints, and graceful shutdown. Tests
// start the whole server in-process from here.
//
// Request identity (Identify) is filled into package reqinfo once per
// request: the request id, the client address resolved through the
// trusted proxies (server.trusted_proxies, parsed by ipnets), and the
// device — a device_id query parameter, else the browser's signed device
// cookie (portcullis_device, __Host-portcullis_device on HTTPS), which the
// HTML pages set on a browser's first visit.
//
// Routes it adds itself: /health/alive, /health/ready, /login, /static/,
// / — the protocol endpoints come from oauth and /admin/ from admin.
// /metrics (and /debug/pprof/ when server.pprof is on) is served on a
// listener of its own, server.metrics_listen, loopback by default, never
// on the public one.
//
// Every argon2 hash the server runs draws on one memory budget
// (hashing.Limiter, sized by hashingBudgetKiB); the serve command also
// sets Go's soft memory limit from it (SetMemoryLimit).
package server
