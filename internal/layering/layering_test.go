// Package layering holds the test that keeps the dependency direction of
// ../shared DESIGN's package map: a package may import only those below it.
package layering

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/portcullis/portcullis/"

// allowed lists, for each package, the project packages its non-test code
// may import. A package missing here fails the test, so a new package has to
// take its place in the order deliberately.
var allowed = map[string][]string{
	"fielderr":                {},
	"hashing":                 {},
	"ipnets":                  {},
	"reqinfo":                 {},
	"breach":                  {},
	"mfa":                     {},
	"internal/browsertest":    {},
	"breach/internal/mkindex": {"breach"},
	"templates":               {},
	"notify":                  {"templates"},
	"policies":                {"fielderr", "ipnets"},
	"config":                  {"policies", "fielderr", "ipnets"},
	"bench":                   {},
	"storage":                 {"fielderr", "hashing"},
	"storage/storagetest":     {"storage"},
	"audit":                   {"storage", "fielderr", "reqinfo"},
	"policystore":             {"policies", "storage", "audit", "fielderr"},
	"captcha":                 {"policies", "storage", "templates"},
	"oauth":                   {"policies", "storage", "audit", "hashing", "fielderr", "templates", "reqinfo"},
	"authn":                   {"policies", "storage", "audit", "hashing", "fielderr", "templates", "reqinfo", "captcha", "mfa"},
	"admin":                   {"oauth", "authn", "policystore", "policies", "audit", "storage", "hashing", "fielderr", "reqinfo"},
	"server":                  {"admin", "authn", "oauth", "policystore", "policies", "audit", "storage", "hashing", "fielderr", "templates", "config", "ipnets", "reqinfo", "captcha", "notify", "breach", "mfa"},
	"cmd/portcullis":          {"server", "admin", "authn", "oauth", "policystore", "policies", "audit", "storage", "hashing", "fielderr", "config", "notify"},
	"cmd/portcullis-bench":    {"bench"},
	"internal/layering":       {},
}

func TestImportsFollowTheLayering(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		seen[pkg] = true
		ok, known := allowed[pkg]
		if !known {
			t.Errorf("package %s is not in the layering table; add it where it belongs", pkg)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if !strings.HasPrefix(p, module) {
				continue
			}
			dep := strings.TrimPrefix(p, module)
			if !slices.Contains(ok, dep) {
				t.Errorf("%s imports %s, which it must not (allowed: %v)", filepath.Join(pkg, filepath.Base(path)), dep, ok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range allowed {
		if !seen[pkg] && pkg != "internal/layering" {
			t.Errorf("layering table names %s, which has no Go files", pkg)
		}
	}
}
