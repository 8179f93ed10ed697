// Package oauth composes fosite into Portcullis's OAuth 2.0 / OpenID Connect
// provider: token strategies (opaque HMAC tokens by default, RFC 9068 JWT
// access tokens per client), signing keys (go-jose v4, encrypted at rest,
// converted to go-jose v3 at the fosite boundary), client registration rules,
// and the protocol endpoints:
//
//	GET  /.well-known/openid-configuration   discovery (pre-rendered)
//	GET  /.well-known/jwks.json              public signing keys (pre-rendered)
//	GET  /oauth2/auth, POST /oauth2/auth     authorization (login redirect, consent)
//	POST /oauth2/token                       token endpoint
//	POST /oauth2/introspect                  RFC 7662
//	POST /oauth2/revoke                      RFC 7009
//	GET  /userinfo, POST /userinfo           OIDC userinfo
//	GET  /oauth2/logout, POST /oauth2/logout RP-initiated logout
//
// Lifetimes come from the policy of the client a request is for (a
// PolicySource, in practice policystore's engine): fosite's own lifespans are
// replaced per request by policies.Policy.Lifetimes.
//
// It imports policies, storage, audit, hashing, fielderr and templates;
// never authn, policystore, admin, server or cmd. The browser session
// reaches it through the small BrowserSessions interface declared here.
package oauth
