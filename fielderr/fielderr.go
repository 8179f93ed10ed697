// Package fielderr is the one error type for input that fails validation:
// every problem found, each naming the field at fault, so the admin API, the
// CLI and the policy engine report bad input the same way. It imports nothing
// from the project.
package fielderr

import (
	"errors"
	"fmt"
	"strings"
)

// Field is one problem with one input field. Field uses dotted paths and
// indexes ("redirect_uris[1]", "token.access_token_ttl").
type Field struct {
	Field string `json:"field"`
	// Code names the problem for programs ("too_short") where the input's
	// rules have codes; "" for the rest, whose message is the whole story.
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// Error collects every problem with an input; the zero value is ready to use.
type Error struct {
	Fields []Field
}

// Add records a problem with field.
func (e *Error) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, Field{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e when it holds a problem, nil otherwise.
func (e *Error) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

// New returns an error about one field.
func New(field, format string, args ...any) error {
	e := &Error{}
	e.Add(field, format, args...)
	return e
}

// As extracts the field errors from err, if it carries any.
func As(err error) (*Error, bool) {
	var fe *Error
	ok := errors.As(err, &fe)
	return fe, ok
}
