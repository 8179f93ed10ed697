package policies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/portcullis/portcullis/fielderr"
)

// rootField is the path of a problem with the patch as a whole. An empty
// path is the JSON Pointer spelling of "the document itself".
const rootField = ""

// ApplyPatch applies patch, an RFC 7396 JSON merge patch, to p and returns
// the result. The patch must be a JSON object; objects merge key by key,
// anything else (strings, numbers, arrays) replaces, and null resets a key to
// its zero value — for lifetimes and limits that is "unset/unlimited", for an
// object such as "admin" every key in it.
//
// Unlike a generic merge, the patch is checked against the document: an
// unknown key or a wrongly typed value is an error naming its full path
// ("token.acces_token_ttl: unknown key"), and every such problem is reported
// at once in a *fielderr.Error. On error p is returned unchanged: nothing is
// half-applied. ApplyPatch does not Validate the result; the caller decides
// what to do with warnings and nonsensical values. p is never modified.
func ApplyPatch(p Policy, patch []byte) (Policy, error) {
	var errs fielderr.Error
	obj, ok := rootObject(patch, &errs)
	if !ok {
		return p.clone(), errs.Err()
	}
	out := p.clone()
	patchSections(&out, obj, &errs)
	if err := errs.Err(); err != nil {
		return p.clone(), err
	}
	return out, nil
}

// Overlay layers a stored overlay (see MergeOverlay) onto base, the policy
// the configuration gives. An empty or null overlay means admins have set
// nothing. The overlay is applied as a merge patch, so a stored key that no
// longer exists is reported like any unknown key.
func Overlay(base Policy, overlay json.RawMessage) (Policy, error) {
	if isEmptyDocument(overlay) {
		return base.clone(), nil
	}
	p, err := ApplyPatch(base, overlay)
	if err != nil {
		return base.clone(), fmt.Errorf("apply policy overlay: %w", err)
	}
	return p, nil
}

// MergeOverlay returns the overlay to store after patch was applied with the
// result result. The overlay holds only what admins have set, so that a
// later change to config.toml still shows through for every key they left
// alone. Every leaf the patch touched is recorded with its value in result —
// a null in the patch thus becomes an explicit zero that overrides the base —
// and the leaves of overlay the patch did not touch are kept. Arrays are
// leaves, as RFC 7396 replaces them whole.
//
// It holds that Overlay(base, MergeOverlay(ov, patch, r)) equals r when
// r = ApplyPatch(Overlay(base, ov), patch), whatever base is.
func MergeOverlay(overlay json.RawMessage, patch []byte, result Policy) (json.RawMessage, error) {
	doc := map[string]any{}
	if !isEmptyDocument(overlay) {
		dec := json.NewDecoder(bytes.NewReader(overlay))
		// Numbers are kept as written, so that a stored overlay survives
		// any number of merges unchanged.
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("decode stored policy overlay: %w", err)
		}
	}

	var errs fielderr.Error
	obj, ok := rootObject(patch, &errs)
	var leaves [][]string
	if ok {
		touchedSections(obj, &leaves, &errs)
	}
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("merge policy patch into overlay: %w", err)
	}

	for _, leaf := range leaves {
		s, _ := sectionByKey(leaf[0])
		v := s.Field(&result)
		for _, name := range leaf[1:] {
			i, _ := fieldIndex(v.Type(), name)
			v = v.Field(i)
		}
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return nil, fmt.Errorf("encode policy key %s: %w", joinPath(leaf...), err)
		}
		setPath(doc, leaf, json.RawMessage(b))
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode policy overlay: %w", err)
	}
	return out, nil
}

// rootObject decodes the top level of a patch, which must be an object: a
// merge patch that is a scalar or null would replace the whole document.
func rootObject(patch []byte, errs *fielderr.Error) (map[string]json.RawMessage, bool) {
	if !json.Valid(patch) {
		var v any
		err := json.Unmarshal(patch, &v)
		errs.Add(rootField, "not valid JSON: %v", err)
		return nil, false
	}
	obj, ok := decodeObject(patch)
	if !ok {
		errs.Add(rootField, "must be a JSON object")
		return nil, false
	}
	return obj, true
}

func decodeObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	if isNull(raw) {
		return nil, false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, false
	}
	return obj, true
}

// patchSections merges the top level of a patch, whose keys are sections.
func patchSections(dst *Policy, obj map[string]json.RawMessage, errs *fielderr.Error) {
	for _, name := range sortedKeys(obj) {
		s, ok := sectionByKey(name)
		if !ok {
			errs.Add(name, "unknown key: the policy's sections are %s", sectionList())
			continue
		}
		patchValue(s.Field(dst), obj[name], name, errs)
	}
}

// patchObject merges obj into the struct dst, which must be addressable.
// Keys are visited in sorted order so that problems come out in a stable
// order.
func patchObject(dst reflect.Value, obj map[string]json.RawMessage, path string, errs *fielderr.Error) {
	for _, name := range sortedKeys(obj) {
		key := joinPath(path, name)
		i, ok := fieldIndex(dst.Type(), name)
		if !ok {
			errs.Add(key, "unknown key")
			continue
		}
		patchValue(dst.Field(i), obj[name], key, errs)
	}
}

func patchValue(dst reflect.Value, raw json.RawMessage, path string, errs *fielderr.Error) {
	if isNull(raw) {
		dst.SetZero()
		return
	}
	if isObjectType(dst.Type()) {
		obj, ok := decodeObject(raw)
		if !ok {
			errs.Add(path, "must be an object")
			return
		}
		patchObject(dst, obj, path, errs)
		return
	}
	// The field is only written when the whole value decoded, so a list
	// with one bad element leaves the old list in place.
	if v, ok := decodeLeaf(dst.Type(), raw, path, errs); ok {
		dst.Set(v)
	}
}

// decodeLeaf decodes raw into a fresh value of type t, reporting problems
// under path in words a person editing the document understands, rather than
// encoding/json's Go type names.
func decodeLeaf(t reflect.Type, raw json.RawMessage, path string, errs *fielderr.Error) (reflect.Value, bool) {
	ptr := reflect.New(t)
	if u, ok := ptr.Interface().(json.Unmarshaler); ok {
		if err := u.UnmarshalJSON(raw); err != nil {
			errs.Add(path, "%v", err)
			return reflect.Value{}, false
		}
		return ptr.Elem(), true
	}
	if t.Kind() != reflect.Slice {
		if err := json.Unmarshal(raw, ptr.Interface()); err != nil {
			errs.Add(path, "must be %s", wantedJSON(t))
			return reflect.Value{}, false
		}
		return ptr.Elem(), true
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		errs.Add(path, "must be %s", wantedJSON(t))
		return reflect.Value{}, false
	}
	out := reflect.MakeSlice(t, 0, len(elems))
	allOK := true
	for i, e := range elems {
		key := indexKey(path, i)
		if isNull(e) {
			// encoding/json would quietly decode null as "".
			errs.Add(key, "must be %s, not null", wantedJSON(t.Elem()))
			allOK = false
			continue
		}
		v, ok := decodeLeaf(t.Elem(), e, key, errs)
		if !ok {
			allOK = false
			continue
		}
		out = reflect.Append(out, v)
	}
	return out, allOK
}

func wantedJSON(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "an array of " + plural(wantedJSON(t.Elem()))
	default:
		return "a " + t.String()
	}
}

func plural(a string) string {
	switch a {
	case "a string":
		return "strings"
	case "an integer":
		return "integers"
	default:
		return a
	}
}

// touchedSections lists the leaf paths the top level of a patch sets.
func touchedSections(obj map[string]json.RawMessage, out *[][]string, errs *fielderr.Error) {
	for _, name := range sortedKeys(obj) {
		s, ok := sectionByKey(name)
		if !ok {
			errs.Add(name, "unknown key: the policy's sections are %s", sectionList())
			continue
		}
		touchedValue(s.Type, obj[name], []string{name}, out, errs)
	}
}

// touchedObject lists the leaf paths a patch object sets. A null on an
// object touches every leaf beneath it, since it resets them all.
func touchedObject(t reflect.Type, obj map[string]json.RawMessage, path []string, out *[][]string, errs *fielderr.Error) {
	for _, name := range sortedKeys(obj) {
		key := append(slices.Clone(path), name)
		i, ok := fieldIndex(t, name)
		if !ok {
			errs.Add(joinPath(key...), "unknown key")
			continue
		}
		touchedValue(t.Field(i).Type, obj[name], key, out, errs)
	}
}

func touchedValue(t reflect.Type, raw json.RawMessage, path []string, out *[][]string, errs *fielderr.Error) {
	if !isObjectType(t) {
		*out = append(*out, path)
		return
	}
	if isNull(raw) {
		for i := range t.NumField() {
			if name := jsonName(t.Field(i)); name != "" {
				touchedValue(t.Field(i).Type, raw, append(slices.Clone(path), name), out, errs)
			}
		}
		return
	}
	obj, ok := decodeObject(raw)
	if !ok {
		errs.Add(joinPath(path...), "must be an object")
		return
	}
	touchedObject(t, obj, path, out, errs)
}

// setPath stores v at path in the nested map doc, creating objects on the
// way and replacing anything in the way that is not one.
func setPath(doc map[string]any, path []string, v any) {
	for _, name := range path[:len(path)-1] {
		sub, ok := doc[name].(map[string]any)
		if !ok {
			sub = map[string]any{}
			doc[name] = sub
		}
		doc = sub
	}
	doc[path[len(path)-1]] = v
}

// isObjectType reports whether t is a JSON object of further keys rather
// than a value that decodes itself (Duration, CookieLifetime).
func isObjectType(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]())
}

func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		// Exact match: encoding/json would also accept "Access_Token_TTL",
		// which the API should not.
		if f := t.Field(i); f.IsExported() && jsonName(f) == name {
			return i, true
		}
	}
	return 0, false
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func sortedKeys(obj map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// joinPath builds a dotted key path, skipping empty segments so that the
// root's children have no leading dot.
func joinPath(parts ...string) string {
	var b bytes.Buffer
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func indexKey(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isEmptyDocument(raw []byte) bool {
	return len(bytes.TrimSpace(raw)) == 0 || isNull(raw)
}
