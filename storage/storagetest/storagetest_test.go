package storagetest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

func TestSQLiteURLIsFresh(t *testing.T) {
	a, b := storagetest.SQLiteURL(t), storagetest.SQLiteURL(t)
	if a == b || !strings.HasPrefix(a, "sqlite://") {
		t.Fatalf("SQLiteURL = %q, %q; want two distinct sqlite:// URLs", a, b)
	}
	checkIsolated(t, a, b)
}

func TestPostgresURLIsolatesBySchema(t *testing.T) {
	first := storagetest.RequirePostgres(t)
	second := storagetest.RequirePostgres(t)
	checkIsolated(t, first, second)

	// The tables must really live in the schema named in search_path, not
	// in public with two stores that happen to agree.
	schema := searchPath(t, first)
	var n int64
	query(t, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'clients'", []any{schema}, &n)
	if n != 1 {
		t.Errorf("schema %s has %d clients tables, want 1", schema, n)
	}
	var id string
	query(t, fmt.Sprintf(`SELECT id FROM %q.clients`, schema), nil, &id)
	if id != "app" {
		t.Errorf("%s.clients holds %q, want the client created through the store", schema, id)
	}
}

func TestPostgresURLDropsSchemaOnCleanup(t *testing.T) {
	storagetest.RequirePostgres(t)
	var schema string
	t.Run("use", func(t *testing.T) {
		u := storagetest.RequirePostgres(t)
		schema = searchPath(t, u)
		storagetest.Open(t, u)
	})
	var n int64
	query(t, "SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1", []any{schema}, &n)
	if n != 0 {
		t.Errorf("schema %s still exists after the test that made it ended", schema)
	}
}

func TestUnreachablePostgres(t *testing.T) {
	// Port 1 on loopback refuses at once: nothing listens there.
	t.Setenv("PORTCULLIS_TEST_DATABASE_URL", "postgres://postgres:pw@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	for _, tc := range []struct {
		ci        string
		wantFatal bool
	}{
		{"", false},
		{"false", false},
		{"true", true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			var (
				u  string
				ok bool
			)
			r.run(func() { u, ok = storagetest.PostgresURL(r) })
			if ok || u != "" {
				t.Fatalf("PostgresURL = %q, %v; want false", u, ok)
			}
			if got := r.fatal != ""; got != tc.wantFatal {
				t.Fatalf("fatal = %q, want fatal: %v", r.fatal, tc.wantFatal)
			}
			msg := r.fatal + r.logs.String()
			for _, want := range []string{"PostgreSQL not reachable at", "127.0.0.1:1", "PORTCULLIS_TEST_DATABASE_URL"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not mention %q", msg, want)
				}
			}
			if strings.Contains(msg, ":pw@") {
				t.Errorf("message leaks the password: %q", msg)
			}

			if tc.wantFatal {
				return
			}
			// Backends keeps SQLite and says it left PostgreSQL out.
			r = &recorder{TB: t}
			var backends []storagetest.Backend
			r.run(func() { backends = storagetest.Backends(r) })
			if len(backends) != 1 || backends[0].Name != "sqlite" {
				t.Errorf("Backends = %+v, want only sqlite", backends)
			}
			if !strings.Contains(r.logs.String(), "skipping the postgres backend") {
				t.Errorf("Backends did not log that it skipped postgres; logs: %q", r.logs.String())
			}
		})
	}
}

func TestBackends(t *testing.T) {
	backends := storagetest.Backends(t)
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			if s := storagetest.Open(t, b.URL); s.Dialect() != b.Name {
				t.Errorf("backend %q opened as %q", b.Name, s.Dialect())
			}
		})
	}
}

// checkIsolated opens both URLs and checks a write through one is invisible
// through the other.
func checkIsolated(t *testing.T, a, b string) {
	t.Helper()
	sa, sb := storagetest.Open(t, a), storagetest.Open(t, b)
	if err := sa.CreateClient(t.Context(), &storage.Client{ID: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Client(t.Context(), "app"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("client created in %s is visible in %s (err = %v)", a, b, err)
	}
}

func searchPath(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sp := u.Query().Get("search_path")
	if !strings.HasPrefix(sp, "t_") {
		t.Fatalf("URL %s has search_path %q, want a t_ schema", u.Redacted(), sp)
	}
	return sp
}

// query runs a statement against the base test database, outside any
// schema the helpers made.
func query(t *testing.T, q string, args []any, dest ...any) {
	t.Helper()
	base := storagetest.DefaultPostgresURL
	if v := os.Getenv("PORTCULLIS_TEST_DATABASE_URL"); v != "" {
		base = v
	}
	db, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := sqlDB.QueryRowContext(ctx, q, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// recorder stands in for a testing.TB so the test can watch PostgresURL
// fail or log without failing itself.
type recorder struct {
	testing.TB
	fatal string
	logs  strings.Builder
}

func (r *recorder) Helper() {}

func (r *recorder) Logf(format string, args ...any) {
	fmt.Fprintf(&r.logs, format+"\n", args...)
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skip(args ...any) {
	r.fatal = "skip: " + fmt.Sprint(args...)
	runtime.Goexit()
}

// run calls fn on its own goroutine, as Fatalf ends it with Goexit like
// the real testing.T does.
func (r *recorder) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}
