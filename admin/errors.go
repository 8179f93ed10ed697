package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

// apiError is an error that knows its HTTP rendering. cause is the
// underlying error, for the log only.
type apiError struct {
	status      int
	code        string
	description string
	fields      []fielderr.Field
	challenge   string // WWW-Authenticate value, on 401 and 403
	cause       error
}

func (e *apiError) Error() string {
	msg := e.code
	if e.description != "" {
		msg += ": " + e.description
	}
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

func (e *apiError) Unwrap() error { return e.cause }

// errorBody is the JSON shape of every error response, OAuth style.
type errorBody struct {
	Error       string           `json:"error"`
	Description string           `json:"error_description,omitempty"`
	Fields      []fielderr.Field `json:"fields,omitempty"`
}

func badRequest(cause error, description string, fields ...fielderr.Field) error {
	return &apiError{
		status: http.StatusBadRequest, code: "invalid_request",
		description: description, fields: fields, cause: cause,
	}
}

func notFound() error {
	return &apiError{status: http.StatusNotFound, code: "not_found"}
}

func methodNotAllowed() error {
	return &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed"}
}

func conflict(cause error, description string) error {
	return &apiError{status: http.StatusConflict, code: "conflict", description: description, cause: cause}
}

// classify maps any error a handler returns to its rendering, so handlers
// can return storage and validation errors as they come.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if fe, ok := fielderr.As(err); ok {
		return &apiError{
			status: http.StatusUnprocessableEntity, code: "invalid_request",
			description: "the request failed validation", fields: fe.Fields, cause: err,
		}
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: "not_found", cause: err}
	case errors.Is(err, storage.ErrConflict):
		return &apiError{status: http.StatusConflict, code: "conflict", description: "the object already exists", cause: err}
	case errors.Is(err, storage.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			description: "the database is not answering; try again shortly", cause: err}
	case errors.Is(err, hashing.ErrBusy):
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			description: "too many passwords are being checked at once; try again shortly", cause: err}
	}
	return &apiError{status: http.StatusInternalServerError, code: "server_error", cause: err}
}

// writeError is the one place errors become responses. Server errors are
// logged in full and answered with nothing but their code.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	level := slog.LevelDebug
	if ae.status >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	h.log.LogAttrs(r.Context(), level, "admin request failed",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", ae.status),
		slog.Any("error", err))
	if ae.challenge != "" {
		w.Header().Set("WWW-Authenticate", ae.challenge)
	}
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	h.writeJSON(w, r, ae.status, errorBody{Error: ae.code, Description: ae.description, Fields: ae.fields})
}

func (h *handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here; the status may still be
		// changed since nothing has been written.
		h.log.LogAttrs(r.Context(), slog.LevelError, "admin: encode response", slog.Any("error", err))
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a client that went away is not our error
}
