// Package storage owns Portcullis's persistent state: the gorm models, the
// versioned migrations for SQLite (embedded default, pure Go) and PostgreSQL,
// the fosite storage interfaces, and the encryption of secrets at rest.
//
// Usernames are written and looked up only through NormalizeUsername, so
// that look-alike spellings (decomposed accents, fullwidth letters, case)
// are one account and invisible or direction-changing characters never
// reach a row.
//
// Single-use objects (authorization codes, refresh tokens) are consumed with
// a conditional UPDATE inside the caller's transaction, so that exactly one of
// any number of concurrent redemptions succeeds on either backend.
//
// It must not import oauth, authn, admin, server or cmd: those sit above it.
package storage
