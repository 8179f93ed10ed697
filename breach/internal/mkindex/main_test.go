package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/breach"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "list.txt")
	// Duplicates, blank lines and CRLF are skipped; n counts distinct
	// passwords, and the tail past n stays out.
	list := "alpha\r\nBravo\n\nalpha\ncharlie\ndelta\necho\n"
	if err := os.WriteFile(in, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "list.idx")

	var report strings.Builder
	if err := run(in, out, 3, &report); err != nil {
		t.Fatalf("run: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := breach.ParseList(data)
	if err != nil {
		t.Fatalf("ParseList: %v", err)
	}

	tests := []struct {
		password string
		want     bool
	}{
		{"alpha", true},
		{"Bravo", true},
		{"bravo", true},
		{"charlie", true},
		{"delta", false},
		{"echo", false},
		{"alpha\r", false},
	}
	for _, tt := range tests {
		if got.Contains(tt.password) != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.password, !tt.want, tt.want)
		}
	}
	if got.Len() != 3 {
		t.Errorf("Len() = %d, want 3", got.Len())
	}
	if !strings.Contains(report.String(), "entries 3\nkeys 4\n") {
		t.Errorf("report = %q, want entries 3 and keys 4", report.String())
	}
}

func TestRunTooShort(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(in, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(in, filepath.Join(dir, "out.idx"), 3, io.Discard); err == nil {
		t.Error("run succeeded on a list shorter than n")
	}
}
