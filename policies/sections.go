package policies

import (
	"reflect"
	"strconv"
	"strings"
)

// Section is one section of the policy document ("token", "session").
//
// Sections is the one list of them: defaults, validation, cloning, merge
// patches, per-application customization, the config.toml tables and the
// admin API's schema all follow it, so that a new section is one entry there
// plus its struct, and tests (not a reviewer's memory) catch a place that
// does not know it.
type Section struct {
	// Key names the section everywhere: its JSON and TOML key, the first
	// segment of its field paths ("token.access_token_ttl") and its name in
	// an application's customized_sections.
	Key string
	// Type is the section's struct type.
	Type reflect.Type

	field    func(p *Policy) reflect.Value
	defaults func() reflect.Value
	validate func(p Policy, v *validator)
}

// Sections lists the sections of the policy document, in document order.
// It returns a fresh slice each time, so callers may keep or reorder it.
func Sections() []Section {
	return []Section{
		newSection("token", func(p *Policy) *Token { return &p.Token }, defaultToken, Token.validate),
		newSection("session", func(p *Policy) *Session { return &p.Session }, defaultSession, Session.validate),
		newSection("password", func(p *Policy) *Password { return &p.Password }, defaultPassword, Password.validate),
		newSection("lockout", func(p *Policy) *Lockout { return &p.Lockout }, defaultLockout, Lockout.validate),
		newSection("ip", func(p *Policy) *IP { return &p.IP }, defaultIP, IP.validate),
		newSection("captcha", func(p *Policy) *Captcha { return &p.Captcha }, defaultCaptcha, Captcha.validate),
		newSection("registration", func(p *Policy) *Registration { return &p.Registration }, defaultRegistration, Registration.validate),
		newSection("mfa", func(p *Policy) *MFA { return &p.MFA }, defaultMFA, MFA.validate),
		newSection("device_flow", func(p *Policy) *DeviceFlow { return &p.DeviceFlow }, defaultDeviceFlow, DeviceFlow.validate),
	}
}

// newSection builds a registry entry from typed functions, so that an entry
// cannot pair one section's field with another section's defaults or rules.
func newSection[T any](key string, field func(*Policy) *T, defaults func() T, validate func(T, *validator)) Section {
	return Section{
		Key:      key,
		Type:     reflect.TypeFor[T](),
		field:    func(p *Policy) reflect.Value { return reflect.ValueOf(field(p)).Elem() },
		defaults: func() reflect.Value { return reflect.ValueOf(defaults()) },
		validate: func(p Policy, v *validator) { validate(*field(&p), v) },
	}
}

// Field is the section within p. It is addressable: setting it sets the
// section of *p. The config loader uses it to read a [section] table into
// the policy without a hand-kept list of sections.
func (s Section) Field(p *Policy) reflect.Value { return s.field(p) }

// SectionKeys names every section, in document order.
func SectionKeys() []string {
	sections := Sections()
	keys := make([]string, len(sections))
	for i, s := range sections {
		keys[i] = s.Key
	}
	return keys
}

func sectionByKey(key string) (Section, bool) {
	for _, s := range Sections() {
		if s.Key == key {
			return s, true
		}
	}
	return Section{}, false
}

// sectionList is the section names for messages: `"token" and "session"`.
func sectionList() string {
	keys := SectionKeys()
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = strconv.Quote(k)
	}
	if len(quoted) == 1 {
		return quoted[0]
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1]
}

// deepCopy returns a copy of v that shares no slice, map or pointer target
// with it, whatever v's type, so that cloning keeps up with new fields and
// sections without being told about them. Unexported fields are copied
// shallowly; policy types have none that hold references.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(deepCopy(iter.Key()), deepCopy(iter.Value()))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(deepCopy(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Array:
		out := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	default:
		return v
	}
}

// emptyNotNil replaces every nil slice and map reachable from the settable
// v with an empty one, so that the canonical form does not tell "unset" and
// "empty" apart: they mean the same in a policy.
func emptyNotNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
		for i := range v.Len() {
			emptyNotNil(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			emptyNotNil(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				emptyNotNil(v.Field(i))
			}
		}
	}
}
