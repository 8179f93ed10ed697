// Package bench is a small closed-loop load generator for a running
// Portcullis server.
//
// Run drives each scenario with a fixed number of workers, each issuing one
// request at a time over its own kept-alive connection, first for a warm-up
// period that is discarded and then for the measured period. Every latency is
// recorded and percentiles are computed exactly by sorting, so the numbers do
// not depend on histogram bucket choices.
//
// Scenarios:
//
//   - client_credentials: POST /oauth2/token with grant_type=client_credentials
//     and HTTP Basic client authentication.
//   - introspect: one client_credentials token is obtained up front, then
//     POST /oauth2/introspect is issued repeatedly; "active":false counts as
//     an error.
//   - discovery: GET /.well-known/openid-configuration.
//   - jwks: GET /.well-known/jwks.json.
//
// A response counts as an error unless it is 2xx (and, for introspect, the
// token is reported active); transport failures count as errors too.
//
// The generator is closed-loop: a slow server lowers the offered load rather
// than queueing requests, so throughput figures are the server's sustainable
// rate at the given concurrency. When it shares a host with the server, limit
// its CPU share with GOMAXPROCS.
package bench
