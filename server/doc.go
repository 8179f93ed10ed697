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
// Routes it adds itself: /health/alive, /health/ready, /metrics, /login,
// /static/, / — the protocol endpoints come from oauth and /admin/ from
// admin.
package server
