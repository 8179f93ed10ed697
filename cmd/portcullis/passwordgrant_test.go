package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The password grant is off unless a client is created with it, and a
// public client (a mobile app) may be.
func TestClientsCreatePasswordGrant(t *testing.T) {
	type view struct {
		ClientID     string   `json:"client_id"`
		ClientSecret string   `json:"client_secret"`
		GrantTypes   []string `json:"grant_types"`
		Public       bool     `json:"public"`
	}
	tests := []struct {
		name       string
		args       []string
		wantGrants []string
		wantSecret bool
	}{
		{name: "default grants leave it out", args: []string{"--id", "web", "--redirect-uris", "https://app.example.com/cb"},
			wantGrants: []string{"authorization_code", "refresh_token"}, wantSecret: true},
		{name: "public mobile app", args: []string{"--id", "mobile", "--public", "--grant-types", "password,refresh_token", "--scopes", "openid offline_access"},
			wantGrants: []string{"password", "refresh_token"}},
		{name: "confidential", args: []string{"--id", "legacy", "--grant-types", "password"},
			wantGrants: []string{"password"}, wantSecret: true},
	}
	p := newInProcess(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := p.mustRun("", append([]string{"clients", "create"}, tt.args...)...)
			var got view
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("decode %s: %v", out, err)
			}
			if !slices.Equal(got.GrantTypes, tt.wantGrants) || (got.ClientSecret != "") != tt.wantSecret || got.Public == tt.wantSecret {
				t.Fatalf("created %+v, want grants %v, secret %v", got, tt.wantGrants, tt.wantSecret)
			}
		})
	}
	if r := p.run("", "clients", "create", "--help"); !strings.Contains(r.stdout+r.stderr, "client_credentials, password") {
		t.Errorf("--grant-types help does not list the password grant:\n%s%s", r.stdout, r.stderr)
	}
}
