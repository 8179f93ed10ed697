package storage

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations
var migrations embed.FS

// Migrate applies every pending migration. It is idempotent and safe to run
// from several instances at once on PostgreSQL (goose takes a session lock).
func (s *Store) Migrate(ctx context.Context) (applied int, err error) {
	p, err := s.migrator(ctx)
	if err != nil {
		return 0, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("migrate %s: %w", s.dialect, err)
	}
	return len(res), nil
}

// MigrationVersion reports the schema version the database is at.
func (s *Store) MigrationVersion(ctx context.Context) (int64, error) {
	p, err := s.migrator(ctx)
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read migration version: %w", err)
	}
	return v, nil
}

func (s *Store) migrator(ctx context.Context) (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{}
	if s.dialect == DialectPostgres {
		dialect = goose.DialectPostgres
		// The lock guards one schema's migrations. goose's default lock id
		// is one per database, so stores in different schemas (parallel
		// test packages, deployments sharing a database) would wait on each
		// other, in goose's 5-second retry steps.
		var schema sql.NullString
		if err := s.sqlDB.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		h := fnv.New64a()
		h.Write([]byte("portcullis/migrations/" + schema.String))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64())))
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(migrations, "migrations/"+s.dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", s.dialect, err)
	}
	p, err := goose.NewProvider(dialect, s.sqlDB, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", s.dialect, err)
	}
	return p, nil
}
