package oauth

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/storage"
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
	if name, ok := firstParam(params, func(k string, vs []string) bool { return len(vs) > 1 && !repeatable(k) }); ok {
		return fosite.ErrInvalidRequest.WithHintf("The parameter %q is given more than once.", name)
	}
	if name, ok := firstParam(r.Form, func(k string, vs []string) bool {
		return !storage.StorableText(k) || slices.ContainsFunc(vs, func(v string) bool { return !storage.StorableText(v) })
	}); ok {
		return fosite.ErrInvalidRequest.WithHintf("The parameter %q holds a NUL byte or invalid UTF-8.", strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", ""), "?"))
	}
	return nil
}

// firstParam returns, in name order so the answer is stable, the first
// parameter bad reports.
func firstParam(v url.Values, bad func(name string, values []string) bool) (string, bool) {
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if bad(k, v[k]) {
			return k, true
		}
	}
	return "", false
}
