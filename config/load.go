package config

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/portcullis/portcullis/policies"
)

const (
	envPrefix = "PORTCULLIS_"
	// configFileEnv names the configuration file rather than a key; the
	// command line reads it, and Load must not reject it as a typo.
	configFileEnv = "PORTCULLIS_CONFIG"
)

// Load builds a Config from the TOML file at path (none when path is ""),
// then the PORTCULLIS_* variables in environ ("KEY=value" strings as from
// os.Environ), then defaults for whatever neither set, and validates it.
// Any problem, from any step, is reported in a single *Error. With a file,
// relative SQLite and secret file paths not set by the environment are made
// absolute against the file's folder (see resolvePaths).
func Load(path string, environ []string) (*Config, error) {
	var p problems
	keys, err := leafKeys(reflect.TypeFor[Config]())
	if err != nil {
		// A malformed Config type is a programming error, but it is still
		// reported through *Error so callers have one error shape.
		p.add("", "config: %v", err)
		return nil, p.err()
	}

	var c Config
	root := reflect.ValueOf(&c).Elem()
	// set records which leaf keys the file or environment gave a value, so
	// that defaults fill only what was absent: an explicit "0s" must reach
	// Validate and be refused, not be silently replaced by the default.
	set := make(map[string]bool)

	if path != "" {
		decodeFile(root, path, set, &p)
	}
	fromEnv := applyEnv(root, environ, keys, set, &p)
	applyDefaults(root, keys, set)
	c.normalize()

	if err := c.Validate(); err != nil {
		var verr *Error
		if !errors.As(err, &verr) {
			return nil, fmt.Errorf("validate config: %w", err)
		}
		p = append(p, verr.Fields...)
	}
	// Validate judged the paths as written; only then are they made
	// absolute, since the folder of the file may hold characters (such as
	// "#") that a written path may not.
	if path != "" && len(p) == 0 {
		c.resolvePaths(filepath.Dir(path), fromEnv, &p)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// normalize puts values into their canonical form after all sources have
// been applied.
func (c *Config) normalize() {
	// Issuer comparison in OIDC is exact string comparison, so
	// "https://id.example/" and "https://id.example" must not both exist.
	c.Server.Issuer = strings.TrimRight(c.Server.Issuer, "/")
}

// resolvePaths makes the relative file paths of a configuration file
// relative to the folder that file is in, not to the working directory:
// otherwise "portcullis --config /etc/portcullis/config.toml clients list"
// run from the home folder would open (and create) a different, empty
// database than the one serve uses. That holds for the defaults too (the
// database beside the file). A value from the environment stays relative to
// the working directory: it was typed in the shell that runs the command,
// where a relative path means the current folder. Without a file there is
// no other folder to resolve against.
func (c *Config) resolvePaths(dir string, fromEnv map[string]bool, p *problems) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		p.add("", "resolve relative paths against the folder of the configuration file %s: %v", dir, err)
		return
	}
	if path := c.Database.SQLitePath(); !fromEnv["database.url"] && isRelativeFile(path) {
		c.Database.URL = sqliteScheme + filepath.Join(abs, path)
	}
	if path := c.Secrets.File; !fromEnv["secrets.file"] && isRelativeFile(path) {
		c.Secrets.File = filepath.Join(abs, path)
	}
}

func isRelativeFile(path string) bool {
	return path != "" && !filepath.IsAbs(path)
}

// leaf is one settable key: a field that is not itself a [section].
type leaf struct {
	key   string // dotted TOML path, e.g. "server.listen"
	env   string // e.g. "PORTCULLIS_SERVER_LISTEN"
	index []int  // for reflect.Value.FieldByIndex from the Config root
	typ   reflect.Type
}

// leafKeys lists every settable key of t by walking the toml tags. It is
// recomputed per Load rather than cached, because caching would need package
// state and Load runs once per process.
func leafKeys(t reflect.Type) ([]leaf, error) {
	var out []leaf
	if err := collectLeaves(t, nil, nil, &out); err != nil {
		return nil, err
	}
	seen := make(map[string]string, len(out))
	for _, l := range out {
		if other, dup := seen[l.env]; dup {
			return nil, fmt.Errorf("keys %s and %s both map to %s", other, l.key, l.env)
		}
		seen[l.env] = l.key
	}
	return out, nil
}

func collectLeaves(t reflect.Type, path []string, index []int, out *[]leaf) error {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		if isInline(f) {
			if err := collectLeaves(f.Type, path, idx, out); err != nil {
				return err
			}
			continue
		}
		name := tomlName(f)
		if name == "-" {
			continue
		}
		if name == "" {
			return fmt.Errorf("field %s.%s has no toml tag", t.Name(), f.Name)
		}
		p := append(append([]string(nil), path...), name)
		if isSection(f.Type) {
			if err := collectLeaves(f.Type, p, idx, out); err != nil {
				return err
			}
			continue
		}
		*out = append(*out, leaf{
			key:   strings.Join(p, "."),
			env:   envPrefix + strings.ToUpper(strings.Join(p, "_")),
			index: idx,
			typ:   f.Type,
		})
	}
	return nil
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// isInline reports whether f is an embedded struct tagged `toml:",inline"`,
// whose keys belong to the enclosing table. That is how a section extends a
// type owned elsewhere (config.Session adds cookie_name to the session
// policy) without a nested table.
func isInline(f reflect.StructField) bool {
	name, opts, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return f.Anonymous && name == "" && isSection(f.Type) && slices.Contains(strings.Split(opts, ","), "inline")
}

// tableFields maps the key names of the struct type t to their field index
// paths, looking through inline fields.
func tableFields(t reflect.Type) map[string][]int {
	fields := make(map[string][]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if isInline(f) {
			for name, sub := range tableFields(f.Type) {
				fields[name] = append([]int{i}, sub...)
			}
			continue
		}
		if name := tomlName(f); name != "" && name != "-" {
			fields[name] = []int{i}
		}
	}
	return fields
}

// isText reports whether values of t are written as a single string that t
// parses itself (durations, the cookie lifetime).
func isText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// isSection reports whether t is a table of further keys rather than a value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !isText(t)
}

// decodeFile reads and decodes the TOML file at path into root.
//
// go-toml decodes into a generic map here, and the map is then assigned to
// the struct by matchTable, instead of go-toml's strict struct decoding.
// The strict decoder stops at the first wrongly typed value (losing any
// unknown keys found so far) and hands integers to TextUnmarshalers as
// text, so "ttl = 5" would surface as a duration error without a key. The
// generic map keeps TOML's types, which lets every unknown key and every
// type error be reported at once, each with its path.
func decodeFile(root reflect.Value, path string, set map[string]bool, p *problems) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		p.add(path, "cannot read configuration file: %v", err)
		return
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			p.add(fmt.Sprintf("%s:%d:%d", path, row, col), "%s", strings.TrimPrefix(de.Error(), "toml: "))
			return
		}
		p.add(path, "cannot parse TOML: %v", err)
		return
	}
	matchTable(root, doc, "", set, p)
}

// matchTable assigns the keys of table to the fields of the struct dst.
func matchTable(dst reflect.Value, table map[string]any, prefix string, set map[string]bool, p *problems) {
	fields := tableFields(dst.Type())
	names := make([]string, 0, len(table))
	for k := range table {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		key := joinKey(prefix, name)
		raw := table[name]
		idx, ok := fields[name]
		if !ok {
			p.add(key, "unknown key")
			continue
		}
		fv := dst.FieldByIndex(idx)
		if isSection(fv.Type()) {
			sub, ok := raw.(map[string]any)
			if !ok {
				p.add(key, "must be a table, not %s", tomlKind(raw))
				continue
			}
			matchTable(fv, sub, key, set, p)
			continue
		}
		if nv, ok := fromTOML(fv.Type(), raw, key, p); ok {
			fv.Set(nv)
			set[key] = true
		}
	}
}

// joinKey appends name to a dotted key path, quoting it as TOML would when
// it is not a bare key, so that the path stays unambiguous.
func joinKey(prefix, name string) string {
	if !isBareKey(name) {
		name = strconv.Quote(name)
	}
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// fromTOML converts a value from the generic TOML map into a fresh value of
// type t, reporting problems under key. The destination field is only
// written when the whole value converted, so a half-valid list is not kept.
func fromTOML(t reflect.Type, raw any, key string, p *problems) (reflect.Value, bool) {
	if isText(t) {
		s, ok := raw.(string)
		if !ok {
			p.add(key, "must be %s, not %s", wantedValue(t), tomlKind(raw))
			return reflect.Value{}, false
		}
		nv := reflect.New(t)
		if err := nv.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			p.add(key, "%v", err)
			return reflect.Value{}, false
		}
		return nv.Elem(), true
	}
	nv := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			p.add(key, "must be a string, not %s", tomlKind(raw))
			return reflect.Value{}, false
		}
		nv.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			p.add(key, "must be a boolean (true or false), not %s", tomlKind(raw))
			return reflect.Value{}, false
		}
		nv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := raw.(int64)
		if !ok {
			p.add(key, "must be an integer, not %s", tomlKind(raw))
			return reflect.Value{}, false
		}
		if nv.OverflowInt(n) {
			p.add(key, "%d is out of range", n)
			return reflect.Value{}, false
		}
		nv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := raw.(int64)
		if !ok {
			p.add(key, "must be an integer, not %s", tomlKind(raw))
			return reflect.Value{}, false
		}
		if n < 0 || nv.OverflowUint(uint64(n)) {
			p.add(key, "%d is out of range (0 to %d)", n, maxUint(t))
			return reflect.Value{}, false
		}
		nv.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		// A person writes "min_score = 1" as readily as "1.0".
		var f float64
		switch n := raw.(type) {
		case float64:
			f = n
		case int64:
			f = float64(n)
		default:
			p.add(key, "must be a number, not %s", tomlKind(raw))
			return reflect.Value{}, false
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			p.add(key, "must be a finite number (got %v)", f)
			return reflect.Value{}, false
		}
		nv.SetFloat(f)
	case reflect.Pointer:
		ev, ok := fromTOML(t.Elem(), raw, key, p)
		if !ok {
			return reflect.Value{}, false
		}
		ptr := reflect.New(t.Elem())
		ptr.Elem().Set(ev)
		return ptr, true
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			p.add(key, "must be an array, not %s", tomlKind(raw))
			return reflect.Value{}, false
		}
		// Never nil, so that "[]" in a file and the default compare equal.
		nv = reflect.MakeSlice(t, 0, len(arr))
		allOK := true
		for i, e := range arr {
			ev, ok := fromTOML(t.Elem(), e, fmt.Sprintf("%s[%d]", key, i), p)
			if !ok {
				allOK = false
				continue
			}
			nv = reflect.Append(nv, ev)
		}
		if !allOK {
			return reflect.Value{}, false
		}
	case reflect.Map:
		// A table whose keys are data (scope names), not configuration
		// keys: any name is accepted here and judged by Validate.
		tbl, ok := raw.(map[string]any)
		if !ok {
			p.add(key, "must be a table, not %s", tomlKind(raw))
			return reflect.Value{}, false
		}
		if t.Key().Kind() != reflect.String {
			p.add(key, "unsupported configuration field type %s", t)
			return reflect.Value{}, false
		}
		nv = reflect.MakeMapWithSize(t, len(tbl))
		allOK := true
		for _, name := range slices.Sorted(maps.Keys(tbl)) {
			ev, ok := fromTOML(t.Elem(), tbl[name], joinKey(key, name), p)
			if !ok {
				allOK = false
				continue
			}
			nv.SetMapIndex(reflect.ValueOf(name).Convert(t.Key()), ev)
		}
		if !allOK {
			return reflect.Value{}, false
		}
	default:
		p.add(key, "unsupported configuration field type %s", t)
		return reflect.Value{}, false
	}
	return nv, true
}

// fromString converts an environment variable value into a fresh value of
// type t. Lists are comma-separated; blank items are dropped so that a
// trailing comma or "" (an empty list) does what one expects.
func fromString(t reflect.Type, s string) (reflect.Value, error) {
	if isText(t) {
		nv := reflect.New(t)
		if err := nv.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return reflect.Value{}, err
		}
		return nv.Elem(), nil
	}
	nv := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		nv.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("must be true or false, not %q", s)
		}
		nv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			return reflect.Value{}, fmt.Errorf("must be an integer in range, not %q", s)
		}
		nv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, t.Bits())
		if err != nil {
			return reflect.Value{}, fmt.Errorf("must be an integer from 0 to %d, not %q", maxUint(t), s)
		}
		nv.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return reflect.Value{}, fmt.Errorf("must be a finite number such as 0.5, not %q", s)
		}
		nv.SetFloat(f)
	case reflect.Pointer:
		ev, err := fromString(t.Elem(), s)
		if err != nil {
			return reflect.Value{}, err
		}
		ptr := reflect.New(t.Elem())
		ptr.Elem().Set(ev)
		return ptr, nil
	case reflect.Slice:
		nv = reflect.MakeSlice(t, 0, strings.Count(s, ",")+1)
		i := 0
		for item := range strings.SplitSeq(s, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			ev, err := fromString(t.Elem(), item)
			if err != nil {
				return reflect.Value{}, fmt.Errorf("item %d: %w", i, err)
			}
			nv = reflect.Append(nv, ev)
			i++
		}
	case reflect.Map:
		// A table cannot be written as a comma-separated list without
		// quoting rules of its own (descriptions contain commas), so the
		// environment gives it as a JSON object; "" is an empty table.
		nv = reflect.MakeMap(t)
		if strings.TrimSpace(s) == "" {
			return nv, nil
		}
		ptr := reflect.New(t)
		if err := json.Unmarshal([]byte(s), ptr.Interface()); err != nil {
			return reflect.Value{}, fmt.Errorf("must be a JSON object of strings such as {\"orders:read\":\"See your orders\"}: %v", err)
		}
		if !ptr.Elem().IsNil() {
			nv = ptr.Elem()
		}
	default:
		return reflect.Value{}, fmt.Errorf("unsupported configuration field type %s", t)
	}
	return nv, nil
}

func maxUint(t reflect.Type) uint64 {
	return ^uint64(0) >> (64 - t.Bits())
}

// wantedValue describes what a text-parsed type accepts, for type errors.
func wantedValue(t reflect.Type) string {
	switch reflect.New(t).Interface().(type) {
	case *Duration, *policies.Duration:
		return `a duration string such as "15m"`
	case *policies.CookieLifetime:
		return `"browser" or a duration string such as "336h"`
	default:
		return "a string"
	}
}

// tomlKind names the TOML type of a value decoded into the generic map.
func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return "a date/time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// applyEnv overrides keys from PORTCULLIS_* variables in environ and
// returns the keys it set.
func applyEnv(root reflect.Value, environ []string, keys []leaf, set map[string]bool, p *problems) map[string]bool {
	fromEnv := make(map[string]bool)
	byEnv := make(map[string]leaf, len(keys))
	for _, l := range keys {
		byEnv[l.env] = l
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || name == configFileEnv {
			continue
		}
		l, ok := byEnv[name]
		if !ok {
			p.add(name, "environment variable matches no configuration key")
			continue
		}
		nv, err := fromString(l.typ, value)
		if err != nil {
			p.add(l.key, "from %s: %v", name, err)
			continue
		}
		root.FieldByIndex(l.index).Set(nv)
		set[l.key] = true
		fromEnv[l.key] = true
	}
	return fromEnv
}

// applyDefaults copies the Default value of every key that was not set.
// Taking them from Default keeps a single source of truth for defaults.
func applyDefaults(root reflect.Value, keys []leaf, set map[string]bool) {
	def := reflect.ValueOf(Default()).Elem()
	for _, l := range keys {
		if !set[l.key] {
			root.FieldByIndex(l.index).Set(def.FieldByIndex(l.index))
		}
	}
}
