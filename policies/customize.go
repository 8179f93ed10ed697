package policies

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/portcullis/portcullis/fielderr"
)

// The members of an application's patch that switch customization rather
// than change rules (see PatchClient).
const (
	KeyCustomized         = "customized"
	KeyCustomizedSections = "customized_sections"
)

// ClientPolicy is an application's rules. It customizes some sections
// (perhaps none): for those it keeps its own values, which start as a
// snapshot of the global section when it customizes it; every other section
// is the global one, live, including sections added in later versions.
//
// Global IP block rules and an account's lock state are not per-application
// rules: whatever an application customizes, they apply to it.
type ClientPolicy struct {
	// Customized lists the sections the application keeps its own, in
	// document order; empty when it follows the global policy throughout.
	Customized []string
	// Effective is the policy that judges the application's requests.
	Effective Policy
}

// ResolveClient is the rules of an application whose stored document is doc
// (see ClientPolicy.Document), under the global policy global. An empty or
// null document customizes nothing.
//
// The document holds the customized sections whole. Each is laid over the
// global section as a merge patch, so a key that a later version adds to a
// section the application customized starts from the global value rather
// than from a built-in default, and is frozen the next time the application
// changes that section. Documents stored before sections could be
// customized one by one hold every section there was then, which reads as
// "all of those customized": what they meant.
func ResolveClient(global Policy, doc json.RawMessage) (ClientPolicy, error) {
	out := ClientPolicy{Customized: []string{}, Effective: global.clone()}
	if isEmptyDocument(doc) {
		return out, nil
	}
	obj, ok := decodeObject(doc)
	if !ok {
		return ClientPolicy{}, fmt.Errorf("stored application policy is not a JSON object")
	}
	var errs fielderr.Error
	for _, name := range sortedKeys(obj) {
		if _, ok := sectionByKey(name); !ok {
			errs.Add(name, "unknown key: the policy's sections are %s", sectionList())
		}
	}
	if err := errs.Err(); err != nil {
		return ClientPolicy{}, fmt.Errorf("read stored application policy: %w", err)
	}
	p, err := ApplyPatch(global, doc)
	if err != nil {
		return ClientPolicy{}, fmt.Errorf("read stored application policy: %w", err)
	}
	for _, key := range SectionKeys() {
		if _, ok := obj[key]; ok {
			out.Customized = append(out.Customized, key)
		}
	}
	out.Effective = p
	return out, nil
}

// Document is what to store for c: the canonical form of the sections it
// customizes, and only those, as one JSON object keyed by section. It is nil
// when c customizes nothing, since there is nothing to store then.
func (c ClientPolicy) Document() json.RawMessage {
	if len(c.Customized) == 0 {
		return nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(c.Effective.Canonical(), &all); err != nil {
		// Canonical is this package's own encoding of a struct.
		panic("policies: decode canonical policy: " + err.Error())
	}
	own := make(map[string]json.RawMessage, len(c.Customized))
	for _, key := range c.Customized {
		own[key] = all[key]
	}
	b, err := json.Marshal(own)
	if err != nil {
		panic("policies: encode application policy: " + err.Error())
	}
	return b
}

// IsCustomized reports whether the application customizes any section.
func (c ClientPolicy) IsCustomized() bool { return len(c.Customized) > 0 }

// PatchClient applies an administrator's patch of an application's rules to
// current, its rules under global, the current global policy. The patch is
// a JSON object with, all optional:
//
//   - "customized": true customizes every section, false returns every
//     section to the global policy;
//   - "customized_sections": the exact list of sections to customize; a
//     section left out returns to the global policy;
//   - section members ("token": {…}) as in a merge patch of the global
//     policy (see ApplyPatch), which change the application's own values
//     and customize their section if it was not already.
//
// A section becoming customized starts as a snapshot of global's; one that
// stays customized keeps its values. Giving both switches, or changing a
// section the switch returns to the global policy, is refused. Every problem
// is reported at once in a *fielderr.Error naming its field, and then
// nothing is returned. The result is not validated; the caller does that on
// its Effective policy.
func PatchClient(global Policy, current ClientPolicy, patch []byte) (ClientPolicy, error) {
	var errs fielderr.Error
	obj, ok := rootObject(patch, &errs)
	if !ok {
		return ClientPolicy{}, errs.Err()
	}

	target, switchKey := slices.Clone(current.Customized), ""
	if raw, ok := obj[KeyCustomized]; ok {
		delete(obj, KeyCustomized)
		var on bool
		if err := json.Unmarshal(raw, &on); err != nil || isNull(raw) {
			errs.Add(KeyCustomized, "must be true or false")
		} else {
			target, switchKey = nil, KeyCustomized
			if on {
				target = SectionKeys()
			}
		}
	}
	if raw, ok := obj[KeyCustomizedSections]; ok {
		delete(obj, KeyCustomizedSections)
		if switchKey != "" {
			errs.Add(KeyCustomizedSections, "give %s or %s, not both", KeyCustomized, KeyCustomizedSections)
		} else if list, ok := sectionNames(raw, &errs); ok {
			target, switchKey = list, KeyCustomizedSections
		}
	}

	// What remains is a merge patch of the rules; its sections become
	// customized unless a switch says otherwise.
	for _, key := range SectionKeys() {
		if _, changed := obj[key]; !changed || slices.Contains(target, key) {
			continue
		}
		switch switchKey {
		case KeyCustomized:
			errs.Add(KeyCustomized, "must not be false in a patch that changes the application's own rules (%s)", key)
		case KeyCustomizedSections:
			errs.Add(KeyCustomizedSections, "does not list %q, which the patch changes; list it or leave the change out", key)
		default:
			target = append(target, key)
		}
	}

	next := ClientPolicy{Customized: []string{}, Effective: global.clone()}
	for _, s := range Sections() {
		if !slices.Contains(target, s.Key) {
			continue
		}
		next.Customized = append(next.Customized, s.Key)
		if slices.Contains(current.Customized, s.Key) {
			s.Field(&next.Effective).Set(deepCopy(s.Field(&current.Effective)))
		}
	}
	if len(obj) > 0 {
		rules, err := json.Marshal(obj)
		if err != nil {
			return ClientPolicy{}, fmt.Errorf("re-encode policy patch: %w", err)
		}
		p, err := ApplyPatch(next.Effective, rules)
		if fe, ok := fielderr.As(err); ok {
			errs.Fields = append(errs.Fields, fe.Fields...)
		} else if err != nil {
			return ClientPolicy{}, err
		}
		next.Effective = p
	}
	if err := errs.Err(); err != nil {
		return ClientPolicy{}, err
	}
	return next, nil
}

// sectionNames decodes the list of customized_sections: known sections,
// each once, in any order.
func sectionNames(raw json.RawMessage, errs *fielderr.Error) ([]string, bool) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || isNull(raw) {
		errs.Add(KeyCustomizedSections, "must be an array of section names (%s)", sectionList())
		return nil, false
	}
	var names []string
	allOK := true
	for i, e := range elems {
		key := indexKey(KeyCustomizedSections, i)
		var name string
		if err := json.Unmarshal(e, &name); err != nil || isNull(e) {
			errs.Add(key, "must be a section name (%s)", sectionList())
			allOK = false
			continue
		}
		if _, ok := sectionByKey(name); !ok {
			errs.Add(key, "unknown section %q: the policy's sections are %s", name, sectionList())
			allOK = false
			continue
		}
		if slices.Contains(names, name) {
			errs.Add(key, "%q is listed twice", name)
			allOK = false
			continue
		}
		names = append(names, name)
	}
	return names, allOK
}
