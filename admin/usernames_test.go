package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// userBody is a POST /admin/users body; JSON-encoded so that invisible and
// control characters arrive exactly as written.
func userBody(t *testing.T, username, password string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"username": username, "password": password})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateUserRefusesBadUsernames(t *testing.T) {
	tests := []struct {
		name, username, password string
		want                     []fielderr.Field
	}{
		{name: "zero width space", username: "alice\u200b", password: "correct horse",
			want: []fielderr.Field{{Field: "username", Message: "contains an invisible or direction-changing character (U+200B)"}}},
		{name: "right-to-left override", username: "\u202eecila", password: "correct horse",
			want: []fielderr.Field{{Field: "username", Message: "contains an invisible or direction-changing character (U+202E)"}}},
		{name: "byte order mark", username: "\ufeffalice", password: "correct horse",
			want: []fielderr.Field{{Field: "username", Message: "contains an invisible or direction-changing character (U+FEFF)"}}},
		{name: "tab", username: "ali\tce", password: "correct horse",
			want: []fielderr.Field{{Field: "username", Message: "must not contain control characters (U+0009)"}}},
		{name: "inner space", username: "alice smith", password: "correct horse",
			want: []fielderr.Field{{Field: "username", Message: "must not contain spaces (U+0020)"}}},
		{name: "spaces only", username: " \u3000 ", password: "correct horse",
			want: []fielderr.Field{{Field: "username", Message: "is required"}}},
		{name: "too long", username: strings.Repeat("a", 129), password: "correct horse",
			want: []fielderr.Field{{Field: "username", Message: "must be at most 128 characters"}}},
		{name: "every problem at once", username: "alice\u200b", password: "short",
			want: []fielderr.Field{
				{Field: "username", Message: "contains an invisible or direction-changing character (U+200B)"},
				{Field: "password", Code: "too_short", Message: "must be at least 8 characters"},
			}},
	}
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			store := storagetest.Open(t, b.URL)
			e := newEnvWith(t, store, store)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := snapshot(t, store)
					rec := e.do(t, "POST", "/admin/users", adminToken, userBody(t, tt.username, tt.password))
					wantStatus(t, rec, http.StatusUnprocessableEntity)
					body := decode[errorBody](t, rec)
					if body.Error != "invalid_request" || !slices.Equal(body.Fields, tt.want) {
						t.Errorf("body = %+v, want invalid_request with fields %+v", body, tt.want)
					}
					if after := snapshot(t, store); after != before {
						t.Errorf("a refused username changed the store:\nbefore %s\nafter  %s", before, after)
					}
				})
			}
			if got := auditEvents(t, store, audit.TypeUserCreated); len(got) != 0 {
				t.Errorf("refused usernames recorded %+v", got)
			}
		})
	}
}

func TestCreateUserLookAlikesAreOneAccount(t *testing.T) {
	tests := []struct {
		name, first, second string
		stored              string // the name both are, as shown and as the conflict names it
	}{
		{name: "NFC then NFD", first: "jos\u00e9", second: "jose\u0301", stored: "jos\u00e9"},
		{name: "NFD then NFC", first: "jose\u0301", second: "Jos\u00e9", stored: "jos\u00e9"},
		{name: "fullwidth then ASCII", first: "\uff41\uff4c\uff49\uff43\uff45", second: "Alice", stored: "alice"},
		{name: "ASCII then fullwidth", first: "alice", second: "\uff21\uff2c\uff29\uff23\uff25", stored: "alice"},
	}
	for _, tt := range tests {
		// Backends per case: each runs on a fresh database.
		for _, b := range storagetest.Backends(t) {
			t.Run(tt.name+"/"+b.Name, func(t *testing.T) {
				store := storagetest.Open(t, b.URL)
				e := newEnvWith(t, store, store)
				rec := e.do(t, "POST", "/admin/users", adminToken, userBody(t, tt.first, "correct horse"))
				wantStatus(t, rec, http.StatusCreated)
				if got := decode[UserView](t, rec).Username; got != tt.stored {
					t.Errorf("created %+q, want %+q", got, tt.stored)
				}
				before := snapshot(t, store)
				rec = e.do(t, "POST", "/admin/users", adminToken, userBody(t, tt.second, "correct horse"))
				wantStatus(t, rec, http.StatusConflict)
				body := decode[errorBody](t, rec)
				if want := `a user named "` + tt.stored + `" already exists`; body.Error != "conflict" || body.Description != want {
					t.Errorf("body = %+v, want conflict: %s", body, want)
				}
				if after := snapshot(t, store); after != before {
					t.Errorf("the look-alike changed the store:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	}
}
