package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// Benchmarks of the hot paths against the whole in-process server over
// loopback HTTP, on each backend. Figures for the README come from the load
// command against the real binary; these exist for profiling
// (go test -bench . -cpuprofile).

// benchFixture starts a server on a fresh database of the named backend:
// the benchmark function runs several times, each needing its own.
func benchFixture(b *testing.B, backend string) (*instance, string, string) {
	dbURL := storagetest.SQLiteURL(b)
	if backend == "postgres" {
		var ok bool
		if dbURL, ok = storagetest.PostgresURL(b); !ok {
			b.Skip("PostgreSQL not reachable")
		}
	}
	in := start(b, dbURL, &testClock{})
	secret := in.createClient(oauth.ClientSpec{ID: "bench", GrantTypes: []string{"client_credentials"}, Scopes: []string{"profile"}})
	return in, "bench", secret
}

func BenchmarkClientCredentials(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			in, id, secret := benchFixture(b, be.Name)
			form := url.Values{"grant_type": {"client_credentials"}}.Encode()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					postForm(b, in.issuer+"/oauth2/token", id, secret, form)
				}
			})
		})
	}
}

func BenchmarkIntrospect(b *testing.B) {
	for _, be := range storagetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			in, id, secret := benchFixture(b, be.Name)
			cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: in.issuer + "/oauth2/token"}
			tok, err := cc.Token(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			form := url.Values{"token": {tok.AccessToken}}.Encode()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					postForm(b, in.issuer+"/oauth2/introspect", id, secret, form)
				}
			})
		})
	}
}

func postForm(b *testing.B, u, id, secret, form string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	var buf [512]byte
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("%s: status %d", u, resp.StatusCode)
	}
}
