package oauth

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/storage"
)

// retryAfter is what an endpoint suggests when the database is down: the
// readiness probe notices as quickly, and a blip is usually over by then.
const retryAfter = "5"

// unavailable reports whether err is the database failing to answer. Such
// a failure is the server's, and must never reach a client as a credential
// error (invalid_client, invalid_token, an inactive token), which it would
// act on by dropping its tokens or alerting its user.
func unavailable(err error) bool { return errors.Is(err, storage.ErrUnavailable) }

// errTemporarilyUnavailable is RFC 6749's temporarily_unavailable, with
// the 503 status that says the same to HTTP.
var errTemporarilyUnavailable = &fosite.RFC6749Error{
	ErrorField:       "temporarily_unavailable",
	DescriptionField: "The authorization server is temporarily unable to handle the request.",
	HintField:        "Try again shortly.",
	CodeField:        http.StatusServiceUnavailable,
}

// writeUnavailable answers an OAuth endpoint's request during an outage.
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", retryAfter)
	writeOAuthError(w, errTemporarilyUnavailable)
}
