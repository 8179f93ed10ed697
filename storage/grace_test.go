package storage

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRefreshGraceIsSealed reads the raw column: the kept token response
// must not be stored in the clear.
func TestRefreshGraceIsSealed(t *testing.T) {
	ctx := context.Background()
	box, err := NewSecretBox([]string{"grace-test-secret-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "g.db"), Options{Box: box})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRefreshGrace(ctx, "sig", "app", []byte(`{"access_token":"pc_at_secret"}`), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := s.db.Raw("SELECT response FROM refresh_grace WHERE signature = ?", "sig").Scan(&raw).Error; err != nil {
		t.Fatal(err)
	}
	if raw == "" || strings.Contains(raw, "pc_at_secret") {
		t.Fatalf("kept response stored as %q", raw)
	}
}
