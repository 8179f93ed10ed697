package storage

import "errors"

// Sentinel errors, wrapped with %w by every method so callers can test with
// errors.Is regardless of the backend.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict means a unique constraint refused the write (duplicate id,
	// username, …).
	ErrConflict = errors.New("storage: conflict")
	// ErrAlreadyUsed means a single-use object (authorization code, refresh
	// token) was consumed by another request first.
	ErrAlreadyUsed = errors.New("storage: already used")
	// ErrUnavailable means the database could not answer (down, closed,
	// timed out, or any failure that is not one of the outcomes above).
	// Callers must report it as the server's trouble, never as a wrong
	// credential: a client told "invalid token" drops its tokens.
	ErrUnavailable = errors.New("storage: database unavailable")
)
