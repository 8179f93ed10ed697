package oauth

import "slices"

// Grant types the token endpoint serves.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	// GrantPassword is the resource owner password credentials grant
	// (RFC 6749 4.3). RFC 9700 says it must not be used; it is served for
	// mobile apps migrating from systems that had it, and a client gets it
	// only when its registration lists it (see passwordgrant.go).
	GrantPassword = "password"
)

// GrantTypes is the one list of the grant types this server serves, in
// the order discovery advertises them. Discovery, the token endpoint,
// client registration and (by test) the admin API's schema all read it, so
// a grant type added here is added everywhere.
func GrantTypes() []string {
	return []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantPassword, GrantDeviceCode}
}

// SupportedGrant reports whether g is one of GrantTypes.
func SupportedGrant(g string) bool { return slices.Contains(GrantTypes(), g) }
