// Package oauth composes fosite into Portcullis's OAuth 2.0 / OpenID Connect
// provider: token strategies (opaque HMAC tokens by default, RFC 9068 JWT
// access tokens per client), signing keys (go-jose v4, encrypted at rest,
// converted to go-jose v3 at the fosite boundary), client registration rules,
// and the protocol endpoints:
//
//	GET  /.well-known/openid-configuration   discovery (pre-rendered)
//	GET  /.well-known/jwks.json              public signing keys (pre-rendered)
//	GET  /oauth2/auth, POST /oauth2/auth     authorization (login flow, consent)
//	POST /oauth2/token                       token endpoint
//	POST /oauth2/introspect                  RFC 7662
//	POST /oauth2/revoke                      RFC 7009
//	GET  /userinfo, POST /userinfo           OIDC userinfo
//	GET  /oauth2/logout, POST /oauth2/logout RP-initiated logout (asks unless id_token_hint matches)
//	OPTIONS on discovery, JWKS, token, revoke and userinfo: CORS preflight
//
// Grants (grants.go, the one registry): authorization_code, refresh_token,
// client_credentials and, for clients that list it, password — the
// resource-owner password grant (passwordgrant.go), whose every attempt is
// judged by the sign-in pipeline through a PasswordAuthenticator the server
// provides (authn stays above this package), so lockout, IP rules and
// captcha demands apply to it as to the login form.
//
// CORS (cors.go): discovery and JWKS to any origin; token, revocation and
// userinfo only to the origins the requesting client registered.
//
// Lifetimes come from the policy of the client a request is for (a
// PolicySource, in practice policystore's engine): fosite's own lifespans are
// replaced per request by policies.Policy.Lifetimes.
//
// Whether the browser's session satisfies an authorization request
// (prompt, max_age, acr_values, consent) is one decision,
// policies.Policy.SessionSatisfies, taken once per request; when the
// person must sign in, a login flow (LoginFlows, implemented by authn)
// carries the request server-side and hands it back once, marked as just
// authenticated.
//
// The token endpoint honours a device_id form parameter (reqinfo), so the
// events of a grant name the mobile or native device that asked for it.
//
// It imports policies, storage, audit, hashing, fielderr, templates and
// reqinfo; never authn, policystore, admin, server or cmd. The browser
// session and login flows reach it through the small BrowserSessions and
// LoginFlows interfaces declared here.
package oauth
