package policies

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPure keeps the package what its doc promises: only the standard
// library, fielderr and ipnets, no I/O, and no clock of its own.
func TestPure(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			switch {
			case path == "github.com/portcullis/portcullis/fielderr":
			// ipnets is the leaf that parses address ranges, and net/netip
			// is address arithmetic; neither does I/O.
			case path == "github.com/portcullis/portcullis/ipnets", path == "net/netip":
			// norm is Unicode normalization tables and arithmetic: the
			// password rules count characters of the NFC form.
			case path == "golang.org/x/text/unicode/norm":
			case strings.Contains(first, "."):
				t.Errorf("%s imports %s: only the standard library, fielderr, ipnets and x/text/unicode/norm are allowed", name, path)
			case path == "os" || path == "io" || path == "net" || strings.HasPrefix(path, "net/") ||
				strings.HasPrefix(path, "io/") || path == "log" || strings.HasPrefix(path, "log/") || path == "syscall":
				t.Errorf("%s imports %s: the package does no I/O", name, path)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && (sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") {
				t.Errorf("%s calls time.%s: now is always an argument", name, sel.Sel.Name)
			}
			return true
		})
	}
}
