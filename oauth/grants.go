package oauth

import "slices"

// Grant types the token endpoint serves.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// GrantTypes is the one list of the grant types this server serves, in
// the order discovery advertises them. Discovery, the token endpoint,
// client registration and (by test) the admin API's schema all read it, so
// a grant type added here is added everywhere.
func GrantTypes() []string {
	return []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials}
}

// SupportedGrant reports whether g is one of GrantTypes.
func SupportedGrant(g string) bool { return slices.Contains(GrantTypes(), g) }
