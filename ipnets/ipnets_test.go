package ipnets

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		want    []string
		wantIdx int // index named by the error; -1 for success
	}{
		{name: "none", entries: nil, want: []string{}, wantIdx: -1},
		{name: "ipv4 cidr", entries: []string{"10.0.0.0/8"}, want: []string{"10.0.0.0/8"}, wantIdx: -1},
		{name: "host bits masked", entries: []string{"10.1.2.3/8"}, want: []string{"10.0.0.0/8"}, wantIdx: -1},
		{name: "bare ipv4", entries: []string{"192.0.2.7"}, want: []string{"192.0.2.7/32"}, wantIdx: -1},
		{name: "bare ipv6", entries: []string{"2001:db8::1"}, want: []string{"2001:db8::1/128"}, wantIdx: -1},
		{name: "ipv6 cidr", entries: []string{"fd00::/8"}, want: []string{"fd00::/8"}, wantIdx: -1},
		{name: "mapped ipv4 cidr", entries: []string{"::ffff:10.0.0.0/104"}, want: []string{"10.0.0.0/8"}, wantIdx: -1},
		{name: "mapped bare ipv4", entries: []string{"::ffff:192.0.2.7"}, want: []string{"192.0.2.7/32"}, wantIdx: -1},
		{name: "zone dropped", entries: []string{"fe80::1%eth0"}, want: []string{"fe80::1/128"}, wantIdx: -1},
		{name: "whitespace", entries: []string{" 127.0.0.1 "}, want: []string{"127.0.0.1/32"}, wantIdx: -1},
		{name: "several", entries: []string{"10.0.0.0/8", "::1"}, want: []string{"10.0.0.0/8", "::1/128"}, wantIdx: -1},
		{name: "garbage", entries: []string{"proxy.internal"}, wantIdx: 0},
		{name: "bad prefix length names its index", entries: []string{"::1", "10.0.0.0/33"}, wantIdx: 1},
		{name: "empty entry", entries: []string{"10.0.0.0/8", "", "::1"}, wantIdx: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.entries)
			if tt.wantIdx >= 0 {
				ee, ok := errors.AsType[*EntryError](err)
				if !ok {
					t.Fatalf("Parse(%q) = %v, %v; want an *EntryError", tt.entries, l, err)
				}
				if ee.Index != tt.wantIdx || ee.Entry != tt.entries[tt.wantIdx] || !errors.Is(err, ErrNotAnAddress) {
					t.Fatalf("error %v names entry %d %q, want %d (and ErrNotAnAddress)", err, ee.Index, ee.Entry, tt.wantIdx)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.entries, err)
			}
			if got := l.Strings(); !slices.Equal(got, tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.entries, got, tt.want)
			}
		})
	}
}

func TestContains(t *testing.T) {
	l, err := Parse([]string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string // "" is the invalid address
		want bool
	}{
		{"10.200.0.1", true},
		{"11.0.0.1", false},
		{"192.0.2.1", true},
		{"192.0.2.2", false},
		{"2001:db8:ffff::9", true},
		{"2001:db8:fffe::9", false},
		{"::ffff:10.0.0.1", true}, // mapped: the IPv4 rule applies
		{"2001:db8:ffff::9%eth0", true},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			var a netip.Addr
			if tt.addr != "" {
				a = netip.MustParseAddr(tt.addr)
			}
			if got := l.Contains(a); got != tt.want {
				t.Fatalf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if (List{}).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("the empty list contains an address")
	}
}
