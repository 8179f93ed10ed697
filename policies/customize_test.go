package policies

import (
	"bytes"
	"slices"
	"testing"
)

func TestPatchClient(t *testing.T) {
	global := Defaults()
	global.Token.AccessTokenTTL = d("10m")
	global.Session.MaxConcurrent = 5

	own := Defaults()
	own.Token.AccessTokenTTL = d("20m")
	own.Session.MaxConcurrent = 1
	none := ClientPolicy{Customized: []string{}, Effective: global}
	// mix is the policy with the token section of tok and every other
	// section of rest.
	mix := func(tok, rest Policy) Policy { rest.Token = tok.Token; return rest }
	tokenOnly := ClientPolicy{Customized: []string{"token"}, Effective: mix(own, global)}
	all := ClientPolicy{Customized: SectionKeys(), Effective: own}
	withID := func(p Policy, id string) Policy { p.Token.IDTokenTTL = d(id); return p }

	tests := []struct {
		name     string
		current  ClientPolicy
		patch    string
		sections []string
		want     Policy
		fields   []string // of the error instead
	}{
		{name: "empty patch changes nothing", current: tokenOnly, patch: `{}`,
			sections: []string{"token"}, want: tokenOnly.Effective},
		{name: "changing a section customizes it from the global one", current: none, patch: `{"token":{"id_token_ttl":"20m"}}`,
			sections: []string{"token"}, want: withID(global, "20m")},
		{name: "changing a customized section keeps its values", current: tokenOnly, patch: `{"token":{"id_token_ttl":"20m"}}`,
			sections: []string{"token"}, want: withID(tokenOnly.Effective, "20m")},
		{name: "changing a second section adds it", current: tokenOnly, patch: `{"session":{"idle_timeout":"1h"}}`,
			sections: []string{"token", "session"},
			want:     func() Policy { p := tokenOnly.Effective; p.Session.IdleTimeout = d("1h"); return p }()},
		{name: "customized true snapshots the rest", current: tokenOnly, patch: `{"customized":true}`,
			sections: SectionKeys(), want: mix(own, global)},
		{name: "customized true with rules", current: none, patch: `{"customized":true,"session":{"max_concurrent":2}}`,
			sections: SectionKeys(),
			want:     func() Policy { p := global; p.Session.MaxConcurrent = 2; return p }()},
		{name: "customized false drops every section", current: all, patch: `{"customized":false}`,
			sections: []string{}, want: global},
		{name: "customized_sections is the exact list, in document order", current: tokenOnly, patch: `{"customized_sections":["session"]}`,
			sections: []string{"session"}, want: global},
		{name: "customized_sections keeps the own and snapshots the new", current: tokenOnly, patch: `{"customized_sections":["session","token"]}`,
			sections: []string{"token", "session"}, want: mix(own, global)},
		{name: "customized_sections with a listed section's rules", current: all, patch: `{"customized_sections":["token"],"token":{"id_token_ttl":"2h"}}`,
			sections: []string{"token"}, want: withID(mix(own, global), "2h")},
		{name: "an empty customized_sections", current: all, patch: `{"customized_sections":[]}`,
			sections: []string{}, want: global},

		{name: "not an object", current: all, patch: `[]`, fields: []string{""}},
		{name: "customized not a boolean", current: all, patch: `{"customized":1}`, fields: []string{"customized"}},
		{name: "customized false with rules", current: all, patch: `{"customized":false,"token":{"id_token_ttl":"2h"}}`, fields: []string{"customized"}},
		{name: "both switches", current: none, patch: `{"customized":true,"customized_sections":[]}`, fields: []string{"customized_sections"}},
		{name: "customized_sections not a list", current: none, patch: `{"customized_sections":{"token":true}}`, fields: []string{"customized_sections"}},
		{name: "customized_sections with a bad entry", current: none, patch: `{"customized_sections":["token",null,"tokens","token"]}`,
			fields: []string{"customized_sections[1]", "customized_sections[2]", "customized_sections[3]"}},
		{name: "rules of a section left out", current: all, patch: `{"customized_sections":["token"],"session":{"max_concurrent":2}}`,
			fields: []string{"customized_sections"}},
		{name: "every problem at once", current: none, patch: `{"customized":"yes","customized_sections":[5],"token":{"format":1},"tokens":{}}`,
			fields: []string{"customized", "customized_sections[0]", "token.format", "tokens"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.current.Effective.Canonical()
			got, err := PatchClient(global, tt.current, []byte(tt.patch))
			if tt.fields != nil {
				fields, ok := errorsAs(err)
				var names []string
				for _, f := range fields {
					names = append(names, f.Field)
				}
				if !ok || !slices.Equal(names, tt.fields) {
					t.Fatalf("err = %v, want fields %q", err, tt.fields)
				}
				return
			}
			if err != nil {
				t.Fatalf("PatchClient: %v", err)
			}
			if !slices.Equal(got.Customized, tt.sections) || got.Customized == nil {
				t.Errorf("Customized = %q, want %q", got.Customized, tt.sections)
			}
			if !bytes.Equal(got.Effective.Canonical(), tt.want.Canonical()) {
				t.Errorf("Effective =\n%s\nwant\n%s", got.Effective.Canonical(), tt.want.Canonical())
			}
			if got.IsCustomized() != (len(tt.sections) > 0) {
				t.Errorf("IsCustomized = %v", got.IsCustomized())
			}
			if !bytes.Equal(tt.current.Effective.Canonical(), before) {
				t.Error("PatchClient modified current")
			}
		})
	}
}

// TestClientDocumentRoundTrip: what is stored reads back as the same rules
// under any later global policy: the customized sections as they were, the
// others the new global ones.
func TestClientDocumentRoundTrip(t *testing.T) {
	global := Defaults()
	later := Defaults()
	later.Token.AccessTokenTTL, later.Token.IDTokenTTL = d("5m"), d("20m")
	later.Session.ReauthFor, later.Session.IdleTimeout = []string{ActionEmailChange}, d("2h")
	for _, patch := range []string{
		`{"customized":false}`,
		`{"token":{"access_token_ttl":"30m"}}`,
		`{"session":{"reauth_for":[],"max_concurrent":2}}`,
		`{"customized":true,"token":{"format":"jwt"}}`,
		`{"customized_sections":["session"]}`,
	} {
		t.Run(patch, func(t *testing.T) {
			c, err := PatchClient(global, ClientPolicy{Customized: []string{}, Effective: global}, []byte(patch))
			if err != nil {
				t.Fatal(err)
			}
			doc := c.Document()
			if !c.IsCustomized() && doc != nil {
				t.Errorf("Document() = %s for an application customizing nothing, want nil", doc)
			}
			back, err := ResolveClient(later, doc)
			if err != nil {
				t.Fatalf("ResolveClient(%s): %v", doc, err)
			}
			if !slices.Equal(back.Customized, c.Customized) {
				t.Errorf("sections %q read back as %q", c.Customized, back.Customized)
			}
			want := later.clone()
			for _, s := range Sections() {
				if slices.Contains(c.Customized, s.Key) {
					s.Field(&want).Set(deepCopy(s.Field(&c.Effective)))
				}
			}
			if !bytes.Equal(back.Effective.Canonical(), want.Canonical()) {
				t.Errorf("read back as\n%s\nwant\n%s", back.Effective.Canonical(), want.Canonical())
			}
		})
	}
}

func TestResolveClientRefusesWhatItCannotRead(t *testing.T) {
	for _, doc := range []string{`[]`, `"token"`, `{"tokens":{}}`, `{"token":{"acces_token_ttl":"5m"}}`, `{"token":"15m"}`} {
		if c, err := ResolveClient(Defaults(), []byte(doc)); err == nil {
			t.Errorf("ResolveClient(%s) = %+v, want an error", doc, c)
		}
	}
	for _, doc := range []string{``, `null`, `{}`} {
		c, err := ResolveClient(Defaults(), []byte(doc))
		if err != nil || c.IsCustomized() || c.Customized == nil || !bytes.Equal(c.Effective.Canonical(), Defaults().Canonical()) {
			t.Errorf("ResolveClient(%q) = %+v, %v; want the global policy, nothing customized", doc, c, err)
		}
	}
}
