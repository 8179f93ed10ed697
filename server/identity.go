package server

import (
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/reqinfo"
)

// Identify fills reqinfo once per request, before anything else runs, so
// every log line, sign-in step and audit event of the request agrees on who
// it comes from:
//
//   - the request id: a well-formed incoming X-Request-Id is kept, so ids
//     assigned by a fronting proxy survive; anything else is replaced
//     rather than sanitised, as the id ends up in logs and response headers
//     and an attacker-chosen value must not be able to forge log lines. The
//     id is echoed in the response.
//   - the client address, resolved through proxies (nil trusts nobody).
//   - the device: a valid device_id query parameter (mobile and native
//     clients name their installation), else the browser's device cookie
//     when its signature holds. devices nil means no cookie is read or set.
//
// A browser without a valid device cookie gets a fresh one on the HTML
// pages (see isPage) and that request already carries its id; API requests
// never set one, since machine clients would only collect cookies they
// never send back. Handlers that learn a device from a form body call
// reqinfo.WithDevice.
func Identify(proxies *ClientIP, devices *DeviceCookie) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.Info{RequestID: r.Header.Get(RequestIDHeader), IP: proxies.From(r)}
			if !validRequestID(info.RequestID) {
				info.RequestID = newRequestID()
			}
			w.Header().Set(RequestIDHeader, info.RequestID)
			if devices != nil {
				info.DeviceID = devices.resolve(w, r, isPage(r))
			}
			// Only the query is read here: the body belongs to the handler,
			// which calls reqinfo.WithDevice for a device_id it parses.
			if id := r.URL.Query().Get(reqinfo.DeviceIDParam); reqinfo.ValidDeviceID(id) {
				info.DeviceID = id
			}
			r2 := r.WithContext(reqinfo.With(r.Context(), info))
			next.ServeHTTP(w, r2)
			propagatePattern(r, r2)
		})
	}
}

// isPage reports whether r asks for an HTML page a person's browser opens:
// the home page, sign-in, authorization, logout and the account pages
// under /account/. Everything else (token, introspection, revocation,
// userinfo, discovery, JWKS, admin, metrics, health, static files) is
// called by programs or loaded by a page that set the cookie already. Only
// GET and HEAD count: a form post follows the page that set the cookie.
func isPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch p := r.URL.Path; {
	case p == "/", p == "/login", p == "/oauth2/auth", p == "/oauth2/logout":
		return true
	default:
		return strings.HasPrefix(p, "/account/")
	}
}
