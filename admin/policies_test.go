package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
)

// policyChangedBody decodes a PATCH answer, keeping the policy raw so it
// can be compared byte for byte with a GET.
type policyChangedBody struct {
	Customized    *bool            `json:"customized"`
	Policy        json.RawMessage  `json:"policy"`
	Warnings      []fielderr.Field `json:"warnings"`
	TokensRevoked *int64           `json:"tokens_revoked"`
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
		// On success: whether the client customizes and its access token
		// lifetime. On failure: the error code and fields.
		customized bool
		access     time.Duration
		code       string
		fields     []string
	}
	const (
		global = "/admin/policies"
		path   = "/admin/clients/app/policies"
	)
	tests := []struct {
		name  string
		steps []step
	}{
		{"follows the global policy until customized", []step{
			{method: "GET", status: 200, access: 15 * time.Minute},
			{method: "PATCH", body: `{"customized":true}`, status: 200, customized: true, access: 15 * time.Minute},
			{method: "GET", status: 200, customized: true, access: 15 * time.Minute},
		}},
		{"customize and change in one patch", []step{
			{method: "PATCH", body: `{"customized":true,"token":{"access_token_ttl":"5m"}}`, status: 200, customized: true, access: 5 * time.Minute},
			{method: "PATCH", body: `{"token":{"access_token_ttl":"20m"}}`, status: 200, customized: true, access: 20 * time.Minute},
			{method: "GET", status: 200, customized: true, access: 20 * time.Minute},
		}},
		{"un-customize returns to the global rules", []step{
			{method: "PATCH", body: `{"customized":true,"token":{"access_token_ttl":"5m"}}`, status: 200, customized: true, access: 5 * time.Minute},
			{method: "PATCH", body: `{"customized":false}`, status: 200, access: 15 * time.Minute},
			{method: "GET", status: 200, access: 15 * time.Minute},
		}},
		{"rules of an uncustomized client are refused", []step{
			{method: "PATCH", body: `{"token":{"access_token_ttl":"5m"}}`, status: 422, code: "invalid_policy", fields: []string{"customized"}},
			{method: "PATCH", body: `{"customized":false,"token":{"access_token_ttl":"5m"}}`, status: 422, code: "invalid_policy", fields: []string{"customized"}},
		}},
		{"invalid rules of a customized client are refused", []step{
			{method: "PATCH", body: `{"customized":true}`, status: 200, customized: true, access: 15 * time.Minute},
			{method: "PATCH", body: `{"token":{"access_token_ttl":"0s","format":"xml"}}`, status: 422, code: "invalid_policy",
				fields: []string{"token.access_token_ttl", "token.format"}},
			{method: "PATCH", body: `{"customized":"yes"}`, status: 422, code: "invalid_policy", fields: []string{"customized"}},
		}},
		{"customizing with invalid rules changes nothing", []step{
			{method: "PATCH", body: `{"customized":true,"session":{"on_limit":"queue"}}`, status: 422, code: "invalid_policy",
				fields: []string{"session.on_limit"}},
			{method: "GET", status: 200, access: 15 * time.Minute},
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
				if got.Customized == nil || *got.Customized != s.customized {
					t.Errorf("step %d: customized = %v, want %v", i, got.Customized, s.customized)
				}
				if d := decodePolicy(t, got.Policy).Token.AccessTokenTTL.D(); d != s.access {
					t.Errorf("step %d: access_token_ttl = %s, want %s", i, d, s.access)
				}
				if s.method == http.MethodPatch {
					if got.Warnings == nil || got.TokensRevoked == nil {
						t.Errorf("step %d: answer lacks warnings or tokens_revoked: %s", i, rec.Body)
					}
					if after := e.get(t, path); after != `{"customized":`+strconv.FormatBool(s.customized)+`,"policy":`+string(got.Policy)+"}\n" {
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
