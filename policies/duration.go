package policies

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const (
	durationWanted = `must be a duration string such as "15m"`
	cookieWanted   = `must be "browser" or a duration string such as "336h"`
	browserText    = "browser"
)

// Duration is a time.Duration whose text and JSON form is a Go duration
// string. A defined type rather than a struct wrapper, so that arithmetic
// needs only a conversion and zero compares with ==.
type Duration time.Duration

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String is the shortest form that parses back, e.g. "168h".
func (d Duration) String() string { return formatDuration(time.Duration(d)) }

// MarshalText writes the shortest form ("168h", not "168h0m0s"), which is
// what a person would write and what Canonical compares.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string. Negative values parse; Validate
// refuses them with the key's path, which a parser cannot know.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q: %s", text, durationWanted)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts only a JSON string: a bare number would be
// ambiguous (seconds? nanoseconds?), so it is refused rather than guessed.
// null is a no-op, as encoding/json's convention asks.
func (d *Duration) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%s", durationWanted)
	}
	return d.UnmarshalText([]byte(s))
}

// CookieLifetime is how long the login cookie lives: until the browser
// closes (Browser), or for Duration.
type CookieLifetime struct {
	Browser  bool
	Duration Duration
}

// String is "browser" or the duration's short form.
func (c CookieLifetime) String() string {
	if c.Browser {
		return browserText
	}
	return c.Duration.String()
}

// MarshalText writes the same text as String.
func (c CookieLifetime) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText accepts "browser" or a Go duration string. A non-positive
// duration parses; Validate refuses it with the key's path.
func (c *CookieLifetime) UnmarshalText(text []byte) error {
	if string(text) == browserText {
		*c = CookieLifetime{Browser: true}
		return nil
	}
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid cookie lifetime %q: %s", text, cookieWanted)
	}
	*c = CookieLifetime{Duration: Duration(v)}
	return nil
}

// MarshalJSON writes a JSON string.
func (c CookieLifetime) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON accepts only a JSON string; null is a no-op.
func (c *CookieLifetime) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%s", cookieWanted)
	}
	return c.UnmarshalText([]byte(s))
}

// formatDuration drops the zero minutes and seconds time.Duration.String
// appends, so that messages and stored documents read like the input did.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func isNull(data []byte) bool {
	return strings.TrimSpace(string(data)) == "null"
}
