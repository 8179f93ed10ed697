package storage_test

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/cases"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/storage"
)

func TestNormalizeUsername(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the normalized form, when valid
		problem  string // the message for the username field, when not
	}{
		{name: "ascii", in: "alice", want: "alice"},
		{name: "mixed case", in: "AlIcE", want: "alice"},
		{name: "surrounding spaces", in: " \tAlice\u3000\n", want: "alice"},
		{name: "ascii punctuation", in: "Alice.Smith+test@Example.com", want: "alice.smith+test@example.com"},
		{name: "leading digit", in: "007", want: "007"},
		{name: "nfc", in: "jos\u00e9", want: "jos\u00e9"},
		{name: "nfd becomes nfc", in: "jose\u0301", want: "jos\u00e9"},
		{name: "nfd upper case", in: "JOSE\u0301", want: "jos\u00e9"},
		{name: "fullwidth", in: "\uff41\uff4c\uff49\uff43\uff45", want: "alice"},
		{name: "fullwidth upper case", in: "\uff21\uff2c\uff29\uff23\uff25", want: "alice"},
		{name: "halfwidth katakana", in: "\uff71", want: "\u30a2"},
		{name: "sharp s folds as before", in: "Stra\u00dfe", want: "strasse"},
		{name: "already folded", in: "strasse", want: "strasse"},
		{name: "final sigma folds as before", in: "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c2", want: "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3"},
		{name: "dotted capital I", in: "\u0130stanbul", want: "i\u0307stanbul"},
		{name: "right-to-left script", in: "\u05e9\u05dc\u05d5\u05dd", want: "\u05e9\u05dc\u05d5\u05dd"},
		{name: "at the length limit", in: strings.Repeat("a", storage.MaxUsernameLength), want: strings.Repeat("a", storage.MaxUsernameLength)},
		{name: "limit counts normalized characters", in: strings.Repeat("e\u0301", storage.MaxUsernameLength),
			want: strings.Repeat("\u00e9", storage.MaxUsernameLength)},

		{name: "empty", in: "", problem: "is required"},
		{name: "spaces only", in: " \t\u3000 ", problem: "is required"},
		{name: "zero width space", in: "alice\u200b", problem: "contains an invisible or direction-changing character (U+200B)"},
		{name: "right-to-left override", in: "\u202eecila", problem: "contains an invisible or direction-changing character (U+202E)"},
		{name: "left-to-right mark", in: "al\u200eice", problem: "contains an invisible or direction-changing character (U+200E)"},
		{name: "right-to-left isolate", in: "alice\u2067", problem: "contains an invisible or direction-changing character (U+2067)"},
		{name: "arabic letter mark", in: "alice\u061c", problem: "contains an invisible or direction-changing character (U+061C)"},
		{name: "byte order mark", in: "\ufeffalice", problem: "contains an invisible or direction-changing character (U+FEFF)"},
		{name: "zero width joiner", in: "ali\u200dce", problem: "contains an invisible or direction-changing character (U+200D)"},
		{name: "zero width non-joiner", in: "ali\u200cce", problem: "contains an invisible or direction-changing character (U+200C)"},
		{name: "word joiner", in: "ali\u2060ce", problem: "contains an invisible or direction-changing character (U+2060)"},
		{name: "soft hyphen", in: "ali\u00adce", problem: "contains an invisible or direction-changing character (U+00AD)"},
		{name: "variation selector", in: "alice\ufe0f", problem: "contains an invisible or direction-changing character (U+FE0F)"},
		{name: "ideographic variation selector", in: "alice\U000e0100", problem: "contains an invisible or direction-changing character (U+E0100)"},
		{name: "tag character", in: "alice\U000e0041", problem: "contains an invisible or direction-changing character (U+E0041)"},
		{name: "combining grapheme joiner", in: "ali\u034fce", problem: "contains an invisible or direction-changing character (U+034F)"},
		{name: "hangul filler", in: "ali\u3164ce", problem: "contains an invisible or direction-changing character (U+3164)"},
		{name: "NUL", in: "ali\x00ce", problem: "must not contain control characters (U+0000)"},
		{name: "tab inside", in: "ali\tce", problem: "must not contain control characters (U+0009)"},
		{name: "C1 control", in: "ali\u0085ce", problem: "must not contain control characters (U+0085)"},
		{name: "inner space", in: "alice smith", problem: "must not contain spaces (U+0020)"},
		{name: "inner no-break space", in: "alice\u00a0smith", problem: "must not contain spaces (U+00A0)"},
		{name: "not UTF-8", in: "ali\xffce", problem: "is not valid UTF-8"},
		{name: "symbol", in: "alice\U0001f600", problem: `must not contain "😀" (U+1F600); a username is letters, digits and ASCII punctuation`},
		{name: "compatibility character", in: "\u2168", problem: `must not contain "Ⅸ" (U+2168); a username is letters, digits and ASCII punctuation`},
		{name: "mixed directions", in: "alice\u05d0", problem: "mixes writing directions, or starts with a combining mark, in a way usernames do not allow"},
		{name: "leading combining mark", in: "\u0301alice", problem: "mixes writing directions, or starts with a combining mark, in a way usernames do not allow"},
		{name: "too long", in: strings.Repeat("a", storage.MaxUsernameLength+1), problem: "must be at most 128 characters"},
		{name: "far too long", in: strings.Repeat("a", 1<<20), problem: "must be at most 128 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := storage.NormalizeUsername(tt.in)
			if tt.problem != "" {
				fe, ok := fielderr.As(err)
				want := []fielderr.Field{{Field: "username", Message: tt.problem}}
				if !ok || !slices.Equal(fe.Fields, want) || got != "" {
					t.Errorf("NormalizeUsername(%+.40q) = %+q, %v; want the error %v", tt.in, got, err, want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeUsername(%+.40q) = %+.40q, %v; want %+.40q", tt.in, got, err, tt.want)
			}
			// Storage normalizes what it is given, often already normal:
			// a second pass must change nothing.
			if again, err := storage.NormalizeUsername(got); err != nil || again != got {
				t.Errorf("NormalizeUsername(%+.40q) = %+.40q, %v; not idempotent", got, again, err)
			}
		})
	}
}

// TestNormalizeUsernameKeepsStoredNames checks, character by character, that
// every ASCII name stored by the case fold used before PRECIS normalizes to
// the same string, so no existing account is lost.
func TestNormalizeUsernameKeepsStoredNames(t *testing.T) {
	for c := rune('!'); c <= '~'; c++ {
		for _, name := range []string{"a" + string(c), string(c) + "a", "A" + string(c) + "Z"} {
			before := cases.Fold().String(name)
			if got, err := storage.NormalizeUsername(name); err != nil || got != before {
				t.Errorf("NormalizeUsername(%q) = %q, %v; the case fold stored %q", name, got, err, before)
			}
		}
	}
}
