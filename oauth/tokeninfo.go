package oauth

import "time"

// TokenInfo is what a verified access token says about its bearer: used by
// the admin API and userinfo to authorise a request.
type TokenInfo struct {
	ClientID  string
	Subject   string
	Scopes    []string
	ExpiresAt time.Time
}
