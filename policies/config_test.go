package policies_test

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
)

// TestConfigLoaderReadsEveryKey sets each key of each policy section in
// config.toml and in the environment, and demands that the loader reads it:
// the configuration then gives exactly the policy with that key changed,
// or exactly the problems Validate finds in that policy — never a problem
// of its own, such as a type it cannot read. A policy key of a new type
// thus fails here until the loader handles it.
func TestConfigLoaderReadsEveryKey(t *testing.T) {
	for _, l := range policies.Leaves(t) {
		key := strings.Join(l.Path, ".")
		t.Run(key, func(t *testing.T) {
			want := policies.Defaults()
			policies.LeafValue(&want, l.Path).Set(l.Sample)
			_, verr := want.Validate()
			wantProblems := problemsOf(t, verr)

			file := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(file, []byte(key+" = "+tomlValue(t, l.Sample)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := "PORTCULLIS_" + strings.ToUpper(strings.Join(l.Path, "_")) + "=" + envValue(t, l.Sample)
			for _, src := range []struct {
				name    string
				path    string
				environ []string
			}{
				{"config.toml", file, nil},
				{"environment", "", []string{env}},
			} {
				c, err := config.Load(src.path, src.environ)
				var cerr *config.Error
				switch {
				case err == nil && len(wantProblems) == 0:
					if got := c.Policy().Canonical(); !bytes.Equal(got, want.Canonical()) {
						t.Errorf("%s: Policy() =\n%s\nwant\n%s", src.name, got, want.Canonical())
					}
				case errors.As(err, &cerr):
					var got []string
					for _, f := range cerr.Fields {
						got = append(got, f.String())
					}
					slices.Sort(got)
					if !slices.Equal(got, wantProblems) {
						t.Errorf("%s: Load problems\n%q\nwant the policy's own\n%q", src.name, got, wantProblems)
					}
				default:
					t.Errorf("%s: Load = %v, want the problems %q", src.name, err, wantProblems)
				}
			}
		})
	}
}

func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	fe, ok := fielderr.As(err)
	if !ok {
		t.Fatalf("Validate: %v", err)
	}
	var out []string
	for _, f := range fe.Fields {
		out = append(out, f.Field+": "+f.Message)
	}
	slices.Sort(out)
	return out
}

func marshalText(t *testing.T, v reflect.Value) (string, bool) {
	m, ok := v.Interface().(encoding.TextMarshaler)
	if !ok {
		return "", false
	}
	b, err := m.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// tomlValue writes v as a TOML value, as a person would in config.toml.
func tomlValue(t *testing.T, v reflect.Value) string {
	if s, ok := marshalText(t, v); ok {
		return strconv.Quote(s)
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	case reflect.Slice:
		elems := make([]string, v.Len())
		for i := range v.Len() {
			elems[i] = tomlValue(t, v.Index(i))
		}
		return "[" + strings.Join(elems, ", ") + "]"
	case reflect.Map:
		var entries []string
		iter := v.MapRange()
		for iter.Next() {
			entries = append(entries, strconv.Quote(iter.Key().String())+" = "+tomlValue(t, iter.Value()))
		}
		return "{ " + strings.Join(entries, ", ") + " }"
	case reflect.Pointer:
		return tomlValue(t, v.Elem())
	}
	t.Fatalf("no TOML form for %s", v.Type())
	return ""
}

// envValue writes v as a PORTCULLIS_* variable's value: lists
// comma-separated, tables as JSON objects.
func envValue(t *testing.T, v reflect.Value) string {
	if s, ok := marshalText(t, v); ok {
		return s
	}
	switch v.Kind() {
	case reflect.Slice:
		elems := make([]string, v.Len())
		for i := range v.Len() {
			elems[i] = envValue(t, v.Index(i))
		}
		return strings.Join(elems, ",")
	case reflect.Map:
		b, err := json.Marshal(v.Interface())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case reflect.Pointer:
		return envValue(t, v.Elem())
	}
	s := tomlValue(t, v)
	if v.Kind() == reflect.String {
		s = v.String()
	}
	return s
}
