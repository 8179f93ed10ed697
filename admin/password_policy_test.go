package admin

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/fielderr"
)

// TestPasswordPolicyProblems checks that the admin API answers a password
// the global password policy refuses with 422 and every problem, each
// with its code, on creation and on reset.
func TestPasswordPolicyProblems(t *testing.T) {
	strict := []fielderr.Field{
		{Field: "password", Code: "too_short", Message: "must be at least 12 characters"},
		{Field: "password", Code: "needs_uppercase", Message: "must contain an uppercase letter"},
		{Field: "password", Code: "needs_digit", Message: "must contain a digit"},
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		want   []fielderr.Field
	}{
		{name: "create refused", method: "POST", path: "/admin/users", body: `{"username":"carol","password":"short"}`,
			status: http.StatusUnprocessableEntity, want: strict},
		{name: "create, only the digit missing", method: "POST", path: "/admin/users",
			body:   `{"username":"carol","password":"Long Enough Passphrase"}`,
			status: http.StatusUnprocessableEntity, want: []fielderr.Field{{Field: "password", Code: "needs_digit", Message: "must contain a digit"}}},
		{name: "create with the username refused too", method: "POST", path: "/admin/users",
			body:   `{"username":"carol","password":"x","email":"not an address"}`,
			status: http.StatusUnprocessableEntity, want: append(slices.Clone(strict), fielderr.Field{Field: "email", Message: "is not a valid email address"})},
		{name: "create accepted", method: "POST", path: "/admin/users", body: `{"username":"carol","password":"Twelve chars 1"}`,
			status: http.StatusCreated},
		{name: "reset refused", method: "PUT", path: "/admin/users/" + alice + "/password", body: `{"password":"short"}`,
			status: http.StatusUnprocessableEntity, want: strict},
		{name: "reset accepted", method: "PUT", path: "/admin/users/" + alice + "/password", body: `{"password":"Twelve chars 1"}`,
			status: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			newSessionFixture(t, e.store)
			wantStatus(t, e.doAs(t, "PATCH", "/admin/policies", mergePatchType,
				`{"password":{"min_length":12,"min_uppercase":1,"min_digits":1}}`), http.StatusOK)
			rec := e.do(t, tt.method, tt.path, adminToken, tt.body)
			wantStatus(t, rec, tt.status)
			if tt.want == nil {
				return
			}
			if !strings.Contains(rec.Body.String(), `"code":"too_short"`) && tt.want[0].Code == "too_short" {
				t.Errorf("the answer does not carry the codes: %s", rec.Body)
			}
			if got := decode[errorBody](t, rec).Fields; !slices.Equal(got, tt.want) {
				t.Errorf("fields = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestPasswordPolicyPatchValidation checks that an invalid password
// section is refused, naming the field.
func TestPasswordPolicyPatchValidation(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		field string
	}{
		{name: "min_length under 6", patch: `{"password":{"min_length":5}}`, field: "password.min_length"},
		{name: "max_length not above min_length", patch: `{"password":{"min_length":20,"max_length":20}}`, field: "password.max_length"},
		{name: "negative count", patch: `{"password":{"min_special":-1}}`, field: "password.min_special"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.doAs(t, "PATCH", "/admin/policies", mergePatchType, tt.patch)
			wantStatus(t, rec, http.StatusUnprocessableEntity)
			if got := fieldNames(t, rec); !slices.Contains(got, tt.field) {
				t.Errorf("fields = %q, want %s", got, tt.field)
			}
		})
	}
}
