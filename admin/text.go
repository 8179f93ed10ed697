package admin

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/storage"
)

// Text a database cannot store is refused here, before any handler acts.
// PostgreSQL rejects NUL bytes and invalid UTF-8 in text, even as a query
// argument (storage reports that as ErrUnavailable, so the caller would be
// told 503, "try again"), while SQLite keeps them, so the same request would
// answer differently per backend; either way such text is the sender's
// mistake (storage.StorableText). Two checks cover all the text the API
// takes: checkURLText, which adapt runs for every route, sees every path
// value and query parameter; readBody and checkJSONText, which every body
// reader runs, see every string and object key of a JSON body. Checking all
// of it, used or not, means a handler that starts reading a new parameter or
// field is covered without anyone remembering to.

// unstorable says what is wrong with s, "" when it can be stored.
func unstorable(s string) string {
	switch {
	case storage.StorableText(s):
		return ""
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	default:
		return "must not contain a NUL character"
	}
}

// textRefused is the 400 for unstorable text, naming every field at fault.
func textRefused(where string, problems *fielderr.Error) error {
	return badRequest(problems, where+" holds text that cannot be accepted: "+problems.Error(), problems.Fields...)
}

// pathWildcards lists the wildcard names of a ServeMux pattern
// ("GET /admin/users/{id}/sessions" → ["id"]), so that adapt knows which
// path values the route has: the request cannot list them itself.
func pathWildcards(pattern string) []string {
	var names []string
	rest := pattern
	for {
		_, after, ok := strings.Cut(rest, "{")
		if !ok {
			return names
		}
		name, tail, _ := strings.Cut(after, "}")
		if name = strings.TrimSuffix(name, "..."); name != "" && name != "$" {
			names = append(names, name)
		}
		rest = tail
	}
}

// checkURLText refuses a request whose path values (the route's wildcards)
// or query parameters, names or values, cannot be stored. Path values come
// first, then parameters in name order, so that the answer is stable.
func checkURLText(r *http.Request, wildcards []string) error {
	var problems fielderr.Error
	for _, name := range wildcards {
		if msg := unstorable(r.PathValue(name)); msg != "" {
			problems.Add(name, "%s", msg)
		}
	}
	q := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if msg := unstorable(name); msg != "" {
			problems.Add(escapeQueryName(name), "the parameter name %s", msg)
			continue
		}
		for _, v := range q[name] {
			if msg := unstorable(v); msg != "" {
				problems.Add(name, "%s", msg)
				break
			}
		}
	}
	if problems.Err() == nil {
		return nil
	}
	return textRefused("the request URL", &problems)
}

// escapeQueryName shows a parameter name with its NUL and invalid bytes
// percent-encoded, as the sender wrote them, rather than putting raw NULs
// in the response.
func escapeQueryName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == 0 || (r == utf8.RuneError && size == 1) {
			fmt.Fprintf(&b, "%%%02X", s[i])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// readBody reads a request body of at most maxBodyBytes and refuses one
// that is not valid UTF-8, naming "body". JSON exchanged between systems
// must be UTF-8 (RFC 8259 section 8.1), and encoding/json does not refuse
// invalid bytes inside strings but silently replaces each with U+FFFD: a
// client_name or a redirect URI would be stored different from what was
// sent, with nobody told (a redirect URI then never matches what the
// application sends). Refusing is also what the sign-in forms and the OAuth
// endpoints do with invalid UTF-8. The bad string cannot be named, as the
// decoder has replaced it by then; the description gives its byte offset.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, decodeError(fmt.Errorf("read request body: %w", err))
	}
	if !utf8.Valid(body) {
		at := invalidUTF8Offset(body)
		return nil, badRequest(errors.New("request body is not valid UTF-8"),
			"the request body is not valid UTF-8 (first invalid byte at offset "+strconv.Itoa(at)+")",
			fielderr.Field{Field: "body", Message: "must be valid UTF-8"})
	}
	return body, nil
}

// invalidUTF8Offset is the offset of the first byte of b that is not part
// of a valid UTF-8 sequence, or -1.
func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// checkJSONText refuses a JSON body, already read by readBody and known to
// be well-formed, with a string or object key holding a NUL: the "\u0000"
// escape is valid JSON and decodes to a real NUL. Each problem is named by
// its path in the document ("redirect_uris[1]", "token.reauth_for[0]"), the
// path fielderr uses, and every one is reported. The walk covers what typed
// decoding would not look into, such as a json.RawMessage (jwks) or the
// policy merge patch, which is passed on as bytes. (A lone surrogate escape
// such as "\ud800" needs no check: the decoder turns it into U+FFFD, which
// is storable, and the grammar allows it.)
func checkJSONText(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	// Numbers are not looked at; UseNumber keeps one that overflows a
	// float64 from failing the walk.
	dec.UseNumber()
	var problems fielderr.Error
	if err := walkJSONText(dec, "", &problems); err != nil {
		// Only a body the caller failed to validate gets here.
		return decodeError(err)
	}
	if problems.Err() == nil {
		return nil
	}
	return textRefused("the request body", &problems)
}

// walkJSONText reads one JSON value from dec, adding to problems every
// string and key in it that cannot be stored. path is the value's path,
// "" for the whole body. Recursion is bounded: encoding/json refuses
// documents nested deeper than 10000 levels before the walk runs.
func walkJSONText(dec *json.Decoder, path string, problems *fielderr.Error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case string:
		if msg := unstorable(t); msg != "" {
			problems.Add(cmp.Or(path, "body"), "%s", msg)
		}
	case json.Delim:
		switch t {
		case '{':
			for dec.More() {
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := tok.(string)
				member := escapeJSONKey(key)
				if path != "" {
					member = path + "." + member
				}
				if msg := unstorable(key); msg != "" {
					problems.Add(member, "the field name %s", msg)
				}
				if err := walkJSONText(dec, member, problems); err != nil {
					return err
				}
			}
		case '[':
			for i := 0; dec.More(); i++ {
				if err := walkJSONText(dec, path+"["+strconv.Itoa(i)+"]", problems); err != nil {
					return err
				}
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return err
		}
	}
	return nil
}

// escapeJSONKey shows an object key with its NULs as the sender wrote them,
// "\u0000", rather than putting raw NULs in the response.
func escapeJSONKey(key string) string {
	return strings.ReplaceAll(key, "\x00", `\u0000`)
}
