// Package storagetest gives tests a real database and runs the storage
// conformance suite.
//
// Every backend the server supports is exercised the same way: SQLite always
// (a fresh file per call), PostgreSQL whenever it is reachable (a fresh
// schema per call, dropped when the test ends). Under CI=true an unreachable
// PostgreSQL fails the test instead of skipping it, so CI cannot go green
// having tested only SQLite.
//
// Other packages' end-to-end tests use Backends and Open to run against the
// same databases; storage's own tests call Run.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/portcullis/portcullis/storage"
)

// SystemSecret is the fixed system secret behind the SecretBox of every
// store Open returns, so a test can build a second box that opens what the
// store sealed. It protects nothing real.
const SystemSecret = "portcullis-storagetest-system-secret"

// DefaultPostgresURL is used when PORTCULLIS_TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Backend is one database to run tests against.
type Backend struct {
	Name string // "sqlite" or "postgres"
	URL  string // as accepted by storage.Open
}

// Backends returns SQLite and, when it is reachable, PostgreSQL, each with a
// fresh database. An unreachable PostgreSQL is logged (and fatal under
// CI=true) rather than silently left out.
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{{Name: storage.DialectSQLite, URL: SQLiteURL(t)}}
	if u, ok := PostgresURL(t); ok {
		out = append(out, Backend{Name: storage.DialectPostgres, URL: u})
	} else {
		t.Logf("storagetest: skipping the postgres backend (see above)")
	}
	return out
}

// SQLiteURL returns the URL of a new, empty SQLite database file in
// t.TempDir().
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "portcullis.db")
}

// PostgresURL returns the URL of a new, empty schema in the test PostgreSQL
// database (PORTCULLIS_TEST_DATABASE_URL, default DefaultPostgresURL). The
// schema is dropped when t ends. When PostgreSQL is unreachable it logs why
// and returns false, or fails t when CI=true.
func PostgresURL(t testing.TB) (string, bool) {
	t.Helper()
	base := os.Getenv("PORTCULLIS_TEST_DATABASE_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// A malformed setting is a mistake to fix, never a reason to skip.
		t.Fatalf("storagetest: PORTCULLIS_TEST_DATABASE_URL must be a postgres:// URL, got %q", base)
	}

	schema := "t_" + randomHex(t, 8)
	if err := execPostgres(t.Context(), base, `CREATE SCHEMA "`+schema+`"`); err != nil {
		msg := fmt.Sprintf("PostgreSQL not reachable at %s: %v; set PORTCULLIS_TEST_DATABASE_URL", u.Redacted(), err)
		if os.Getenv("CI") == "true" {
			t.Fatalf("storagetest: %s (CI=true: PostgreSQL is required)", msg)
		}
		t.Logf("storagetest: %s", msg)
		return "", false
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := execPostgres(ctx, base, `DROP SCHEMA "`+schema+`" CASCADE`); err != nil {
			t.Errorf("storagetest: drop schema %s: %v", schema, err)
		}
	})

	// pgx sends query parameters it does not know as run-time parameters in
	// the start-up message, so every pooled connection starts in the schema.
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), true
}

// RequirePostgres returns PostgresURL's URL, or skips t with the reason when
// PostgreSQL is unreachable (fails it under CI=true).
func RequirePostgres(t testing.TB) string {
	t.Helper()
	u, ok := PostgresURL(t)
	if !ok {
		t.Skip("storagetest: PostgreSQL not reachable; set PORTCULLIS_TEST_DATABASE_URL (reason logged above)")
	}
	return u
}

// Open opens and migrates the database at url with the real clock, closing
// it when t ends.
func Open(t testing.TB, url string) *storage.Store {
	t.Helper()
	return OpenWithClock(t, url, time.Now)
}

// OpenWithClock is Open with an injected clock (storage.Options.Now), for
// tests that move time.
func OpenWithClock(t testing.TB, url string, now func() time.Time) *storage.Store {
	t.Helper()
	box, err := storage.NewSecretBox([]string{SystemSecret})
	if err != nil {
		t.Fatalf("storagetest: secret box: %v", err)
	}
	s, err := storage.Open(t.Context(), url, storage.Options{Box: box, Now: now})
	if err != nil {
		t.Fatalf("storagetest: open %s: %v", redact(url), err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storagetest: close %s: %v", redact(url), err)
		}
	})
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("storagetest: migrate %s: %v", redact(url), err)
	}
	return s
}

// execPostgres runs one statement on its own short-lived connection, so that
// creating and dropping schemas never shares a pool with the store under
// test. gorm's automatic ping is off because it ignores ctx: the deadline
// must bound the connect to an unreachable server too.
func execPostgres(ctx context.Context, dsn, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard, DisableAutomaticPing: true})
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	_, err = sqlDB.ExecContext(ctx, stmt)
	return err
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("storagetest: random: %v", err)
	}
	return hex.EncodeToString(b)
}

func redact(raw string) string {
	if strings.HasPrefix(raw, "sqlite://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable url>"
	}
	return u.Redacted()
}
