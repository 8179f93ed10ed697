package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestNewClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		wantErr bool
		want    []string // resulting prefixes
	}{
		{name: "none", trusted: nil, want: []string{}},
		{name: "ipv4 cidr", trusted: []string{"10.0.0.0/8"}, want: []string{"10.0.0.0/8"}},
		{name: "host bits masked", trusted: []string{"10.1.2.3/8"}, want: []string{"10.0.0.0/8"}},
		{name: "bare ipv4", trusted: []string{"192.0.2.7"}, want: []string{"192.0.2.7/32"}},
		{name: "bare ipv6", trusted: []string{"2001:db8::1"}, want: []string{"2001:db8::1/128"}},
		{name: "ipv6 cidr", trusted: []string{"fd00::/8"}, want: []string{"fd00::/8"}},
		{name: "mapped ipv4 cidr", trusted: []string{"::ffff:10.0.0.0/104"}, want: []string{"10.0.0.0/8"}},
		{name: "mapped bare ipv4", trusted: []string{"::ffff:192.0.2.7"}, want: []string{"192.0.2.7/32"}},
		{name: "whitespace", trusted: []string{" 127.0.0.1 "}, want: []string{"127.0.0.1/32"}},
		{name: "garbage", trusted: []string{"proxy.internal"}, wantErr: true},
		{name: "bad prefix length", trusted: []string{"10.0.0.0/33"}, wantErr: true},
		{name: "empty entry", trusted: []string{""}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClientIP(tt.trusted)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewClientIP(%q) succeeded, want error", tt.trusted)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClientIP(%q): %v", tt.trusted, err)
			}
			if len(c.trusted) != len(tt.want) {
				t.Fatalf("got %v, want %v", c.trusted, tt.want)
			}
			for i, w := range tt.want {
				if c.trusted[i].String() != w {
					t.Errorf("prefix %d = %s, want %s", i, c.trusted[i], w)
				}
			}
		})
	}
}

func TestClientIPFrom(t *testing.T) {
	c, err := NewClientIP([]string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string // one element per header line
		want   string   // "" means invalid address
	}{
		{name: "untrusted peer", remote: "203.0.113.5:1234", want: "203.0.113.5"},
		{name: "untrusted peer spoofs xff", remote: "203.0.113.5:1234", xff: []string{"1.1.1.1"}, want: "203.0.113.5"},
		{name: "untrusted peer spoofs trusted xff", remote: "203.0.113.5:1234", xff: []string{"10.0.0.1"}, want: "203.0.113.5"},
		{name: "trusted peer without xff", remote: "10.0.0.2:1234", want: "10.0.0.2"},
		{name: "trusted peer single hop", remote: "10.0.0.2:1234", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "client-supplied left part ignored", remote: "10.0.0.2:1234", xff: []string{"1.1.1.1, 198.51.100.7"}, want: "198.51.100.7"},
		{name: "skips trusted hops", remote: "10.0.0.2:1234", xff: []string{"1.1.1.1, 198.51.100.7, 10.9.9.9, 192.0.2.1"}, want: "198.51.100.7"},
		{name: "all hops trusted", remote: "10.0.0.2:1234", xff: []string{"10.0.0.5, 10.0.0.6"}, want: "10.0.0.5"},
		{name: "malformed stops walk", remote: "10.0.0.2:1234", xff: []string{"198.51.100.7, garbage, 10.0.0.9"}, want: "10.0.0.9"},
		{name: "malformed last hop falls back to peer", remote: "10.0.0.2:1234", xff: []string{"198.51.100.7, unknown"}, want: "10.0.0.2"},
		{name: "multiple header lines", remote: "10.0.0.2:1234", xff: []string{"1.1.1.1, 198.51.100.7", "10.0.0.3"}, want: "198.51.100.7"},
		{name: "empty entries tolerated", remote: "10.0.0.2:1234", xff: []string{"198.51.100.7, , 10.0.0.3,"}, want: "198.51.100.7"},
		{name: "hop with port", remote: "10.0.0.2:1234", xff: []string{"198.51.100.7:5555"}, want: "198.51.100.7"},
		{name: "ipv6 hop with port", remote: "10.0.0.2:1234", xff: []string{"[2001:db8::5]:443"}, want: "2001:db8::5"},
		{name: "ipv6 trusted peer", remote: "[2001:db8:ffff::1]:443", xff: []string{"2001:db8:1::9"}, want: "2001:db8:1::9"},
		{name: "ipv6 untrusted peer", remote: "[2001:db8:1::1]:443", xff: []string{"198.51.100.7"}, want: "2001:db8:1::1"},
		{name: "mapped ipv4 peer is trusted", remote: "[::ffff:10.0.0.2]:1234", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "mapped ipv4 hop unmapped", remote: "10.0.0.2:1234", xff: []string{"::ffff:198.51.100.7"}, want: "198.51.100.7"},
		{name: "remote without port", remote: "198.51.100.8", want: "198.51.100.8"},
		{name: "unparseable remote", remote: "pipe", xff: []string{"198.51.100.7"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			got := c.From(req)
			if tt.want == "" {
				if got.IsValid() {
					t.Fatalf("From = %s, want invalid", got)
				}
				return
			}
			if got != netip.MustParseAddr(tt.want) {
				t.Fatalf("From = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClientIPNoTrustedProxies(t *testing.T) {
	tests := []struct {
		name string
		c    *ClientIP
	}{
		{name: "empty list", c: mustClientIP(t, nil)},
		{name: "nil resolver", c: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = "127.0.0.1:80"
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			if got := tt.c.From(req); got != netip.MustParseAddr("127.0.0.1") {
				t.Fatalf("From = %s, want the peer", got)
			}
		})
	}
}

func mustClientIP(t *testing.T, trusted []string) *ClientIP {
	t.Helper()
	c, err := NewClientIP(trusted)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
