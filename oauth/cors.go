package oauth

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/portcullis/portcullis/storage"
)

// CORS for browser applications (single-page apps).
//
// Discovery and JWKS are public documents: any origin may read them.
// The token, revocation and userinfo endpoints answer a cross-origin
// request only for an origin registered on the client making it
// (allowed_cors_origins). A preflight carries no credentials, so it is
// answered for an origin that some client registered; the actual request
// is then judged against its own client. No endpoint allows credentials
// (cookies): a browser application sends its token or client id itself.

// corsMaxAge is how long a browser may reuse a preflight answer, in
// seconds. Short, so that removing an origin takes effect soon.
const corsMaxAge = "600"

// publicCORS marks a response readable from any origin.
func publicCORS(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

// publicPreflight answers the preflight of a public GET document.
func publicPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	publicCORS(w)
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Allow-Headers", "*")
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// clientPreflight answers the preflight of a client endpoint that accepts
// methods. An origin no client registered gets no CORS headers, which the
// browser reads as a refusal.
func (p *Provider) clientPreflight(methods string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		if origin := r.Header.Get("Origin"); origin != "" && p.originAllowed(r, nil, origin) {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", corsMaxAge)
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// clientCORS sets the CORS headers of a client endpoint's response before
// it is written. c is the client the request is for; nil when it cannot be
// told (the request will fail), and then any client's origin may read the
// error, so the application can show it.
func (p *Provider) clientCORS(w http.ResponseWriter, r *http.Request, c *storage.Client) {
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !p.originAllowed(r, c, origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	// userinfo's errors are in this header (RFC 6750 3).
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate")
}

func (p *Provider) originAllowed(r *http.Request, c *storage.Client, origin string) bool {
	if c != nil {
		return slices.Contains(c.AllowedCORSOrigins, origin)
	}
	ok, err := p.cfg.Store.AnyClientAllowsOrigin(r.Context(), origin)
	if err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "cors origin lookup", "err", err.Error())
		return false
	}
	return ok
}

// formClientCORS is clientCORS for the token and revocation endpoints,
// whose client is named in the request.
func (p *Provider) formClientCORS(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") == "" {
		w.Header().Add("Vary", "Origin")
		return
	}
	p.clientCORS(w, r, p.requestClient(r))
}

// requestClient is the client a token or revocation request names, before
// it is authenticated: the HTTP Basic user or the client_id field. It is
// only used to choose CORS headers; authentication happens after.
func (p *Provider) requestClient(r *http.Request) *storage.Client {
	id := r.PostFormValue("client_id")
	if user, _, ok := r.BasicAuth(); ok {
		// RFC 6749 2.3.1: the Basic credentials are form-urlencoded.
		if u, err := url.QueryUnescape(user); err == nil {
			id = u
		}
	}
	if id == "" {
		return nil
	}
	fc, err := p.cfg.Store.GetClient(r.Context(), id)
	if err != nil {
		return nil
	}
	c, _ := fc.(*storage.Client)
	return c
}
