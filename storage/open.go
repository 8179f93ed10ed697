package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	sqlitelib "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Options tune Open. The zero value is usable.
type Options struct {
	// MaxOpenConns bounds the connection pool (default 16).
	MaxOpenConns int
	// Box encrypts secrets at rest (signing keys). Required for key storage.
	Box *SecretBox
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// ClientCacheTTL bounds how long a client read from the database is
	// reused (default 1s; negative disables the cache).
	ClientCacheTTL time.Duration
	// AccountExpiry says when an account created at created, with the
	// administrator's expiry date override, expires (zero: never). Tokens
	// of an expired or disabled account stop working. nil means accounts
	// expire only by their administrator's date.
	AccountExpiry func(created time.Time, override *time.Time) time.Time
}

// Store is the gorm-backed implementation of every storage interface
// Portcullis uses. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string
	box     *SecretBox
	now     func() time.Time
	clients *clientCache
	// tokenQuery is getToken's statement in the dialect's placeholder style.
	tokenQuery    string
	accountExpiry func(created time.Time, override *time.Time) time.Time
}

// Dialects.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Open connects to the database named by url: "sqlite://path" (a path
// relative to the working directory, or "sqlite:///abs/path") or
// "postgres://…". It does not migrate; call Migrate.
func Open(ctx context.Context, dbURL string, opts Options) (*Store, error) {
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 16
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClientCacheTTL == 0 {
		opts.ClientCacheTTL = time.Second
	}
	var (
		dialector gorm.Dialector
		sqlDB     *sql.DB
		dialect   string
		err       error
	)
	switch {
	case strings.HasPrefix(dbURL, "sqlite://"):
		dialect = DialectSQLite
		path := strings.TrimPrefix(dbURL, "sqlite://")
		if err := createSQLiteFile(path); err != nil {
			return nil, err
		}
		sqlDB, err = sql.Open("sqlite", sqliteDSN(path))
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		dialector = sqliteDialector{sqlite.New(sqlite.Config{Conn: sqlDB})}
	case strings.HasPrefix(dbURL, "postgres://"), strings.HasPrefix(dbURL, "postgresql://"):
		dialect = DialectPostgres
		dialector = postgres.New(postgres.Config{DSN: dbURL})
	default:
		return nil, fmt.Errorf("open database: unsupported url scheme in %q (want sqlite:// or postgres://)", redactURL(dbURL))
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return opts.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dialect, err)
	}
	if sqlDB == nil {
		if sqlDB, err = db.DB(); err != nil {
			return nil, fmt.Errorf("open %s: %w", dialect, err)
		}
	}
	sqlDB.SetMaxOpenConns(opts.MaxOpenConns)
	sqlDB.SetMaxIdleConns(opts.MaxOpenConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s: %w", dialect, err)
	}
	expiry := opts.AccountExpiry
	if expiry == nil {
		expiry = func(_ time.Time, override *time.Time) time.Time {
			if override == nil {
				return time.Time{}
			}
			return *override
		}
	}
	return &Store{db: db, sqlDB: sqlDB, dialect: dialect, box: opts.Box, now: opts.Now,
		clients: newClientCache(opts.ClientCacheTTL, opts.Now), tokenQuery: tokenQuery(dialect), accountExpiry: expiry}, nil
}

// createSQLiteFile creates the database file, empty and readable by its
// owner only, when it does not exist yet: SQLite would create it 0644 (less
// the umask), world-readable, and it holds password hashes, token
// signatures and the encrypted signing keys. SQLite gives its -wal and -shm
// files the mode of the database file, so they follow. An existing file is
// left as it is: its mode is the operator's choice (a group that runs
// backups, say), and changing it behind their back would surprise more
// than it protects.
func createSQLiteFile(path string) error {
	if path == "" || path == ":memory:" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("create sqlite database: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create sqlite database %s: %w", path, err)
	}
	return nil
}

// sqliteDSN adds the pragmas that make SQLite behave under concurrent
// requests: BEGIN IMMEDIATE for every transaction (otherwise read-then-write
// transactions fail at once with SQLITE_BUSY whatever the timeout), WAL, a
// busy timeout, and foreign keys.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_time_format", "sqlite")
	// In a "file:" URI SQLite percent-decodes the path and ends it at "?"
	// or "#", so those (and "%" itself) are escaped: a folder named
	// "a#b" is still a folder.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + q.Encode()
}

// Close releases the connection pool.
func (s *Store) Close() error { return s.sqlDB.Close() }

// Dialect reports "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks the database answers; used by the readiness probe.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.dialect, err)
	}
	return nil
}

// sqliteDialector maps modernc.org/sqlite errors to gorm's, which
// gorm.io/driver/sqlite only does for the cgo driver.
type sqliteDialector struct{ gorm.Dialector }

func (d sqliteDialector) Translate(err error) error {
	var se *sqlitelib.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return gorm.ErrDuplicatedKey
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return gorm.ErrForeignKeyViolated
		}
	}
	return err
}

// mapErr turns gorm's translated errors into this package's sentinels.
func mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%s: %w", op, ErrConflict)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return fmt.Errorf("%s: %w: referenced row missing", op, ErrNotFound)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable>"
	}
	return u.Redacted()
}

type txKey struct{}

// conn returns the transaction carried by ctx, if any, else the pool.
func (s *Store) conn(ctx context.Context) *gorm.DB {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx
	}
	return s.db.WithContext(ctx)
}

// BeginTX implements fosite's storage.Transactional.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return ctx, fmt.Errorf("begin transaction: %w: %w", ErrUnavailable, tx.Error)
	}
	return context.WithValue(ctx, txKey{}, tx), nil
}

// Commit implements fosite's storage.Transactional.
func (s *Store) Commit(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*gorm.DB)
	if !ok {
		return errors.New("commit: no transaction in context")
	}
	if err := tx.Commit().Error; err != nil {
		return fmt.Errorf("commit: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// Rollback implements fosite's storage.Transactional.
func (s *Store) Rollback(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*gorm.DB)
	if !ok {
		return errors.New("rollback: no transaction in context")
	}
	if err := tx.Rollback().Error; err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// InTx runs fn in one transaction: committed when fn returns nil, rolled back
// otherwise. Inside a transaction already (BeginTX, an outer InTx) fn joins
// it and the caller commits or rolls back: a second transaction would commit
// independently of the caller's, and on SQLite wait for the write lock the
// caller holds until the busy timeout.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return fn(ctx)
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(context.WithValue(ctx, txKey{}, tx))
	})
}

func tokenQuery(dialect string) string {
	// The token's user comes in the same statement: a token of an account
	// that was disabled or has expired stops working at once, with no
	// sweep to wait for. Tokens without a user (client credentials) have
	// no row to join.
	q := "SELECT t.request_id, t.client_id, t.active, t.requested_at, t.scopes, t.granted_scopes, t.audience, t.granted_audience, " +
		"t.form, t.session, u.id, u.disabled, u.created_at, u.expires_at " +
		"FROM oauth_tokens t LEFT JOIN users u ON t.subject <> '' AND u.id = t.subject WHERE t.kind = ? AND t.signature = ?"
	if dialect == DialectPostgres {
		q = strings.Replace(strings.Replace(q, "?", "$1", 1), "?", "$2", 1)
	}
	return q
}
