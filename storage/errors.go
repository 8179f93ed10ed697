package storage

import (
	"errors"
	"strings"
	"unicode/utf8"
)

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

// StorableText reports whether s can be stored as text on every backend:
// PostgreSQL refuses NUL bytes and invalid UTF-8, which SQLite would keep.
// Input holding either is the sender's mistake, to be refused before it
// reaches the database.
func StorableText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
