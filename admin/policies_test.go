package admin

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
)

// policyChangedBody decodes a PATCH answer, keeping the policy raw so it
// can be compared byte for byte with a GET.
type policyChangedBody struct {
	Customized         *bool            `json:"customized"`
	CustomizedSections []string         `json:"customized_sections"`
	Policy             json.RawMessage  `json:"policy"`
	Warnings           []fielderr.Field `json:"warnings"`
	TokensRevoked      *int64           `json:"tokens_revoked"`
}

func fieldList(fs []fielderr.Field) []string {
	var names []string
	for _, f := range fs {
		names = append(names, f.Field)
	}
	return names
}

func decodePolicy(t *testing.T, raw json.RawMessage) policies.Policy {
	t.Helper()
	p, err := policies.ApplyPatch(policies.Defaults(), raw)
	if err != nil {
		t.Fatalf("policy %s: %v", raw, err)
	}
	return p
}

func TestGlobalPolicy(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
		fields      []string // of the error, or the warnings on success
		want        func(p policies.Policy) bool
	}{
		{name: "merge patch", contentType: mergePatchType,
			body:   `{"token":{"access_token_ttl":"10m"},"session":{"max_concurrent":2,"on_limit":"reject"}}`,
			status: 200,
			want: func(p policies.Policy) bool {
				return p.Token.AccessTokenTTL.D() == 10*time.Minute && p.Session.MaxConcurrent == 2 &&
					p.Session.OnLimit == policies.OnLimitReject && p.Token.RefreshTokenTTL.D() == 168*time.Hour
			}},
		{name: "application/json with charset", contentType: "application/json; charset=utf-8",
			body: `{"session":{"cookie":"browser"}}`, status: 200,
			want: func(p policies.Policy) bool { return p.Session.Cookie.Browser }},
		{name: "accepted with warnings", contentType: mergePatchType,
			body: `{"token":{"access_token_ttl":"30s","authorization_code_ttl":"15m"}}`, status: 200,
			fields: []string{"token.access_token_ttl", "token.authorization_code_ttl"},
			want:   func(p policies.Policy) bool { return p.Token.AccessTokenTTL.D() == 30*time.Second }},
		{name: "null resets a key", contentType: mergePatchType,
			body: `{"session":{"reauth_for":null}}`, status: 200,
			want: func(p policies.Policy) bool { return len(p.Session.ReauthFor) == 0 }},
		{name: "empty patch", contentType: mergePatchType, body: `{}`, status: 200,
			want: func(p policies.Policy) bool { return string(p.Canonical()) == string(policies.Defaults().Canonical()) }},

		{name: "refresh not longer than access", contentType: mergePatchType,
			body:   `{"token":{"refresh_token_ttl":"10m","access_token_ttl":"15m"}}`,
			status: 422, code: "invalid_policy", fields: []string{"token.refresh_token_ttl"}},
		{name: "both refresh modes", contentType: mergePatchType,
			body:   `{"token":{"refresh_window":"1h"}}`,
			status: 422, code: "invalid_policy", fields: []string{"token.refresh_window"}},
		{name: "every problem at once", contentType: mergePatchType,
			body:   `{"token":{"access_token_ttl":"-1m","format":"xml"},"session":{"max_concurrent":-1}}`,
			status: 422, code: "invalid_policy", fields: []string{"token.access_token_ttl", "token.format", "session.max_concurrent"}},
		{name: "unknown key", contentType: mergePatchType,
			body:   `{"token":{"acces_token_ttl":"1m"}}`,
			status: 422, code: "invalid_policy", fields: []string{"token.acces_token_ttl"}},
		{name: "wrong type", contentType: mergePatchType,
			body:   `{"token":{"access_token_ttl":900}}`,
			status: 422, code: "invalid_policy", fields: []string{"token.access_token_ttl"}},
		{name: "a valid key beside an invalid one", contentType: mergePatchType,
			body:   `{"session":{"max_concurrent":5},"token":{"id_token_ttl":"0s"}}`,
			status: 422, code: "invalid_policy", fields: []string{"token.id_token_ttl"}},
		{name: "malformed JSON", contentType: mergePatchType, body: `{"token":{`, status: 400, code: "invalid_request"},
		{name: "two JSON values", contentType: mergePatchType, body: `{} {}`, status: 400, code: "invalid_request"},
		{name: "not an object", contentType: mergePatchType, body: `["token"]`, status: 400, code: "invalid_request"},
		{name: "null document", contentType: mergePatchType, body: `null`, status: 400, code: "invalid_request"},
		{name: "empty body", contentType: mergePatchType, body: ``, status: 400, code: "invalid_request"},
		{name: "JSON patch is not a merge patch", contentType: "application/json-patch+json",
			body: `[{"op":"replace","path":"/token/access_token_ttl","value":"1m"}]`, status: 415, code: "invalid_request"},
		{name: "no content type", body: `{}`, status: 415, code: "invalid_request"},
		{name: "too large", contentType: mergePatchType, body: `{"token":{` + strings.Repeat(" ", maxBodyBytes) + `}}`,
			status: 413, code: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			before := e.get(t, "/admin/policies")
			rec := e.doAs(t, http.MethodPatch, "/admin/policies", tt.contentType, tt.body)
			wantStatus(t, rec, tt.status)
			after := e.get(t, "/admin/policies")

			if tt.status != http.StatusOK {
				body := decode[errorBody](t, rec)
				if body.Error != tt.code || body.Description == "" {
					t.Errorf("error = %q (%q), want %q with a description", body.Error, body.Description, tt.code)
				}
				if got := fieldList(body.Fields); !slices.Equal(got, tt.fields) {
					t.Errorf("fields = %q, want %q", got, tt.fields)
				}
				if after != before {
					t.Errorf("a refused patch changed the policy:\nbefore %s\nafter  %s", before, after)
				}
				if n := len(auditEvents(t, e.store, audit.TypePolicyChanged)); n != 0 {
					t.Errorf("%d policy.changed events for a refused patch", n)
				}
				return
			}

			got := decode[policyChangedBody](t, rec)
			if got.Warnings == nil || got.TokensRevoked == nil || *got.TokensRevoked != 0 || got.Customized != nil {
				t.Errorf("answer %s lacks warnings or tokens_revoked, or has customized", rec.Body)
			}
			if names := fieldList(got.Warnings); !slices.Equal(names, tt.fields) {
				t.Errorf("warnings = %q, want %q", names, tt.fields)
			}
			if !tt.want(decodePolicy(t, got.Policy)) {
				t.Errorf("policy = %s", got.Policy)
			}
			if want := `{"policy":` + string(got.Policy) + "}\n"; after != want {
				t.Errorf("GET after the patch = %s, want the patched policy %s", after, want)
			}
			if string(e.policies.Global().Canonical()) != string(got.Policy) {
				t.Error("the engine does not hold the patched policy")
			}
			events := auditEvents(t, e.store, audit.TypePolicyChanged)
			if len(events) != 1 || events[0].Actor != "root" || !strings.Contains(events[0].Details, `"before"`) {
				t.Errorf("policy.changed events = %+v, want one by root with the before and after", events)
			}
		})
	}
}

func TestGlobalPolicyRevokeOnChange(t *testing.T) {
	tests := []struct {
		name        string
		patch       string
		wantRevoked int64
	}{
		{"lifetime changed", `{"token":{"revoke_on_change":true,"access_token_ttl":"10m"}}`, 2},
		{"no lifetime changed", `{"token":{"revoke_on_change":true},"session":{"max_concurrent":3}}`, 0},
		{"revoke_on_change off", `{"token":{"access_token_ttl":"10m"}}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			createClient(t, e.store, "app")
			createClient(t, e.store, "other")
			sigs := []string{createToken(t, e.store, "app", "u1", ""), createToken(t, e.store, "other", "", "")}
			rec := e.doAs(t, http.MethodPatch, "/admin/policies", mergePatchType, tt.patch)
			wantStatus(t, rec, http.StatusOK)
			if got := decode[policyChangedBody](t, rec); *got.TokensRevoked != tt.wantRevoked {
				t.Errorf("tokens_revoked = %d, want %d", *got.TokensRevoked, tt.wantRevoked)
			}
			if active := len(activeTokens(t, e.store, sigs...)); int64(active) != int64(len(sigs))-tt.wantRevoked {
				t.Errorf("%d tokens active, want %d", active, int64(len(sigs))-tt.wantRevoked)
			}
		})
	}
}

func TestClientPolicy(t *testing.T) {
	type step struct {
		method string // GET or PATCH
		body   string
		status int
		// On success: the sections the client customizes and its access
		// token lifetime. On failure: the error code and fields.
		sections []string
		access   time.Duration
		code     string
		fields   []string
	}
	// Every section, whatever later versions add.
	all := policies.SectionKeys()
	both := []string{"token", "session"}
	const (
		global = "/admin/policies"
		path   = "/admin/clients/app/policies"
	)
	tests := []struct {
		name  string
		steps []step
	}{
		{"follows the global policy until customized", []step{
			{method: "GET", status: 200, sections: []string{}, access: 15 * time.Minute},
			{method: "PATCH", body: `{"customized":true}`, status: 200, sections: all, access: 15 * time.Minute},
			{method: "GET", status: 200, sections: all, access: 15 * time.Minute},
		}},
		{"customize and change in one patch", []step{
			{method: "PATCH", body: `{"customized":true,"token":{"access_token_ttl":"5m"}}`, status: 200, sections: all, access: 5 * time.Minute},
			{method: "PATCH", body: `{"token":{"access_token_ttl":"20m"}}`, status: 200, sections: all, access: 20 * time.Minute},
			{method: "GET", status: 200, sections: all, access: 20 * time.Minute},
		}},
		{"un-customize returns to the global rules", []step{
			{method: "PATCH", body: `{"customized":true,"token":{"access_token_ttl":"5m"}}`, status: 200, sections: all, access: 5 * time.Minute},
			{method: "PATCH", body: `{"customized":false}`, status: 200, sections: []string{}, access: 15 * time.Minute},
			{method: "GET", status: 200, sections: []string{}, access: 15 * time.Minute},
		}},
		{"changing a section customizes that section only", []step{
			{method: "PATCH", body: `{"token":{"access_token_ttl":"5m"}}`, status: 200, sections: []string{"token"}, access: 5 * time.Minute},
			{method: "GET", status: 200, sections: []string{"token"}, access: 5 * time.Minute},
			{method: "PATCH", body: `{"session":{"max_concurrent":2}}`, status: 200, sections: both, access: 5 * time.Minute},
		}},
		{"customized_sections sets the list", []step{
			{method: "PATCH", body: `{"customized_sections":["session"]}`, status: 200, sections: []string{"session"}, access: 15 * time.Minute},
			{method: "PATCH", body: `{"customized_sections":["session","token"],"token":{"access_token_ttl":"6m"}}`, status: 200, sections: both, access: 6 * time.Minute},
			{method: "PATCH", body: `{"customized_sections":["session"]}`, status: 200, sections: []string{"session"}, access: 15 * time.Minute},
			{method: "PATCH", body: `{"customized_sections":[]}`, status: 200, sections: []string{}, access: 15 * time.Minute},
		}},
		{"contradicting switches are refused", []step{
			{method: "PATCH", body: `{"customized":false,"token":{"access_token_ttl":"5m"}}`, status: 422, code: "invalid_policy", fields: []string{"customized"}},
			{method: "PATCH", body: `{"customized_sections":["session"],"token":{"access_token_ttl":"5m"}}`, status: 422, code: "invalid_policy",
				fields: []string{"customized_sections"}},
			{method: "PATCH", body: `{"customized":true,"customized_sections":["token"]}`, status: 422, code: "invalid_policy", fields: []string{"customized_sections"}},
		}},
		{"a bad list of sections is refused, naming each entry", []step{
			{method: "PATCH", body: `{"customized_sections":"token"}`, status: 422, code: "invalid_policy", fields: []string{"customized_sections"}},
			{method: "PATCH", body: `{"customized_sections":["token","tokens",7,"token"]}`, status: 422, code: "invalid_policy",
				fields: []string{"customized_sections[1]", "customized_sections[2]", "customized_sections[3]"}},
			{method: "GET", status: 200, sections: []string{}, access: 15 * time.Minute},
		}},
		{"invalid rules of a customized client are refused", []step{
			{method: "PATCH", body: `{"customized":true}`, status: 200, sections: all, access: 15 * time.Minute},
			{method: "PATCH", body: `{"token":{"access_token_ttl":"0s","format":"xml"}}`, status: 422, code: "invalid_policy",
				fields: []string{"token.access_token_ttl", "token.format"}},
			{method: "PATCH", body: `{"customized":"yes"}`, status: 422, code: "invalid_policy", fields: []string{"customized"}},
		}},
		{"customizing with invalid rules changes nothing", []step{
			{method: "PATCH", body: `{"customized":true,"session":{"on_limit":"queue"}}`, status: 422, code: "invalid_policy",
				fields: []string{"session.on_limit"}},
			{method: "GET", status: 200, sections: []string{}, access: 15 * time.Minute},
		}},
		{"malformed", []step{
			{method: "PATCH", body: `{"customized":`, status: 400, code: "invalid_request"},
			{method: "PATCH", body: `true`, status: 400, code: "invalid_request"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			createClient(t, e.store, "app")
			for i, s := range tt.steps {
				before := e.get(t, path)
				beforeGlobal := e.get(t, global)
				rec := e.do(t, s.method, path, adminToken, s.body)
				wantStatus(t, rec, s.status)
				if s.status != http.StatusOK {
					body := decode[errorBody](t, rec)
					if body.Error != s.code || !slices.Equal(fieldList(body.Fields), s.fields) {
						t.Errorf("step %d: error %s, want %s with fields %q", i, rec.Body, s.code, s.fields)
					}
					if after := e.get(t, path); after != before {
						t.Errorf("step %d: a refused patch changed the rules:\nbefore %s\nafter  %s", i, before, after)
					}
					continue
				}
				got := decode[policyChangedBody](t, rec)
				if got.Customized == nil || *got.Customized != (len(s.sections) > 0) || !slices.Equal(got.CustomizedSections, s.sections) || got.CustomizedSections == nil {
					t.Errorf("step %d: customized = %v, customized_sections %q; want %q", i, got.Customized, got.CustomizedSections, s.sections)
				}
				if d := decodePolicy(t, got.Policy).Token.AccessTokenTTL.D(); d != s.access {
					t.Errorf("step %d: access_token_ttl = %s, want %s", i, d, s.access)
				}
				if s.method == http.MethodPatch {
					if got.Warnings == nil || got.TokensRevoked == nil {
						t.Errorf("step %d: answer lacks warnings or tokens_revoked: %s", i, rec.Body)
					}
					sections, _ := json.Marshal(s.sections)
					if after := e.get(t, path); after != `{"customized":`+strconv.FormatBool(len(s.sections) > 0)+`,"customized_sections":`+string(sections)+`,"policy":`+string(got.Policy)+"}\n" {
						t.Errorf("step %d: GET after the patch = %s, want the patched rules", i, after)
					}
				} else if got.Warnings != nil || got.TokensRevoked != nil {
					t.Errorf("step %d: GET has warnings or tokens_revoked: %s", i, rec.Body)
				}
				if afterGlobal := e.get(t, global); afterGlobal != beforeGlobal {
					t.Errorf("step %d: an application's change moved the global policy", i)
				}
			}
		})
	}
}

func TestClientPolicyKeepsSnapshot(t *testing.T) {
	e := newEnv(t)
	createClient(t, e.store, "custom")
	createClient(t, e.store, "plain")
	wantStatus(t, e.do(t, "PATCH", "/admin/clients/custom/policies", adminToken, `{"customized":true}`), http.StatusOK)
	wantStatus(t, e.doAs(t, "PATCH", "/admin/policies", mergePatchType, `{"token":{"access_token_ttl":"7m"}}`), http.StatusOK)

	tests := []struct {
		client     string
		customized bool
		access     time.Duration
	}{
		{"custom", true, 15 * time.Minute},
		{"plain", false, 7 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			got := decode[policyChangedBody](t, e.do(t, "GET", "/admin/clients/"+tt.client+"/policies", adminToken, ""))
			if *got.Customized != tt.customized || decodePolicy(t, got.Policy).Token.AccessTokenTTL.D() != tt.access {
				t.Errorf("got customized=%v policy %s, want %v and access %s", *got.Customized, got.Policy, tt.customized, tt.access)
			}
		})
	}
}

func TestClientPolicyNotFound(t *testing.T) {
	e := newEnv(t)
	tests := []struct{ method, body string }{
		{"GET", ""},
		{"PATCH", `{"customized":true}`},
		{"PATCH", `{"customized":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.body, func(t *testing.T) {
			rec := e.do(t, tt.method, "/admin/clients/nobody/policies", adminToken, tt.body)
			wantStatus(t, rec, http.StatusNotFound)
			if n := len(auditEvents(t, e.store, audit.TypePolicyChanged)); n != 0 {
				t.Errorf("%d policy.changed events", n)
			}
		})
	}
}

// TestClientPolicyPerSection: an application that customizes token only
// keeps its token rules through a global token change and follows a
// global session change; the audit trail has the sections before and after.
func TestClientPolicyPerSection(t *testing.T) {
	e := newEnv(t)
	createClient(t, e.store, "app")
	const path = "/admin/clients/app/policies"
	wantStatus(t, e.doAs(t, "PATCH", "/admin/policies", mergePatchType, `{"token":{"access_token_ttl":"10m"}}`), http.StatusOK)
	got := decode[policyChangedBody](t, e.do(t, "PATCH", path, adminToken, `{"token":{"id_token_ttl":"30m"}}`))
	if !slices.Equal(got.CustomizedSections, []string{"token"}) {
		t.Fatalf("customized_sections = %q, want [token]", got.CustomizedSections)
	}
	wantStatus(t, e.doAs(t, "PATCH", "/admin/policies", mergePatchType,
		`{"token":{"access_token_ttl":"5m"},"session":{"max_concurrent":4}}`), http.StatusOK)

	view := decode[policyChangedBody](t, e.do(t, "GET", path, adminToken, ""))
	p := decodePolicy(t, view.Policy)
	if !*view.Customized || !slices.Equal(view.CustomizedSections, []string{"token"}) {
		t.Errorf("GET = customized %v sections %q, want true [token]", *view.Customized, view.CustomizedSections)
	}
	if p.Token.AccessTokenTTL.D() != 10*time.Minute || p.Token.IDTokenTTL.D() != 30*time.Minute {
		t.Errorf("token = access %s id %s, want the app's own 10m and 30m", p.Token.AccessTokenTTL, p.Token.IDTokenTTL)
	}
	if p.Session.MaxConcurrent != 4 {
		t.Errorf("session.max_concurrent = %d, want the global 4", p.Session.MaxConcurrent)
	}

	events := auditEvents(t, e.store, audit.TypePolicyChanged)
	var client []string
	for _, ev := range events {
		if ev.ClientID == "app" {
			client = append(client, ev.Details)
		}
	}
	if len(client) != 1 || !strings.Contains(client[0], `"customized_sections":["token"]`) || !strings.Contains(client[0], `"customized_sections_before":[]`) {
		t.Errorf("the application's policy.changed events = %q, want one with customized_sections [] → [token]", client)
	}
}

// TestPolicySchemaFollowsTheRegistry: the OpenAPI document describes every
// policy section and every key of it, with the type it has, and nothing
// else, in the whole document, in both merge patches and in the section
// names customized_sections takes.
func TestPolicySchemaFollowsTheRegistry(t *testing.T) {
	doc := loadDocument(t)
	schema := func(name string) *openapi3.Schema {
		t.Helper()
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Fatalf("the document has no schema %s", name)
		}
		return ref.Value
	}
	keys := policies.SectionKeys()

	whole := schema("Policy")
	if got := slices.Sorted(maps.Keys(whole.Properties)); !slices.Equal(got, slices.Sorted(slices.Values(keys))) {
		t.Errorf("Policy has properties %q, want the sections %q", got, keys)
	}
	if !slices.Equal(slices.Sorted(slices.Values(whole.Required)), slices.Sorted(slices.Values(keys))) {
		t.Errorf("Policy requires %q, want every section %q", whole.Required, keys)
	}
	for name, extra := range map[string][]string{
		"PolicyPatch":       nil,
		"ClientPolicyPatch": {policies.KeyCustomized, policies.KeyCustomizedSections},
	} {
		want := slices.Sorted(slices.Values(append(slices.Clone(keys), extra...)))
		if got := slices.Sorted(maps.Keys(schema(name).Properties)); !slices.Equal(got, want) {
			t.Errorf("%s has properties %q, want %q", name, got, want)
		}
	}
	for _, s := range policies.Sections() {
		checkPolicySchema(t, s.Key, s.Type, whole.Properties[s.Key].Value, false)
		for _, name := range []string{"PolicyPatch", "ClientPolicyPatch"} {
			if prop := schema(name).Properties[s.Key]; prop != nil {
				checkPolicySchema(t, name+": "+s.Key, s.Type, prop.Value, true)
			}
		}
	}

	var names []string
	for _, v := range schema("PolicySectionName").Enum {
		names = append(names, fmt.Sprint(v))
	}
	if !slices.Equal(names, keys) {
		t.Errorf("PolicySectionName is one of %q, want the sections in document order %q", names, keys)
	}
	for _, name := range []string{"ClientPolicy", "ClientPolicyChanged"} {
		if !slices.Contains(schema(name).Required, policies.KeyCustomizedSections) {
			t.Errorf("%s does not require %s", name, policies.KeyCustomizedSections)
		}
	}
}

// checkPolicySchema compares the schema of one object of the policy
// document with its Go type: the same keys, the JSON type of each, and in
// a merge patch (patch) every key optional and nullable, in the whole
// document every key required.
func checkPolicySchema(t *testing.T, path string, typ reflect.Type, sc *openapi3.Schema, patch bool) {
	t.Helper()
	if patch {
		if !sc.Nullable || len(sc.AllOf) != 1 {
			t.Errorf("%s: an object in a merge patch is nullable and refers to its patch schema", path)
			return
		}
		sc = sc.AllOf[0].Value
	}
	if sc.AdditionalProperties.Has == nil || *sc.AdditionalProperties.Has {
		t.Errorf("%s: additionalProperties must be false, so that unknown keys are refused as the API refuses them", path)
	}
	var fields []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		fields = append(fields, name)
		prop := sc.Properties[name]
		if prop == nil {
			continue // reported below
		}
		key := path + "." + name
		if isPolicyObject(f.Type) {
			checkPolicySchema(t, key, f.Type, prop.Value, patch)
			continue
		}
		if want := jsonType(f.Type); !prop.Value.Type.Is(want) {
			t.Errorf("%s: type %v, want %s for %s", key, prop.Value.Type, want, f.Type)
		}
		if f.Type == reflect.TypeFor[policies.Duration]() && prop.Value.Pattern == "" {
			t.Errorf("%s: a duration without the duration pattern", key)
		}
		if patch && !prop.Value.Nullable {
			t.Errorf("%s: not nullable, but null resets a key in a merge patch", key)
		}
	}
	if got := slices.Sorted(maps.Keys(sc.Properties)); !slices.Equal(got, slices.Sorted(slices.Values(fields))) {
		t.Errorf("%s: properties %q, want the keys of %s %q", path, got, typ, fields)
	}
	if !patch && !slices.Equal(slices.Sorted(slices.Values(sc.Required)), slices.Sorted(slices.Values(fields))) {
		t.Errorf("%s: requires %q, want every key %q: the API always answers with all of them", path, sc.Required, fields)
	}
}

// isPolicyObject reports whether t is a JSON object of further keys rather
// than a value that encodes itself (durations, the cookie lifetime).
func isPolicyObject(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]())
}

func jsonType(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return openapi3.TypeString
	}
	switch t.Kind() {
	case reflect.String:
		return openapi3.TypeString
	case reflect.Bool:
		return openapi3.TypeBoolean
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return openapi3.TypeInteger
	case reflect.Float32, reflect.Float64:
		return openapi3.TypeNumber
	case reflect.Slice:
		return openapi3.TypeArray
	case reflect.Map:
		return openapi3.TypeObject
	}
	return "(no JSON type for " + t.String() + ")"
}

// TestClientPolicySectionsMatchTheDocument replays the per-section shapes
// through the OpenAPI document: it accepts what the API accepts as well
// formed, refuses what the schema can tell is wrong, and describes every
// answer.
func TestClientPolicySectionsMatchTheDocument(t *testing.T) {
	doc := loadDocument(t)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	createClient(t, e.store, "app")
	const path = "/admin/clients/app/policies"
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: requireBearer}
	calls := []struct {
		method, body string
		status       int
		docAccepts   bool
	}{
		{"PATCH", `{"token":{"access_token_ttl":"5m"}}`, 200, true},
		{"GET", "", 200, true},
		{"PATCH", `{"customized_sections":["session","token"]}`, 200, true},
		{"PATCH", `{"customized_sections":["session"],"token":{"access_token_ttl":"5m"}}`, 422, true},
		{"PATCH", `{"customized":true,"customized_sections":["token"]}`, 422, true},
		{"PATCH", `{"customized_sections":["tokens"]}`, 422, false},
		{"PATCH", `{"customized_sections":["token","token"]}`, 422, false},
		{"PATCH", `{"customized_sections":"token"}`, 422, false},
		{"PATCH", `{"customized_sections":[]}`, 200, true},
		{"GET", "", 200, true},
	}
	for i, c := range calls {
		rec := e.do(t, c.method, path, adminToken, c.body)
		if rec.Code != c.status {
			t.Fatalf("call %d %s %s: status %d, want %d; body %s", i, c.method, c.body, rec.Code, c.status, rec.Body)
		}
		validated := newRequest(c.method, path, adminToken, c.body)
		route, params, err := router.FindRoute(validated)
		if err != nil {
			t.Fatal(err)
		}
		in := &openapi3filter.RequestValidationInput{Request: validated, PathParams: params, Route: route, Options: opts}
		if reqErr := openapi3filter.ValidateRequest(t.Context(), in); (reqErr == nil) != c.docAccepts {
			t.Errorf("call %d %s: the document accepts it %v, want %v (%v)", i, c.body, reqErr == nil, c.docAccepts, reqErr)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: opts}
		out.SetBodyBytes(rec.Body.Bytes())
		if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
			t.Errorf("call %d %s: response does not match the document: %v\nbody %.500s", i, c.body, err, rec.Body)
		}
	}
}
