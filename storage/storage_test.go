package storage_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

func TestSQLite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, now func() time.Time) *storage.Store {
		return storagetest.OpenWithClock(t, storagetest.SQLiteURL(t), now)
	})
}

func TestPostgres(t *testing.T) {
	// Probe once so an unreachable server skips (or, under CI=true, fails)
	// the whole suite with the reason, instead of every subtest.
	storagetest.RequirePostgres(t)
	storagetest.Run(t, func(t *testing.T, now func() time.Time) *storage.Store {
		return storagetest.OpenWithClock(t, storagetest.RequirePostgres(t), now)
	})
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	for _, url := range []string{
		"",
		"mysql://portcullis:hunter2@db.internal/portcullis",
		"file:portcullis.db",
		"sqlite:portcullis.db",
		"SQLITE://portcullis.db",
		"portcullis.db",
	} {
		t.Run(url, func(t *testing.T) {
			s, err := storage.Open(t.Context(), url, storage.Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", url)
			}
			if !strings.Contains(err.Error(), "sqlite://") || !strings.Contains(err.Error(), "postgres://") {
				t.Errorf("Open(%q) error %q does not name the schemes that work", url, err)
			}
			// The URL is echoed back to help the operator, but never its
			// password.
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Open(%q) error leaks the password: %q", url, err)
			}
		})
	}
}

// TestErrorTranslation checks that each backend's constraint errors reach
// callers as the same sentinels, which only holds while gorm's TranslateError
// and the SQLite dialector's mapping stay wired up.
func TestErrorTranslation(t *testing.T) {
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := storagetest.Open(t, b.URL)
			ctx := t.Context()
			if err := s.CreateClient(ctx, &storage.Client{ID: "app"}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, &storage.User{ID: "u1", Username: "alice"}); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for _, tc := range []struct {
				name string
				err  error
				want error
			}{
				{"duplicate primary key", s.CreateClient(ctx, &storage.Client{ID: "app"}), storage.ErrConflict},
				{"duplicate unique column", s.CreateUser(ctx, &storage.User{ID: "u2", Username: "alice"}), storage.ErrConflict},
				{"missing foreign key", s.CreateBrowserSession(ctx, &storage.BrowserSession{
					ID: "bs", UserID: "nobody", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour),
				}), storage.ErrNotFound},
				{"missing row", s.DeleteClient(ctx, "nobody"), storage.ErrNotFound},
			} {
				if !errors.Is(tc.err, tc.want) {
					t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
				}
			}
		})
	}
}

func TestSigningKeysNeedASecretBox(t *testing.T) {
	s, err := storage.Open(t.Context(), storagetest.SQLiteURL(t), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSigningKey(t.Context(), &storage.SigningKey{ID: "k1"}, []byte("{}")); err == nil {
		t.Error("CreateSigningKey without a secret box succeeded; the private key would be stored in clear")
	}
	if _, err := s.OpenSigningKey(&storage.SigningKey{ID: "k1", PrivateKey: "v1.x.y"}); err == nil {
		t.Error("OpenSigningKey without a secret box succeeded")
	}
}
