// Command mkindex turns a leaked-password list, one password a line in
// order of frequency, into the index that breach.Offline ships
// (breach/data/common.idx). Only truncated hashes reach the output, never a
// password. data/README.md says which list the shipped index comes from and
// how to rebuild it.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portcullis/portcullis/breach"
)

func main() {
	in := flag.String("in", "", "password list, one a line, most common first")
	out := flag.String("out", "", "index file to write")
	n := flag.Int("n", breach.OfflineEntries, "how many distinct passwords to take from the top of the list")
	flag.Parse()
	if *in == "" || *out == "" || *n <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*in, *out, *n, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkindex:", err)
		os.Exit(1)
	}
}

func run(inPath, outPath string, n int, report io.Writer) error {
	f, err := os.Open(inPath)
	if err != nil {
		return fmt.Errorf("open list: %w", err)
	}
	defer f.Close()

	// The digest of the whole input lets a reader check that a rebuild
	// started from the same file as data/README.md names.
	sum := sha256.New()
	passwords, err := topDistinct(io.TeeReader(f, sum), n)
	if err != nil {
		return fmt.Errorf("read %s: %w", inPath, err)
	}
	if len(passwords) < n {
		return fmt.Errorf("%s holds only %d distinct passwords, want %d", inPath, len(passwords), n)
	}
	if _, err := io.Copy(sum, f); err != nil {
		return fmt.Errorf("read %s: %w", inPath, err)
	}

	list := breach.NewList(passwords)
	data, err := list.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	if err := os.WriteFile(outPath, data, 0o644); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	fmt.Fprintf(report, "input sha256 %s\nentries %d\nkeys %d\nbytes %d\n",
		hex.EncodeToString(sum.Sum(nil)), list.Len(), list.Keys(), len(data))
	return nil
}

// topDistinct returns the first n distinct non-empty lines of r, stopping
// there so the rest of the list is not read into memory.
func topDistinct(r io.Reader, n int) ([]string, error) {
	sc := bufio.NewScanner(r)
	seen := make(map[string]struct{}, n)
	out := make([]string, 0, n)
	for len(out) < n && sc.Scan() {
		p := strings.TrimSuffix(sc.Text(), "\r")
		if p == "" {
			continue
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		out = append(out, p)
	}
	return out, sc.Err()
}
