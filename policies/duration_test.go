package policies

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationText(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		text string
	}{
		{"15m", 15 * time.Minute, "15m"},
		{"168h", 168 * time.Hour, "168h"},
		{"168h0m0s", 168 * time.Hour, "168h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"1h0m1s", time.Hour + time.Second, "1h0m1s"},
		{"1.5s", 1500 * time.Millisecond, "1.5s"},
		{"250ms", 250 * time.Millisecond, "250ms"},
		{"0s", 0, "0s"},
		{"-1h", -time.Hour, "-1h"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			if err := d.UnmarshalText([]byte(tt.in)); err != nil || d.D() != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.D(), err, tt.want)
			}
			if text, _ := d.MarshalText(); string(text) != tt.text {
				t.Errorf("MarshalText = %q, want %q", text, tt.text)
			}
			j, err := json.Marshal(d)
			if err != nil || string(j) != `"`+tt.text+`"` {
				t.Errorf("json.Marshal = %s, %v; want %q", j, err, tt.text)
			}
			var back Duration
			if err := json.Unmarshal(j, &back); err != nil || back != d {
				t.Errorf("JSON round trip = %v, %v; want %v", back, err, d)
			}
		})
	}
}

func TestDurationJSONErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`900`, `must be a duration string such as "15m"`},
		{`true`, `must be a duration string such as "15m"`},
		{`{"h":1}`, `must be a duration string such as "15m"`},
		{`"soon"`, `invalid duration "soon": must be a duration string such as "15m"`},
		{`""`, `invalid duration "": must be`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalJSON([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("UnmarshalJSON(%s) = %v, want error containing %q", tt.in, err, tt.want)
			}
		})
	}
	t.Run("null is a no-op", func(t *testing.T) {
		d := Duration(time.Minute)
		if err := d.UnmarshalJSON([]byte("null")); err != nil || d != Duration(time.Minute) {
			t.Errorf("UnmarshalJSON(null) = %v, %v; want 1m unchanged", d, err)
		}
	})
}

func TestCookieLifetime(t *testing.T) {
	tests := []struct {
		in      string
		want    CookieLifetime
		wantErr string
	}{
		{in: `"browser"`, want: CookieLifetime{Browser: true}},
		{in: `"336h"`, want: CookieLifetime{Duration: Duration(336 * time.Hour)}},
		{in: `"1h30m"`, want: CookieLifetime{Duration: Duration(90 * time.Minute)}},
		// Zero and negative parse: Validate refuses them with the key.
		{in: `"0s"`, want: CookieLifetime{}},
		{in: `"Browser"`, wantErr: `invalid cookie lifetime "Browser"`},
		{in: `3600`, wantErr: `must be "browser" or a duration string such as "336h"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got CookieLifetime
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Unmarshal(%s) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Unmarshal(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			out, err := json.Marshal(got)
			if err != nil || string(out) != tt.in {
				t.Errorf("Marshal = %s, %v; want %s", out, err, tt.in)
			}
			var back CookieLifetime
			if err := back.UnmarshalText([]byte(got.String())); err != nil || back != got {
				t.Errorf("text round trip via %q = %+v, %v", got.String(), back, err)
			}
		})
	}
}
