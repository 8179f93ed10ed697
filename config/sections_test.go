package config

import (
	"reflect"
	"testing"

	"github.com/portcullis/portcullis/policies"
)

// TestEveryPolicySectionHasATable: each policy section is read from the
// config.toml table of its name, and Default holds its defaults there.
func TestEveryPolicySectionHasATable(t *testing.T) {
	c := Default()
	defaults := policies.Defaults()
	for _, s := range policies.Sections() {
		f, ok := c.policySection(s)
		if !ok {
			t.Errorf("policy section %q has no [%s] table in Config", s.Key, s.Key)
			continue
		}
		if !reflect.DeepEqual(f.Interface(), s.Field(&defaults).Interface()) {
			t.Errorf("Default().%s = %+v, want the policy defaults %+v", s.Key, f.Interface(), s.Field(&defaults).Interface())
		}
		// Policy reads the section from that very table.
		f.SetZero()
		p := c.Policy()
		if !s.Field(&p).IsZero() {
			t.Errorf("Policy() does not read section %q from its table", s.Key)
		}
	}
}
