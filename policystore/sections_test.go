package policystore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// TestPerSectionCustomization walks one application through customizing
// sections one at a time while the global policy keeps changing: a section
// it customized keeps its values, the others follow the global policy.
func TestPerSectionCustomization(t *testing.T) {
	type step struct {
		name          string
		global, app   string   // one of the two patches
		sections      []string // the app's customized sections after the step
		access, idTTL time.Duration
		maxConcurrent int
	}
	steps := []step{
		{name: "global starting point", global: `{"token":{"access_token_ttl":"10m"},"session":{"max_concurrent":1}}`,
			sections: []string{}, access: 10 * time.Minute, idTTL: time.Hour, maxConcurrent: 1},
		{name: "changing token customizes token only, from the current global token", app: `{"token":{"id_token_ttl":"20m"}}`,
			sections: []string{"token"}, access: 10 * time.Minute, idTTL: 20 * time.Minute, maxConcurrent: 1},
		{name: "a global session change reaches the app, a global token change does not",
			global:   `{"token":{"access_token_ttl":"5m","id_token_ttl":"30m"},"session":{"max_concurrent":3}}`,
			sections: []string{"token"}, access: 10 * time.Minute, idTTL: 20 * time.Minute, maxConcurrent: 3},
		{name: "listing session snapshots the current global session", app: `{"customized_sections":["session","token"]}`,
			sections: []string{"token", "session"}, access: 10 * time.Minute, idTTL: 20 * time.Minute, maxConcurrent: 3},
		{name: "now the global session stays out too", global: `{"session":{"max_concurrent":4}}`,
			sections: []string{"token", "session"}, access: 10 * time.Minute, idTTL: 20 * time.Minute, maxConcurrent: 3},
		{name: "leaving token out returns it to the global token", app: `{"customized_sections":["session"]}`,
			sections: []string{"session"}, access: 5 * time.Minute, idTTL: 30 * time.Minute, maxConcurrent: 3},
		{name: "a section patch beside the list it is in", app: `{"customized_sections":["session"],"session":{"max_concurrent":6}}`,
			sections: []string{"session"}, access: 5 * time.Minute, idTTL: 30 * time.Minute, maxConcurrent: 6},
		{name: "customized true snapshots the rest and keeps the own", app: `{"customized":true}`,
			sections: policies.SectionKeys(), access: 5 * time.Minute, idTTL: 30 * time.Minute, maxConcurrent: 6},
		{name: "global token change after customizing all", global: `{"token":{"access_token_ttl":"7m"}}`,
			sections: policies.SectionKeys(), access: 5 * time.Minute, idTTL: 30 * time.Minute, maxConcurrent: 6},
		{name: "an empty list customizes nothing", app: `{"customized_sections":[]}`,
			sections: []string{}, access: 7 * time.Minute, idTTL: 30 * time.Minute, maxConcurrent: 4},
		{name: "customize session by changing it", app: `{"session":{"max_concurrent":2}}`,
			sections: []string{"session"}, access: 7 * time.Minute, idTTL: 30 * time.Minute, maxConcurrent: 2},
		{name: "customized false drops every section", app: `{"customized":false}`,
			sections: []string{}, access: 7 * time.Minute, idTTL: 30 * time.Minute, maxConcurrent: 4},
	}
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		createClient(t, in.store, "app")
		createClient(t, in.store, "other")
		for _, st := range steps {
			var ch *policystore.Change
			if st.global != "" {
				ch = mustPatchGlobal(t, in.eng, st.global)
			} else {
				ch = mustPatchClient(t, in.eng, "app", st.app)
				if !slices.Equal(ch.Sections, st.sections) || ch.Customized != (len(st.sections) > 0) {
					t.Errorf("%s: Change = customized %v sections %q, want %q", st.name, ch.Customized, ch.Sections, st.sections)
				}
				if !bytes.Equal(ch.Policy.Canonical(), in.eng.For("app").Canonical()) {
					t.Errorf("%s: Change.Policy differs from For(app)", st.name)
				}
			}
			sections, p := in.eng.ClientSections("app")
			if !slices.Equal(sections, st.sections) || sections == nil {
				t.Errorf("%s: ClientSections = %q, want %q", st.name, sections, st.sections)
			}
			if custom, _ := in.eng.Client("app"); custom != (len(st.sections) > 0) {
				t.Errorf("%s: Client customized = %v", st.name, custom)
			}
			if !bytes.Equal(p.Canonical(), in.eng.For("app").Canonical()) {
				t.Errorf("%s: ClientSections policy differs from For(app)", st.name)
			}
			if p.Token.AccessTokenTTL.D() != st.access || p.Token.IDTokenTTL.D() != st.idTTL || p.Session.MaxConcurrent != st.maxConcurrent {
				t.Errorf("%s: app has access %s id %s max_concurrent %d, want %s %s %d", st.name,
					p.Token.AccessTokenTTL, p.Token.IDTokenTTL, p.Session.MaxConcurrent, st.access, st.idTTL, st.maxConcurrent)
			}
			// Each section the app does not customize is the global one.
			g := in.eng.Global()
			for _, s := range policies.Sections() {
				own := slices.Contains(st.sections, s.Key)
				same := reflect.DeepEqual(s.Field(&p).Interface(), s.Field(&g).Interface())
				if !own && !same {
					t.Errorf("%s: section %s is not customized but differs from the global one", st.name, s.Key)
				}
			}
			if got := in.eng.For("other").Canonical(); !bytes.Equal(got, g.Canonical()) {
				t.Errorf("%s: another application does not follow the global policy", st.name)
			}

			// The database holds only the sections the app customizes.
			d, err := in.store.PolicyDocument(t.Context(), storage.PolicyScopeClient("app"))
			if len(st.sections) == 0 {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s: an application customizing nothing has a stored document (err %v)", st.name, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: PolicyDocument: %v", st.name, err)
			}
			var stored map[string]json.RawMessage
			if err := json.Unmarshal([]byte(d.Document), &stored); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, s := range policies.Sections() {
				if _, ok := stored[s.Key]; ok {
					keys = append(keys, s.Key)
				}
			}
			if !slices.Equal(keys, st.sections) || len(stored) != len(keys) {
				t.Errorf("%s: stored document %s, want sections %q only", st.name, d.Document, st.sections)
			}
		}

		// A new instance reads the same rules back from the database.
		mustPatchClient(t, in.eng, "app", `{"token":{"access_token_ttl":"11m"}}`)
		again := open(t, url, clk, policies.Defaults())
		if got, want := again.eng.For("app").Canonical(), in.eng.For("app").Canonical(); !bytes.Equal(got, want) {
			t.Errorf("new instance: For(app) = %s, want %s", got, want)
		}
		if s, _ := again.eng.ClientSections("app"); !slices.Equal(s, []string{"token"}) {
			t.Errorf("new instance: ClientSections = %q, want [token]", s)
		}
	})
}

// sectionJSON is one section of p as stored, without the keys in drop: how
// a document written by a version that did not have them looks.
func sectionJSON(t *testing.T, p policies.Policy, key string, drop ...string) json.RawMessage {
	t.Helper()
	var all map[string]map[string]json.RawMessage
	if err := json.Unmarshal(p.Canonical(), &all); err != nil {
		t.Fatal(err)
	}
	sec := all[key]
	for _, k := range drop {
		delete(sec, k)
	}
	b, err := json.Marshal(sec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoredClientDocuments: documents as earlier versions and other
// instances left them are read so that their meaning is kept.
func TestStoredClientDocuments(t *testing.T) {
	own := policies.Defaults()
	own.Token.AccessTokenTTL = dur(20 * time.Minute)
	own.Session.MaxConcurrent = 2
	invalid := own
	invalid.Token.AccessTokenTTL = 0

	tests := []struct {
		name     string
		document func(t *testing.T) string
		sections []string
		// want is the app's policy, given the global one.
		want func(global policies.Policy) policies.Policy
	}{
		{"a whole document (before per-section customization) customizes every section",
			func(t *testing.T) string { return string(own.Canonical()) },
			policies.SectionKeys(),
			func(policies.Policy) policies.Policy { return own }},
		{"a key a later version added follows the global value",
			func(t *testing.T) string {
				return `{"token":` + string(sectionJSON(t, own, "token", "id_token_ttl")) + `}`
			},
			[]string{"token"},
			func(g policies.Policy) policies.Policy {
				p := g
				p.Token = own.Token
				p.Token.IDTokenTTL = g.Token.IDTokenTTL
				return p
			}},
		{"an empty document customizes nothing",
			func(t *testing.T) string { return `{}` },
			[]string{},
			func(g policies.Policy) policies.Policy { return g }},
		{"an unknown section: the global rules, logged",
			func(t *testing.T) string { return `{"passwords":{}}` },
			[]string{},
			func(g policies.Policy) policies.Policy { return g }},
		{"rules this version refuses: the global rules, logged",
			func(t *testing.T) string { return `{"token":` + string(sectionJSON(t, invalid, "token")) + `}` },
			[]string{},
			func(g policies.Policy) policies.Policy { return g }},
	}
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := open(t, url, clk, policies.Defaults())
				id := fmt.Sprintf("app-%d", i)
				createClient(t, in.store, id)
				doc := &storage.PolicyDocument{Scope: storage.PolicyScopeClient(id), Document: tt.document(t)}
				if err := in.store.PutPolicyDocument(t.Context(), doc); err != nil {
					t.Fatal(err)
				}
				// Through the API, so that the version moves and every
				// instance reloads.
				mustPatchGlobal(t, in.eng, fmt.Sprintf(`{"token":{"id_token_ttl":"%dm"},"session":{"idle_timeout":"1h"}}`, 40+i))
				sections, p := in.eng.ClientSections(id)
				want := tt.want(in.eng.Global())
				if !slices.Equal(sections, tt.sections) || !bytes.Equal(p.Canonical(), want.Canonical()) {
					t.Errorf("ClientSections = %q %s\nwant %q %s", sections, p.Canonical(), tt.sections, want.Canonical())
				}
			})
		}
	})
}

// TestGlobalChangeKeepsApplicationsValid: a global change that would make
// an application's mix of own and global values nonsense is refused.
func TestGlobalChangeKeepsApplicationsValid(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		createClient(t, in.store, "app")
		own := policies.Defaults()
		own.Token.AccessTokenTTL = dur(2 * time.Hour)
		// Stored by a version without refresh_token_ttl: the app takes the
		// global one (168h), which outlives its 2h access tokens.
		doc := `{"token":` + string(sectionJSON(t, own, "token", "refresh_token_ttl")) + `}`
		if err := in.store.PutPolicyDocument(t.Context(), &storage.PolicyDocument{Scope: storage.PolicyScopeClient("app"), Document: doc}); err != nil {
			t.Fatal(err)
		}
		mustPatchGlobal(t, in.eng, `{"session":{"max_concurrent":1}}`)
		app := in.eng.For("app").Canonical()
		global, version := in.eng.Global().Canonical(), storedVersion(t, in.store)

		_, err := in.eng.PatchGlobal(t.Context(), "admin-1", []byte(`{"token":{"refresh_token_ttl":"90m"}}`))
		fe, ok := fielderr.As(err)
		if !errors.Is(err, policystore.ErrInvalid) || !ok || fe.Fields[0].Field != "token.refresh_token_ttl" || !strings.Contains(fe.Fields[0].Message, `application "app"`) {
			t.Fatalf("err = %v, want ErrInvalid naming token.refresh_token_ttl and the application", err)
		}
		if !bytes.Equal(in.eng.Global().Canonical(), global) || !bytes.Equal(in.eng.For("app").Canonical(), app) || storedVersion(t, in.store) != version {
			t.Error("a refused global change changed something")
		}
		// A change that leaves the app valid goes through.
		mustPatchGlobal(t, in.eng, `{"token":{"refresh_token_ttl":"3h"}}`)
		if got := in.eng.For("app").Token.RefreshTokenTTL; got != dur(3*time.Hour) {
			t.Errorf("app refresh_token_ttl = %s, want the global 3h", got)
		}
	})
}

// TestUnreadableClientDocument: an application whose stored rules this
// version cannot read runs on the global rules, and an administrator can
// return it to them for good, but not change rules built on what cannot be
// read.
func TestUnreadableClientDocument(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string, clk *storagetest.Clock) {
		in := open(t, url, clk, policies.Defaults())
		createClient(t, in.store, "app")
		scope := storage.PolicyScopeClient("app")
		if err := in.store.PutPolicyDocument(t.Context(), &storage.PolicyDocument{Scope: scope, Document: `{"passwords":{"min_length":12}}`}); err != nil {
			t.Fatal(err)
		}
		mustPatchGlobal(t, in.eng, `{"token":{"access_token_ttl":"9m"}}`)
		if custom, p := in.eng.Client("app"); custom || p.Token.AccessTokenTTL != dur(9*time.Minute) {
			t.Fatalf("Client(app) = %v access %s, want the global rules", custom, p.Token.AccessTokenTTL)
		}
		if _, err := in.eng.PatchClient(t.Context(), "admin-1", "app", []byte(`{"token":{"access_token_ttl":"5m"}}`)); err == nil || errors.Is(err, policystore.ErrInvalid) {
			t.Errorf("changing rules over an unreadable document: err = %v, want a failure that is not the patch's fault", err)
		}
		if _, err := in.store.PolicyDocument(t.Context(), scope); err != nil {
			t.Fatalf("the refused patch removed the document: %v", err)
		}
		ch := mustPatchClient(t, in.eng, "app", `{"customized":false}`)
		if ch.Customized {
			t.Error("customized false left the application customized")
		}
		if _, err := in.store.PolicyDocument(t.Context(), scope); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("customized false kept the unreadable document (err %v)", err)
		}
	})
}
