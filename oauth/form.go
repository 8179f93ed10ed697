package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ory/fosite"
)

// maxFormBody bounds the body of every OAuth endpoint: a token request
// with a client assertion fits many times over.
const maxFormBody = 64 << 10

// repeatable are the parameters an extension lets a client send more than
// once (RFC 8707 resource indicators, fosite's audience).
func repeatable(name string) bool { return name == "resource" || name == "audience" }

// errBodyTooLarge is a body over maxFormBody: 413, in RFC 6749's shape.
var errBodyTooLarge = &fosite.RFC6749Error{
	ErrorField:       fosite.ErrInvalidRequest.ErrorField,
	DescriptionField: "The request is too large.",
	HintField:        "The body of an OAuth request may be at most 64 KiB.",
	CodeField:        http.StatusRequestEntityTooLarge,
}

// parseOAuthForm reads an OAuth request's parameters and refuses what RFC
// 6749 forbids before any handler acts on it: malformed encoding (a
// parameter silently dropped would change the request's meaning) and a
// parameter given twice (3.1, 3.2: "MUST NOT be included more than once").
// For a POST only the body counts, as the token, revocation and
// introspection endpoints read only the body.
func parseOAuthForm(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	}
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errBodyTooLarge
		}
		return fosite.ErrInvalidRequest.WithHint("The request parameters are not validly form-encoded.").WithWrap(err)
	}
	params := r.Form
	if r.Method == http.MethodPost {
		params = r.PostForm
	}
	if name, ok := repeated(params); ok {
		return fosite.ErrInvalidRequest.WithHintf("The parameter %q is given more than once.", name)
	}
	if name, ok := unstorable(r.Form); ok {
		return fosite.ErrInvalidRequest.WithHintf("The parameter %q holds a NUL byte or invalid UTF-8.", name)
	}
	return nil
}

// unstorable returns the first (by name) parameter whose name or value
// holds a NUL byte or invalid UTF-8: PostgreSQL refuses both in text, so
// they are bad input, not a server error, on every backend alike.
func unstorable(v url.Values) (string, bool) {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !storableText(k) {
			return strings.ToValidUTF8(strings.ReplaceAll(k, "\x00", ""), "?"), true
		}
		for _, val := range v[k] {
			if !storableText(val) {
				return k, true
			}
		}
	}
	return "", false
}

// storableText reports whether s can be stored as text on every backend.
func storableText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// repeated returns the first (by name) parameter sent more than once.
func repeated(v url.Values) (string, bool) {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if len(v[k]) > 1 && !repeatable(k) {
			return k, true
		}
	}
	return "", false
}
