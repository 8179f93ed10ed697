package policies

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSectionRegistry: Sections is the Policy struct, field for field, so
// that everything driven by it covers every section.
func TestSectionRegistry(t *testing.T) {
	sections := Sections()
	pt := reflect.TypeFor[Policy]()
	if len(sections) != pt.NumField() {
		t.Errorf("%d sections registered, Policy has %d fields", len(sections), pt.NumField())
	}
	for i := range pt.NumField() {
		f := pt.Field(i)
		var found []Section
		for _, s := range sections {
			if s.Key == jsonName(f) {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Errorf("Policy.%s (json %q): %d registry entries, want 1", f.Name, jsonName(f), len(found))
			continue
		}
		s := found[0]
		if toml, _, _ := strings.Cut(f.Tag.Get("toml"), ","); toml != s.Key {
			t.Errorf("Policy.%s: toml key %q, json key %q: config.toml and the API must agree", f.Name, toml, s.Key)
		}
		if s.Type != f.Type {
			t.Errorf("section %s: registered type %s, Policy.%s is %s", s.Key, s.Type, f.Name, f.Type)
		}
		// Field addresses this very field: setting it sets Policy.<f>.
		var p Policy
		s.Field(&p).Set(s.defaults())
		if want := reflect.ValueOf(Defaults()).Field(i).Interface(); !reflect.DeepEqual(reflect.ValueOf(p).Field(i).Interface(), want) {
			t.Errorf("section %s: Field does not address Policy.%s", s.Key, f.Name)
		}
	}
	if keys := SectionKeys(); len(slices.Compact(slices.Sorted(slices.Values(keys)))) != len(keys) {
		t.Errorf("section keys %q are not unique", keys)
	}
}

// sampleFor is a value of type t unlike def, the field's default, for
// every type a policy field may have. A type without a sample is one the
// config loader or the patch walker cannot be shown to handle: the test
// fails naming the field, and the type is added here once both do.
func sampleFor(t reflect.Type, def reflect.Value) (reflect.Value, bool) {
	pick := func(candidates ...any) (reflect.Value, bool) {
		for _, c := range candidates {
			if v := reflect.ValueOf(c); !reflect.DeepEqual(v.Interface(), def.Interface()) {
				return v, true
			}
		}
		return reflect.Value{}, false
	}
	switch t {
	case reflect.TypeFor[Duration]():
		return pick(Duration(97*time.Second), Duration(26*time.Hour))
	case reflect.TypeFor[CookieLifetime]():
		return pick(CookieLifetime{Browser: true}, CookieLifetime{Duration: Duration(97 * time.Second)})
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return reflect.Value{}, false // a text type of its own: give it candidates above
	}
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		v.SetString(def.String() + "sample")
	case reflect.Bool:
		v.SetBool(!def.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(def.Int() + 3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(def.Uint() + 3)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(def.Float() + 1.5)
	case reflect.Slice:
		e, ok := sampleFor(t.Elem(), reflect.New(t.Elem()).Elem())
		if !ok {
			return reflect.Value{}, false
		}
		v = reflect.MakeSlice(t, 0, def.Len()+1)
		for range def.Len() + 1 {
			v = reflect.Append(v, e)
		}
	case reflect.Map:
		k, okK := sampleFor(t.Key(), reflect.New(t.Key()).Elem())
		e, okE := sampleFor(t.Elem(), reflect.New(t.Elem()).Elem())
		if !okK || !okE {
			return reflect.Value{}, false
		}
		v = reflect.MakeMap(t)
		v.SetMapIndex(k, e)
	case reflect.Pointer:
		inner := reflect.New(t.Elem()).Elem()
		if !def.IsNil() {
			inner = def.Elem()
		}
		e, ok := sampleFor(t.Elem(), inner)
		if !ok {
			return reflect.Value{}, false
		}
		v = reflect.New(t.Elem())
		v.Elem().Set(e)
	default:
		return reflect.Value{}, false
	}
	return v, true
}

// Leaf is one settable key of the policy document with a sample value
// unlike its default. It is exported to this package's external tests
// (config_test.go), which check the config loader with the same samples.
type Leaf struct {
	Path   []string // JSON (and TOML) key path, section first
	Type   reflect.Type
	Sample reflect.Value
}

// Leaves lists every key of every section, failing t for any whose type
// has no sample.
func Leaves(t *testing.T) []Leaf {
	t.Helper()
	def := Defaults()
	var out []Leaf
	for _, s := range Sections() {
		for _, path := range leafPaths(s.Type, []string{s.Key}) {
			v := LeafValue(&def, path)
			sample, ok := sampleFor(v.Type(), v)
			if !ok {
				t.Errorf("%s: a policy key of type %s, which the config loader and the patch walker are not known to handle", joinPath(path...), v.Type())
				continue
			}
			out = append(out, Leaf{Path: path, Type: v.Type(), Sample: sample})
		}
	}
	return out
}

// LeafValue is the settable field of p at path.
func LeafValue(p *Policy, path []string) reflect.Value {
	s, _ := sectionByKey(path[0])
	v := s.Field(p)
	for _, name := range path[1:] {
		i, _ := fieldIndex(v.Type(), name)
		v = v.Field(i)
	}
	return v
}

// withEveryLeafSet is the defaults with every key set to its sample, so
// that every list and map holds something to alias.
func withEveryLeafSet(t *testing.T) Policy {
	p := Defaults()
	for _, l := range Leaves(t) {
		LeafValue(&p, l.Path).Set(l.Sample)
	}
	return p
}

// TestPatchWalkerHandlesEveryKey sets each key of each section through a
// merge patch and reads it back through every form the document takes:
// the policy, the stored overlay, the canonical JSON, and a null reset.
func TestPatchWalkerHandlesEveryKey(t *testing.T) {
	for _, l := range Leaves(t) {
		key := joinPath(l.Path...)
		t.Run(key, func(t *testing.T) {
			value, err := json.Marshal(l.Sample.Interface())
			if err != nil {
				t.Fatal(err)
			}
			nest := func(inner string) string {
				for i := len(l.Path) - 1; i >= 0; i-- {
					inner = `{"` + l.Path[i] + `":` + inner + `}`
				}
				return inner
			}
			patch := nest(string(value))
			want := Defaults()
			LeafValue(&want, l.Path).Set(l.Sample)

			got, err := ApplyPatch(Defaults(), []byte(patch))
			if err != nil || !reflect.DeepEqual(LeafValue(&got, l.Path).Interface(), l.Sample.Interface()) {
				t.Fatalf("ApplyPatch(%s) = %v, %v; want %v", patch, LeafValue(&got, l.Path), err, l.Sample)
			}
			if !bytes.Equal(got.Canonical(), want.Canonical()) {
				t.Errorf("ApplyPatch(%s) changed more than %s:\n got %s\nwant %s", patch, key, got.Canonical(), want.Canonical())
			}
			overlay, err := MergeOverlay(nil, []byte(patch), got)
			if err != nil {
				t.Fatalf("MergeOverlay: %v", err)
			}
			if back, err := Overlay(Defaults(), overlay); err != nil || !bytes.Equal(back.Canonical(), want.Canonical()) {
				t.Errorf("Overlay(MergeOverlay) = %s, %v; want %s", back.Canonical(), err, want.Canonical())
			}
			if back, err := ApplyPatch(Policy{}, got.Canonical()); err != nil || !bytes.Equal(back.Canonical(), want.Canonical()) {
				t.Errorf("ApplyPatch(Canonical) = %s, %v; want %s", back.Canonical(), err, want.Canonical())
			}
			reset := nest("null")
			if zero, err := ApplyPatch(got, []byte(reset)); err != nil || !LeafValue(&zero, l.Path).IsZero() {
				t.Errorf("ApplyPatch(%s) = %v, %v; want the zero value", reset, LeafValue(&zero, l.Path), err)
			}
		})
	}
}

// TestCloneEverySection: a clone equals the original, and changing any
// list, map or pointer target of the clone, in any section, leaves the
// original alone. Clone is what every function returning a policy relies
// on not to alias its caller's memory.
func TestCloneEverySection(t *testing.T) {
	orig := withEveryLeafSet(t)
	want := orig.Canonical()
	for _, s := range Sections() {
		c := orig.Clone()
		if !reflect.DeepEqual(s.Field(&c).Interface(), s.Field(&orig).Interface()) {
			t.Errorf("section %s: the clone differs from the original", s.Key)
		}
	}
	mutated := 0
	for _, l := range Leaves(t) {
		c := orig.Clone()
		if !mutate(LeafValue(&c, l.Path)) {
			continue
		}
		mutated++
		if got := orig.Canonical(); !bytes.Equal(got, want) {
			t.Errorf("%s: changing the clone changed the original:\n got %s\nwant %s", joinPath(l.Path...), got, want)
		}
		for _, f := range []func(Policy) Policy{
			func(p Policy) Policy { out, _ := ApplyPatch(p, []byte(`{}`)); return out },
			func(p Policy) Policy { out, _ := Overlay(p, nil); return out },
			func(p Policy) Policy {
				out, _ := PatchClient(p, ClientPolicy{Customized: SectionKeys(), Effective: p}, []byte(`{}`))
				return out.Effective
			},
		} {
			c := f(orig)
			mutate(LeafValue(&c, l.Path))
			if got := orig.Canonical(); !bytes.Equal(got, want) {
				t.Errorf("%s: a policy returned by this package aliases its input", joinPath(l.Path...))
			}
		}
	}
	if mutated == 0 {
		t.Error("no key holds memory to alias; the test checks nothing")
	}
}

// mutate changes what v refers to in place (a list element, a map entry,
// a pointer target) and reports whether v referred to anything.
func mutate(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() == 0 {
			return false
		}
		if !mutate(v.Index(0)) {
			next, _ := sampleFor(v.Type().Elem(), v.Index(0))
			v.Index(0).Set(next)
		}
		return true
	case reflect.Map:
		k, _ := sampleFor(v.Type().Key(), reflect.New(v.Type().Key()).Elem())
		e, _ := sampleFor(v.Type().Elem(), reflect.New(v.Type().Elem()).Elem())
		k, _ = sampleFor(k.Type(), k) // a key the sample does not have
		v.SetMapIndex(k, e)
		return true
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		if !mutate(v.Elem()) {
			next, _ := sampleFor(v.Type().Elem(), v.Elem())
			v.Elem().Set(next)
		}
		return true
	}
	return false
}

// TestCanonicalEmptyLists: an unset and an empty list encode alike in
// every section, so that comparing canonical forms does not see a change
// where there is none.
func TestCanonicalEmptyLists(t *testing.T) {
	for _, l := range Leaves(t) {
		if l.Type.Kind() != reflect.Slice && l.Type.Kind() != reflect.Map {
			continue
		}
		unset, empty := Defaults(), Defaults()
		LeafValue(&unset, l.Path).SetZero()
		if l.Type.Kind() == reflect.Slice {
			LeafValue(&empty, l.Path).Set(reflect.MakeSlice(l.Type, 0, 0))
		} else {
			LeafValue(&empty, l.Path).Set(reflect.MakeMap(l.Type))
		}
		if !bytes.Equal(unset.Canonical(), empty.Canonical()) {
			t.Errorf("%s: unset %s and empty %s encode differently", joinPath(l.Path...), unset.Canonical(), empty.Canonical())
		}
		if !LeafValue(&unset, l.Path).IsNil() {
			t.Errorf("%s: Canonical changed its receiver", joinPath(l.Path...))
		}
	}
}
