package storagetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/storage"
)

// Spellings of one name that look alike and must be one account.
const (
	joseNFC       = "jos\u00e9"  // é precomposed
	joseNFD       = "jose\u0301" // e + combining acute accent
	aliceFullwide = "\uff41\uff4c\uff49\uff43\uff45"
)

// usernameCases check that every write and every lookup by username goes
// through storage.NormalizeUsername on each backend: look-alike spellings
// are one account, and what cannot be a username is never stored and finds
// nobody, answering exactly like an unknown name.
func usernameCases() []suiteCase {
	return []suiteCase{
		{"Usernames/NFCAndNFDAreOneAccount", func(t *testing.T, s *storage.Store, _ *Clock) {
			u := createUser(t, s, "u1", joseNFD)
			if u.Username != joseNFC {
				t.Errorf("CreateUser(%+q) stored %+q, want the NFC %+q", joseNFD, u.Username, joseNFC)
			}
			for _, tc := range []struct{ id, username string }{
				{"u2", joseNFC},
				{"u3", joseNFD},
				{"u4", "JOS\u00c9"},
				{"u5", "JOSE\u0301"},
			} {
				err := s.CreateUser(t.Context(), &storage.User{ID: tc.id, Username: tc.username})
				wantErr(t, "CreateUser("+tc.id+", "+tc.username+")", err, storage.ErrConflict)
			}
			for _, username := range []string{joseNFC, joseNFD, "Jos\u00c9", " JOSE\u0301 "} {
				got, err := s.UserByUsername(t.Context(), username)
				if err != nil || got.ID != "u1" {
					t.Errorf("UserByUsername(%+q) = %v, %v; want user u1", username, got, err)
				}
			}
		}},
		{"Usernames/FullwidthIsTheASCIIName", func(t *testing.T, s *storage.Store, _ *Clock) {
			u := createUser(t, s, "u1", aliceFullwide)
			if u.Username != "alice" {
				t.Errorf("CreateUser(%+q) stored %+q, want %q", aliceFullwide, u.Username, "alice")
			}
			err := s.CreateUser(t.Context(), &storage.User{ID: "u2", Username: "Alice"})
			wantErr(t, "CreateUser(u2, Alice)", err, storage.ErrConflict)
			for _, username := range []string{"alice", aliceFullwide, "\uff21\uff2c\uff29\uff23\uff25"} {
				got, err := s.UserByUsername(t.Context(), username)
				if err != nil || got.ID != "u1" {
					t.Errorf("UserByUsername(%+q) = %v, %v; want user u1", username, got, err)
				}
			}
		}},
		{"Usernames/FoldedAsBefore", func(t *testing.T, s *storage.Store, _ *Clock) {
			// The canonical form of a name stored before PRECIS was its
			// case fold; these must be what is stored and found still.
			for _, tc := range []struct{ id, username, stored string }{
				{"u1", "Stra\u00dfe", "strasse"},
				{"u2", "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3"},
			} {
				if u := createUser(t, s, tc.id, tc.username); u.Username != tc.stored {
					t.Errorf("CreateUser(%q) stored %+q, want %+q", tc.username, u.Username, tc.stored)
				}
			}
			for _, tc := range []struct{ username, wantID string }{
				{"strasse", "u1"},
				{"STRASSE", "u1"},
				{"stra\u00dfe", "u1"},
				{"\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c2", "u2"}, // final sigma
			} {
				got, err := s.UserByUsername(t.Context(), tc.username)
				if err != nil || got.ID != tc.wantID {
					t.Errorf("UserByUsername(%+q) = %v, %v; want user %s", tc.username, got, err, tc.wantID)
				}
			}
		}},
		{"Usernames/InvalidRefusedAtCreate", func(t *testing.T, s *storage.Store, _ *Clock) {
			for _, username := range invalidUsernames() {
				err := s.CreateUser(t.Context(), &storage.User{ID: "u1", Username: username})
				if err == nil || errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrUnavailable) ||
					!strings.Contains(err.Error(), "username: ") {
					t.Errorf("CreateUser(%+.40q) = %v, want an error naming the username field", username, err)
				}
			}
			users, err := s.ListUsers(t.Context(), "", 10)
			must(t, "ListUsers", err)
			if len(users) != 0 {
				t.Errorf("refused usernames left users %+v", users)
			}
		}},
		{"Usernames/InvalidFindsNobody", func(t *testing.T, s *storage.Store, _ *Clock) {
			createUser(t, s, "u1", "alice")
			for _, username := range invalidUsernames() {
				got, err := s.UserByUsername(t.Context(), username)
				if !errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable) {
					t.Errorf("UserByUsername(%+.40q) = %v, %v; want only ErrNotFound, as for an unknown name", username, got, err)
				}
			}
		}},
	}
}

// invalidUsernames are refused at creation and find nobody at sign-in; most
// would be "alice" to the eye.
func invalidUsernames() []string {
	return []string{
		"",
		"   ",
		"alice\u200b", // ZERO WIDTH SPACE
		"\u202ealice", // RIGHT-TO-LEFT OVERRIDE
		"al\u200eice", // LEFT-TO-RIGHT MARK
		"\ufeffalice", // BYTE ORDER MARK
		"ali\u200dce", // ZERO WIDTH JOINER
		"alice\ufe0f", // VARIATION SELECTOR-16
		"ali\u3164ce", // HANGUL FILLER
		"ali\x00ce",   // NUL: PostgreSQL would refuse to store it
		"ali\xffce",   // not UTF-8: PostgreSQL would refuse it too
		"alice smith", // a space
		"alice\u05d0", // mixed writing directions
		strings.Repeat("a", storage.MaxUsernameLength+1),
		strings.Repeat("a", 1<<20),
	}
}
