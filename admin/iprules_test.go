package admin

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/reqinfo"
)

// newGuardedEnv is newEnv with the global ip section set by patch (through
// the engine, so without the admin API's own checks).
func newGuardedEnv(t *testing.T, patch string) *testEnv {
	t.Helper()
	e := newEnv(t)
	if _, err := e.policies.PatchGlobal(t.Context(), "test", []byte(patch)); err != nil {
		t.Fatalf("set ip rules %s: %v", patch, err)
	}
	return e
}

// from sends a request from the client address addr ("" for one the
// server does not know).
func (e *testEnv) from(t *testing.T, addr, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := newRequest(method, path, token, body)
	var info reqinfo.Info
	if addr != "" {
		info.IP = netip.MustParseAddr(addr)
	}
	if body != "" {
		r.Header.Set("Content-Type", mergePatchType)
	}
	return e.serve(t, r.WithContext(reqinfo.With(r.Context(), info)))
}

func TestAdminIPGuard(t *testing.T) {
	const (
		allowOffice = `{"ip":{"mode":"allowlist","allow":["198.51.100.0/24","2001:db8:1::/48"],"apply_to":["admin"]}}`
		blockSome   = `{"ip":{"mode":"blocklist","block":["203.0.113.0/24","2001:db8:bad::/48"],"apply_to":["admin"]}}`
		signInOnly  = `{"ip":{"mode":"blocklist","block":["203.0.113.0/24"]}}`
	)
	envs := map[string]*testEnv{
		allowOffice: newGuardedEnv(t, allowOffice),
		blockSome:   newGuardedEnv(t, blockSome),
		signInOnly:  newGuardedEnv(t, signInOnly),
	}
	tests := []struct {
		name   string
		rules  string
		addr   string
		token  string
		path   string
		status int
	}{
		{"allowlisted v4, admin token", allowOffice, "198.51.100.7", adminToken, "/admin/clients", http.StatusOK},
		{"allowlisted v6, admin token", allowOffice, "2001:db8:1::5", adminToken, "/admin/clients", http.StatusOK},
		{"allowlisted, v4-mapped", allowOffice, "::ffff:198.51.100.7", adminToken, "/admin/clients", http.StatusOK},
		{"allowlisted, no token: the usual 401", allowOffice, "198.51.100.7", "", "/admin/clients", http.StatusUnauthorized},
		{"outside the allowlist, admin token", allowOffice, "192.0.2.1", adminToken, "/admin/clients", http.StatusForbidden},
		{"outside the allowlist, no token", allowOffice, "192.0.2.1", "", "/admin/clients", http.StatusForbidden},
		{"outside the allowlist, the document", allowOffice, "192.0.2.1", "", "/admin/openapi.json", http.StatusForbidden},
		{"outside the allowlist, an unknown path", allowOffice, "192.0.2.1", adminToken, "/admin/nothing-here", http.StatusForbidden},
		{"unknown address under an allowlist", allowOffice, "", adminToken, "/admin/clients", http.StatusForbidden},
		{"blocked v4", blockSome, "203.0.113.9", adminToken, "/admin/clients", http.StatusForbidden},
		{"blocked v6", blockSome, "2001:db8:bad::1", adminToken, "/admin/clients", http.StatusForbidden},
		{"not blocked", blockSome, "192.0.2.1", adminToken, "/admin/clients", http.StatusOK},
		{"unknown address under a block list", blockSome, "", adminToken, "/admin/clients", http.StatusOK},
		{"rules without apply_to leave the admin API alone", signInOnly, "203.0.113.9", adminToken, "/admin/clients", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := envs[tt.rules].from(t, tt.addr, http.MethodGet, tt.path, tt.token, "")
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == http.StatusForbidden {
				if got := decode[errorBody](t, rec); got.Error != "access_denied" || got.Description == "" {
					t.Errorf("body %s, want access_denied with a description", rec.Body)
				}
				if h := rec.Header().Get("WWW-Authenticate"); h != "" {
					t.Errorf("WWW-Authenticate %q on an address refusal: no token would help", h)
				}
			}
		})
	}
}

// TestAdminIPGuardIgnoresApplications: an application's own ip section
// has no say over the admin API, which belongs to none.
func TestAdminIPGuardIgnoresApplications(t *testing.T) {
	e := newEnv(t)
	createClient(t, e.store, "strict-app")
	if _, err := e.policies.PatchClient(t.Context(), "test", "strict-app",
		[]byte(`{"ip":{"mode":"allowlist","allow":["10.0.0.0/8"],"apply_to":["admin"]}}`)); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.from(t, "192.0.2.1", http.MethodGet, "/admin/clients", adminToken, ""), http.StatusOK)
}

// TestAdminCannotLockThemselvesOut: a global change after which the rules
// would refuse the caller's own address on the admin API is refused,
// naming ip, and changes nothing; one that keeps it in goes through.
func TestAdminCannotLockThemselvesOut(t *testing.T) {
	tests := []struct {
		name   string
		addr   string
		patch  string
		status int
	}{
		{"allowlist without the caller", "192.0.2.1", `{"ip":{"mode":"allowlist","allow":["10.0.0.0/8"],"apply_to":["admin"]}}`, http.StatusUnprocessableEntity},
		{"block list with the caller", "192.0.2.1", `{"ip":{"mode":"blocklist","block":["192.0.2.0/24"],"apply_to":["admin"]}}`, http.StatusUnprocessableEntity},
		{"v6 caller blocked", "2001:db8::7", `{"ip":{"mode":"blocklist","block":["2001:db8::/32"],"apply_to":["admin"]}}`, http.StatusUnprocessableEntity},
		{"exception inside the caller's allowed range", "192.0.2.1", `{"ip":{"mode":"allowlist","allow":["192.0.2.0/24"],"block":["192.0.2.1"],"apply_to":["admin"]}}`, http.StatusUnprocessableEntity},
		{"unknown caller under an allowlist", "", `{"ip":{"mode":"allowlist","allow":["0.0.0.0/0","::/0"],"apply_to":["admin"]}}`, http.StatusUnprocessableEntity},
		{"allowlist with the caller", "192.0.2.1", `{"ip":{"mode":"allowlist","allow":["192.0.2.0/24"],"apply_to":["admin"]}}`, http.StatusOK},
		{"block list without the caller", "192.0.2.1", `{"ip":{"mode":"blocklist","block":["203.0.113.0/24"],"apply_to":["admin"]}}`, http.StatusOK},
		{"the caller blocked from signing in only", "192.0.2.1", `{"ip":{"mode":"blocklist","block":["192.0.2.0/24"]}}`, http.StatusOK},
		{"an invalid patch is the engine's to report", "192.0.2.1", `{"ip":{"mode":"allowlist","allow":["10.0.0.0/33"],"apply_to":["admin"]}}`, http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			before := e.get(t, "/admin/policies")
			rec := e.from(t, tt.addr, http.MethodPatch, "/admin/policies", adminToken, tt.patch)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == http.StatusOK {
				return
			}
			body := decode[errorBody](t, rec)
			if body.Error != "invalid_policy" {
				t.Errorf("error %q, want invalid_policy", body.Error)
			}
			if after := e.get(t, "/admin/policies"); after != before {
				t.Errorf("a refused patch changed the policy:\n%s\nwas\n%s", after, before)
			}
			fields := fieldNames(t, rec)
			if tt.name == "an invalid patch is the engine's to report" {
				if !slices.Equal(fields, []string{"ip.allow[0]"}) {
					t.Errorf("fields %q, want the engine's [ip.allow[0]]", fields)
				}
				return
			}
			if !slices.Equal(fields, []string{"ip"}) {
				t.Errorf("fields %q, want [ip]", fields)
			}
			if msg := body.Fields[0].Message; !containsAll(msg, "would block your own address", "apply_to") {
				t.Errorf("message %q", msg)
			}
		})
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
