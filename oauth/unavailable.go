package oauth

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

// retryAfter is what an endpoint suggests when the database is down: the
// readiness probe notices as quickly, and a blip is usually over by then.
// When it is password hashing that is full, a second is enough for the
// queue to move.
func retryAfter(err error) string {
	if errors.Is(err, hashing.ErrBusy) {
		return "1"
	}
	return "5"
}

// unavailable reports whether err is the server failing to answer: the
// database down, or all password hashing memory in use. Such a failure is
// the server's, and must never reach a client as a credential error
// (invalid_client, invalid_token, an inactive token), which it would act
// on by dropping its tokens or alerting its user.
func unavailable(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, hashing.ErrBusy)
}

// errTemporarilyUnavailable is RFC 6749's temporarily_unavailable, with
// the 503 status that says the same to HTTP.
var errTemporarilyUnavailable = &fosite.RFC6749Error{
	ErrorField:       "temporarily_unavailable",
	DescriptionField: "The authorization server is temporarily unable to handle the request.",
	HintField:        "Try again shortly.",
	CodeField:        http.StatusServiceUnavailable,
}

// writeUnavailable answers an OAuth endpoint's request the server cannot
// handle now because of err.
func writeUnavailable(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", retryAfter(err))
	writeOAuthError(w, errTemporarilyUnavailable)
}
