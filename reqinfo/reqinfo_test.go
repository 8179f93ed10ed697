package reqinfo

import (
	"net/netip"
	"strings"
	"testing"
)

func TestFromWithout(t *testing.T) {
	if got := From(t.Context()); got != (Info{}) {
		t.Fatalf("From(empty) = %+v, want the zero Info", got)
	}
	if got := From(t.Context()).IPString(); got != "" {
		t.Fatalf("IPString of the zero Info = %q, want empty", got)
	}
}

func TestWithAndFrom(t *testing.T) {
	in := Info{IP: netip.MustParseAddr("2001:db8::7"), RequestID: "req-1", DeviceID: "dev-1"}
	got := From(With(t.Context(), in))
	if got != in {
		t.Fatalf("From(With(%+v)) = %+v", in, got)
	}
	if got.IPString() != "2001:db8::7" {
		t.Fatalf("IPString = %q", got.IPString())
	}
}

func TestWithDevice(t *testing.T) {
	base := Info{IP: netip.MustParseAddr("192.0.2.1"), RequestID: "req-1", DeviceID: "cookie-device"}
	tests := []struct {
		name string
		base *Info // nil: no Info in the context yet
		id   string
		want Info
	}{
		{name: "replaces the device, keeps the rest", base: &base, id: "app-install-42",
			want: Info{IP: base.IP, RequestID: "req-1", DeviceID: "app-install-42"}},
		{name: "invalid id keeps the device", base: &base, id: "bad id", want: base},
		{name: "empty id keeps the device", base: &base, id: "", want: base},
		{name: "without middleware", id: "app-install-42", want: Info{DeviceID: "app-install-42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.base != nil {
				ctx = With(ctx, *tt.base)
			}
			if got := From(WithDevice(ctx, tt.id)); got != tt.want {
				t.Fatalf("From(WithDevice(%q)) = %+v, want %+v", tt.id, got, tt.want)
			}
			if tt.base != nil && From(ctx) != *tt.base {
				t.Fatal("WithDevice changed the parent context")
			}
		})
	}
}

func TestValidDeviceID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"A-z_0.9~", true},
		{"3f2c1a9e-7b4d-4e8a-9c1f-2d6b8a0e5f13", true},
		{strings.Repeat("x", MaxDeviceIDLen), true},
		{strings.Repeat("x", MaxDeviceIDLen+1), false},
		{"", false},
		{"with space", false},
		{"line\nbreak", false},
		{"slash/", false},
		{"plus+", false},
		{"émoji", false},
	}
	for _, tt := range tests {
		if got := ValidDeviceID(tt.id); got != tt.want {
			t.Errorf("ValidDeviceID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
