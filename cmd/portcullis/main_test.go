package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage"
)

// buildBinary compiles the real command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "portcullis")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type cli struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func (c *cli) run(args ...string) (string, string, error) {
	c.t.Helper()
	return c.runInput("", args...)
}

// runInput runs the command with stdin as its standard input.
func (c *cli) runInput(stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (c *cli) mustRun(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("portcullis %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestBinary builds portcullis and uses it as an operator would: the
// checked-in config.toml in a folder of its own, the management commands
// run from another folder, then serve, a client credentials grant over TCP,
// an admin API call, and a graceful SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := t.TempDir()
	etc, work := filepath.Join(root, "etc"), filepath.Join(root, "work")
	for _, d := range []string{etc, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	checkedIn, err := os.ReadFile("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "config.toml"), checkedIn, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, metricsAddr := freePort(t), freePort(t)
	c := &cli{t: t, bin: buildBinary(t), dir: work, env: []string{
		"PORTCULLIS_SERVER_LISTEN=" + addr,
		"PORTCULLIS_SERVER_ISSUER=http://" + addr,
		// Not the default port, which a real server on this machine may hold.
		"PORTCULLIS_SERVER_METRICS_LISTEN=" + metricsAddr,
		// Cheap hashing: this test is about the commands, not argon2.
		"PORTCULLIS_HASHING_MEMORY_KIB=8192",
		"PORTCULLIS_HASHING_ITERATIONS=1",
	}}
	// Relative, from another folder: the database must still be the one
	// beside the file.
	cfgFlag := "--config=../etc/config.toml"

	out := c.mustRun(cfgFlag, "migrate")
	if !strings.Contains(out, "schema version") {
		t.Fatalf("migrate printed %q", out)
	}
	if out := c.mustRun(cfgFlag, "migrate"); !strings.HasPrefix(out, "applied 0 migration") {
		t.Fatalf("second migrate printed %q, want nothing applied", out)
	}
	for _, name := range []string{"portcullis.secret", "portcullis.db"} {
		info, err := os.Stat(filepath.Join(etc, name))
		if err != nil {
			t.Fatalf("no %s beside the configuration file: %v", name, err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, want 0600", name, info.Mode().Perm())
		}
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Fatalf("files created in the working directory: %v", entries)
	}

	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	out = c.mustRun(cfgFlag, "clients", "create", "--id", "ops", "--grant-types", "client_credentials", "--scopes", "admin profile")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ClientSecret == "" {
		t.Fatalf("clients create printed %q (%v)", out, err)
	}
	c.mustRun(cfgFlag, "clients", "create", "--id", "web", "--grant-types", "authorization_code,refresh_token",
		"--response-types", "code", "--scopes", "openid offline_access profile email", "--redirect-uris", "http://127.0.0.1:9/cb", "--skip-consent")
	if _, errOut, err := c.run(cfgFlag, "clients", "create", "--id", "bad", "--grant-types", "implicit"); err == nil || !strings.Contains(errOut, "grant_types[0]") {
		t.Fatalf("invalid client accepted or error does not name the field: %v %s", err, errOut)
	}
	out = c.mustRun(cfgFlag, "clients", "list")
	if !strings.Contains(out, `"ops"`) || !strings.Contains(out, `"web"`) || strings.Contains(out, "secret_hash") || strings.Contains(out, created.ClientSecret) {
		t.Fatalf("clients list = %s", out)
	}
	c.mustRun(cfgFlag, "users", "create", "--username", "root", "--password", "a long admin password", "--email", "root@example.com", "--email-verified", "--admin")
	if _, _, err := c.runInput("another long password\n", cfgFlag, "users", "create", "--username", "piped", "--password-stdin"); err != nil {
		t.Fatalf("users create --password-stdin: %v", err)
	}
	if _, errOut, err := c.run(cfgFlag, "users", "create", "--username", "nopassword"); err == nil || !strings.Contains(errOut, "--password-stdin") {
		t.Fatalf("users create without a password or a terminal: %v %s", err, errOut)
	}
	if out := c.mustRun(cfgFlag, "users", "list"); !strings.Contains(out, `"root"`) || !strings.Contains(out, `"piped"`) ||
		strings.Contains(out, "nopassword") || strings.Contains(out, "argon2") {
		t.Fatalf("users list = %s", out)
	}
	c.mustRun(cfgFlag, "keys", "rotate")
	c.mustRun(cfgFlag, "clients", "delete", "web")
	if out := c.mustRun("version"); !strings.Contains(out, "version") {
		t.Fatalf("version printed %q", out)
	}

	serve := exec.Command(c.bin, cfgFlag, "serve")
	serve.Dir = c.dir
	serve.Env = append(os.Environ(), c.env...)
	var serveLog bytes.Buffer
	serve.Stdout, serve.Stderr = &serveLog, &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() { _ = serve.Process.Kill() })

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v\n%s", err, serveLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	cc := clientcredentials.Config{ClientID: created.ClientID, ClientSecret: created.ClientSecret, TokenURL: base + "/oauth2/token", Scopes: []string{"admin"}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client credentials over TCP: %v\n%s", err, serveLog.String())
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/admin/clients", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin API with an admin token: %d", resp.StatusCode)
	}
	// /metrics asks for no authentication, so only the metrics listener
	// serves it.
	for _, tt := range []struct {
		url  string
		want int
	}{
		{base + "/metrics", http.StatusNotFound},
		{"http://" + metricsAddr + "/metrics", http.StatusOK},
		{"http://" + metricsAddr + "/debug/pprof/", http.StatusNotFound},
	} {
		resp, err := http.Get(tt.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Fatalf("GET %s = %d, want %d", tt.url, resp.StatusCode, tt.want)
		}
		if tt.want == http.StatusOK && !strings.Contains(string(body), `portcullis_tokens_issued_total{grant_type="client_credentials"} 1`) {
			t.Fatalf("metrics do not count the grant above:\n%s", body)
		}
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM\n%s", err, serveLog.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
	if !strings.Contains(serveLog.String(), "shutting down") {
		t.Fatalf("no graceful shutdown in the log:\n%s", serveLog.String())
	}
	for _, a := range []string{addr, metricsAddr} {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Fatalf("%s still listens after serve exited", a)
		}
	}
}

// TestConfigErrorsExitBeforeListening checks a bad configuration names the
// key and the reason and exits non-zero without opening the port.
func TestConfigErrorsExitBeforeListening(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	addr := freePort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c := &cli{t: t, bin: buildBinary(t), dir: t.TempDir()}
	for _, tt := range []struct {
		env  []string
		want []string
	}{
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_TOKEN_ACCESS_TOKEN_TTL=-5m"}, []string{"token.access_token_ttl"}},
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_DATABASE_URL=mysql://x"}, []string{"database.url"}},
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_DATABASE_URL=postgres://postgres@127.0.0.1/test"}, []string{"secrets.system"}},
		{[]string{"PORTCULLIS_SERVER_LISTN=" + addr}, []string{"PORTCULLIS_SERVER_LISTN"}},
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_SERVER_METRICS_LISTEN=" + addr}, []string{"server.metrics_listen", "must differ"}},
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_SERVER_METRICS_LISTEN=" + taken.Addr().String()}, []string{"server.metrics_listen", "address already in use"}},
	} {
		t.Run(strings.Join(tt.want, ","), func(t *testing.T) {
			c.env = tt.env
			done := make(chan struct{})
			var errOut string
			var err error
			go func() { _, errOut, err = c.run("serve"); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("serve kept running with an invalid configuration")
			}
			if err == nil {
				t.Fatal("serve exited 0 with an invalid configuration")
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("error output does not name %q:\n%s", w, errOut)
				}
			}
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				t.Fatal("something listens on the port after a config error")
			}
		})
	}
}

// inProcess runs the command line in this process against a configuration
// file of its own, which is much faster than the binary for the cases below.
type inProcess struct {
	t   *testing.T
	dir string   // holds config.toml and, beside it, the database
	env []string // on top of cheap hashing and quiet logs
}

func newInProcess(t *testing.T) *inProcess {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte("[log]\nlevel = \"error\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &inProcess{t: t, dir: dir}
}

// result is what one command line printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// run runs args with stdin as standard input, which is not a terminal.
func (p *inProcess) run(stdin string, args ...string) result {
	p.t.Helper()
	return p.runConsole(console{in: strings.NewReader(stdin)}, args...)
}

func (p *inProcess) runConsole(in console, args ...string) result {
	p.t.Helper()
	env := append([]string{"PORTCULLIS_HASHING_MEMORY_KIB=8192", "PORTCULLIS_HASHING_ITERATIONS=1"}, p.env...)
	var stdout, stderr bytes.Buffer
	code := run(p.t.Context(), append([]string{"--config=" + filepath.Join(p.dir, "config.toml")}, args...), in, &stdout, &stderr, env)
	return result{stdout.String(), stderr.String(), code}
}

func (p *inProcess) mustRun(stdin string, args ...string) string {
	p.t.Helper()
	r := p.run(stdin, args...)
	if r.code != 0 {
		p.t.Fatalf("portcullis %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// store opens the database the commands use, to look at what they did.
func (p *inProcess) store() *storage.Store {
	p.t.Helper()
	s, err := storage.Open(p.t.Context(), "sqlite://"+filepath.Join(p.dir, "portcullis.db"), storage.Options{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { s.Close() })
	// A command that failed early never created the tables.
	if _, err := s.Migrate(p.t.Context()); err != nil {
		p.t.Fatal(err)
	}
	return s
}

// jwksFile writes a JSON Web Key Set of one fresh P-256 key and returns its
// path and content; with private, the set wrongly holds the private key.
func jwksFile(t *testing.T, private bool) (string, string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var key any = priv.Public()
	if private {
		key = priv
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, string(b)
}

func TestClientsCreateFlags(t *testing.T) {
	jwksPath, jwks := jwksFile(t, false)
	type view struct {
		ClientID                    string          `json:"client_id"`
		ClientSecret                string          `json:"client_secret"`
		TokenEndpointAuthMethod     string          `json:"token_endpoint_auth_method"`
		TokenEndpointAuthMethods    []string        `json:"token_endpoint_auth_methods"`
		TokenEndpointAuthSigningAlg string          `json:"token_endpoint_auth_signing_alg"`
		AllowedCORSOrigins          []string        `json:"allowed_cors_origins"`
		LogoURI                     string          `json:"logo_uri"`
		PolicyURI                   string          `json:"policy_uri"`
		TosURI                      string          `json:"tos_uri"`
		JWKS                        json.RawMessage `json:"jwks"`
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  view
	}{
		{
			name: "defaults accept both secret methods",
			args: []string{"--id", "backend", "--grant-types", "client_credentials"},
			want: view{ClientID: "backend", TokenEndpointAuthMethod: "client_secret_basic",
				TokenEndpointAuthMethods: []string{"client_secret_basic", "client_secret_post"}, AllowedCORSOrigins: []string{}},
		},
		{
			name: "an explicit method is the only one",
			args: []string{"--id", "poster", "--grant-types", "client_credentials", "--token-endpoint-auth-method", "client_secret_post"},
			want: view{ClientID: "poster", TokenEndpointAuthMethod: "client_secret_post",
				TokenEndpointAuthMethods: []string{"client_secret_post"}, AllowedCORSOrigins: []string{}},
		},
		{
			name: "page links and CORS origins, comma-separated and repeated",
			args: []string{"--id", "web", "--redirect-uris", "https://app.example.com/cb",
				"--allowed-cors-origins", "https://app.example.com,https://www.example.com", "--allowed-cors-origins", "http://localhost:5173",
				"--logo-uri", "https://app.example.com/logo.png", "--policy-uri", "https://app.example.com/privacy", "--tos-uri", "https://app.example.com/terms"},
			want: view{ClientID: "web", TokenEndpointAuthMethod: "client_secret_basic",
				TokenEndpointAuthMethods: []string{"client_secret_basic", "client_secret_post"},
				AllowedCORSOrigins:       []string{"https://app.example.com", "https://www.example.com", "http://localhost:5173"},
				LogoURI:                  "https://app.example.com/logo.png", PolicyURI: "https://app.example.com/privacy", TosURI: "https://app.example.com/terms"},
		},
		{
			name: "private_key_jwt with keys from a file",
			args: []string{"--id", "signer", "--grant-types", "client_credentials", "--token-endpoint-auth-method", "private_key_jwt",
				"--jwks", jwksPath, "--token-endpoint-auth-signing-alg", "ES256"},
			want: view{ClientID: "signer", TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthMethods: []string{"private_key_jwt"},
				TokenEndpointAuthSigningAlg: "ES256", AllowedCORSOrigins: []string{}, JWKS: json.RawMessage(jwks)},
		},
		{
			name:  "private_key_jwt with keys from standard input",
			stdin: jwks + "\n",
			args:  []string{"--id", "piped", "--grant-types", "client_credentials", "--token-endpoint-auth-method", "private_key_jwt", "--jwks", "-"},
			want: view{ClientID: "piped", TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthMethods: []string{"private_key_jwt"},
				AllowedCORSOrigins: []string{}, JWKS: json.RawMessage(jwks)},
		},
	}
	p := newInProcess(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := p.mustRun(tt.stdin, append([]string{"clients", "create"}, tt.args...)...)
			var got view
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("decode %s: %v", out, err)
			}
			if (got.ClientSecret != "") != (tt.want.TokenEndpointAuthMethod != "private_key_jwt") {
				t.Errorf("client_secret = %q for method %s", got.ClientSecret, got.TokenEndpointAuthMethod)
			}
			got.ClientSecret = ""
			if len(got.JWKS) > 0 || len(tt.want.JWKS) > 0 {
				if !sameJSON(t, got.JWKS, tt.want.JWKS) {
					t.Errorf("jwks = %s, want %s", got.JWKS, tt.want.JWKS)
				}
				got.JWKS, tt.want.JWKS = nil, nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("created\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	t.Run("help names every method and what empty means", func(t *testing.T) {
		out := p.mustRun("", "clients", "create", "--help")
		for _, want := range []string{"client_secret_basic, client_secret_post, private_key_jwt", "none",
			"empty = a confidential client accepts client_secret_basic and client_secret_post", "a value = only that method",
			"--allowed-cors-origins", "--logo-uri", "--policy-uri", "--tos-uri", "--jwks", "--token-endpoint-auth-signing-alg"} {
			if !strings.Contains(out, want) {
				t.Errorf("help does not say %q:\n%s", want, out)
			}
		}
	})
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestCommandErrors checks that a mistake is reported once, in words that
// say what to do, and exits non-zero.
func TestCommandErrors(t *testing.T) {
	p := newInProcess(t)
	p.mustRun("", "clients", "create", "--id", "web", "--redirect-uris", "https://app.example.com/cb")
	p.mustRun("", "users", "create", "--username", "alice", "--password", "correct horse")
	privatePath, _ := jwksFile(t, true)
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string
		not   []string
	}{
		{name: "duplicate client", args: []string{"clients", "create", "--id", "web", "--redirect-uris", "https://app.example.com/cb"},
			want: []string{`client "web" already exists`}, not: []string{"storage: conflict"}},
		{name: "duplicate user, other case", args: []string{"users", "create", "--username", "ALICE", "--password", "correct horse"},
			want: []string{`user "alice" already exists`}, not: []string{"storage: conflict"}},
		{name: "missing client", args: []string{"clients", "delete", "nobody"},
			want: []string{`client "nobody" does not exist`}, not: []string{"storage: not found"}},
		{name: "unknown flag, plural", args: []string{"clients", "create", "--id", "x", "--redirect-uri", "https://app.example.com/cb"},
			want: []string{"unknown flag: --redirect-uri", "did you mean --redirect-uris?"}},
		{name: "unknown flag, underscore", args: []string{"clients", "create", "--id", "x", "--grant_types", "client_credentials"},
			want: []string{"did you mean --grant-types?"}},
		{name: "unknown flag, ambiguous abbreviation", args: []string{"clients", "create", "--id", "x", "--token-endpoint-auth", "none"},
			want: []string{"did you mean --token-endpoint-auth-method or --token-endpoint-auth-signing-alg?"}},
		{name: "unknown flag on another command", args: []string{"users", "create", "--usernme", "bob"},
			want: []string{"did you mean --username?"}},
		{name: "unknown flag, nothing close", args: []string{"clients", "list", "--frobnicate"},
			want: []string{"unknown flag: --frobnicate", `see "portcullis clients list --help"`}, not: []string{"did you mean"}},
		{name: "unknown subcommand", args: []string{"clients", "craete"},
			want: []string{`unknown command "craete"`, "did you mean create?"}},
		{name: "validation names the field", args: []string{"clients", "create", "--id", "x", "--grant-types", "client_credentials",
			"--logo-uri", "http://app.example.com/logo.png", "--allowed-cors-origins", "https://app.example.com/path"},
			want: []string{"logo_uri", "allowed_cors_origins[0]"}},
		{name: "private key in the key set", args: []string{"clients", "create", "--id", "x", "--grant-types", "client_credentials",
			"--token-endpoint-auth-method", "private_key_jwt", "--jwks", privatePath},
			want: []string{"jwks", "private key"}},
		{name: "key set file missing", args: []string{"clients", "create", "--id", "x", "--token-endpoint-auth-method", "private_key_jwt",
			"--jwks", filepath.Join(t.TempDir(), "none.json")},
			want: []string{"--jwks", "no such file"}},
		{name: "key set on empty standard input", args: []string{"clients", "create", "--id", "x", "--token-endpoint-auth-method", "private_key_jwt",
			"--jwks", "-"},
			want: []string{"--jwks: standard input holds no key set"}},
		{name: "keys without private_key_jwt", args: []string{"clients", "create", "--id", "x", "--grant-types", "client_credentials",
			"--jwks", "-"}, stdin: `{"keys":[]}`,
			want: []string{"jwks: only a private_key_jwt client registers keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := p.run(tt.stdin, tt.args...)
			if r.code == 0 {
				t.Fatalf("exit 0; stdout %s", r.stdout)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(r.stderr, w) {
					t.Errorf("stderr says %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// TestRefusedConnectionPrintedOnce: pgx tries TLS and then plain text, and
// reports both attempts; the person needs to read it once.
func TestRefusedConnectionPrintedOnce(t *testing.T) {
	p := newInProcess(t)
	p.env = []string{
		"PORTCULLIS_DATABASE_URL=postgres://postgres@" + freePort(t) + "/test",
		"PORTCULLIS_SECRETS_SYSTEM=" + strings.Repeat("s", 32),
	}
	for _, args := range [][]string{{"clients", "list"}, {"migrate"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := p.run("", args...)
			if r.code == 0 {
				t.Fatal("exit 0 without a database")
			}
			if n := strings.Count(r.stderr, "connection refused"); n != 1 {
				t.Errorf("connection refused printed %d times:\n%s", n, r.stderr)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"one line", "one line"},
		{"head:\n\ta: refused\n\ta: refused", "head:\n\ta: refused"},
		{"head:\n\ta: refused\n\tb: refused\n\ta: refused", "head:\n\ta: refused\n\tb: refused"},
		{"invalid configuration:\nx: bad\n\ny: bad", "invalid configuration:\nx: bad\n\ny: bad"},
	}
	for _, tt := range tests {
		if got := errorText(errors.New(tt.in)); got != tt.want {
			t.Errorf("errorText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"scope", "scopes", 1},
		{"secert", "secret", 1},
		{"craete", "create", 1},
		{"redirect_uris", "redirect-uris", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestClosestNames(t *testing.T) {
	names := []string{"id", "name", "secret", "scopes", "redirect-uris", "post-logout-redirect-uris", "grant-types",
		"token-endpoint-auth-method", "token-endpoint-auth-signing-alg", "config", "help"}
	tests := []struct {
		given string
		want  []string
	}{
		{"redirect-uri", []string{"redirect-uris"}},
		{"redirect_uris", []string{"redirect-uris"}},
		{"scope", []string{"scopes"}},
		{"secert", []string{"secret"}},
		{"post-logout", []string{"post-logout-redirect-uris"}},
		{"token-endpoint-auth", []string{"token-endpoint-auth-method", "token-endpoint-auth-signing-alg"}},
		{"token-endpoint-auth-methods", []string{"token-endpoint-auth-method"}},
		{"ids", []string{"id"}},
		{"x", nil},
		{"frobnicate", nil},
	}
	for _, tt := range tests {
		if got := closestNames(tt.given, names); !slices.Equal(got, tt.want) {
			t.Errorf("closestNames(%q) = %q, want %q", tt.given, got, tt.want)
		}
	}
}

// fakeTerminal answers password prompts with answers, in order.
func fakeTerminal(in string, answers ...string) console {
	return console{in: strings.NewReader(in), readPassword: func(context.Context) ([]byte, error) {
		if len(answers) == 0 {
			return nil, io.EOF
		}
		a := answers[0]
		answers = answers[1:]
		return []byte(a), nil
	}}
}

func TestUserPassword(t *testing.T) {
	tests := []struct {
		name    string
		in      console
		args    []string
		want    string // the password stored, when created
		wantErr string
		prompts int
	}{
		{name: "flag", in: console{in: strings.NewReader("")}, args: []string{"--password", "from the flag"}, want: "from the flag"},
		{name: "stdin, newline stripped", in: console{in: strings.NewReader("from standard input\n")}, args: []string{"--password-stdin"}, want: "from standard input"},
		{name: "stdin, CRLF stripped", in: console{in: strings.NewReader("from windows\r\n")}, args: []string{"--password-stdin"}, want: "from windows"},
		{name: "stdin, first line only, spaces kept", in: console{in: strings.NewReader("  spaced out  \nsecond line\n")}, args: []string{"--password-stdin"}, want: "  spaced out  "},
		{name: "stdin without a newline", in: console{in: strings.NewReader("no newline at all")}, args: []string{"--password-stdin"}, want: "no newline at all"},
		{name: "stdin from a terminal too", in: fakeTerminal("piped in anyway\n", "never asked"), args: []string{"--password-stdin"}, want: "piped in anyway"},
		{name: "prompted twice", in: fakeTerminal("", "typed at the prompt", "typed at the prompt"), want: "typed at the prompt", prompts: 2},
		{name: "flag wins over the prompt", in: fakeTerminal("", "never asked"), args: []string{"--password", "from the flag"}, want: "from the flag"},

		{name: "stdin empty", in: console{in: strings.NewReader("")}, args: []string{"--password-stdin"}, wantErr: "standard input held no password"},
		{name: "stdin blank line", in: console{in: strings.NewReader("\n")}, args: []string{"--password-stdin"}, wantErr: "standard input held no password"},
		{name: "prompt answers differ", in: fakeTerminal("", "first try here", "second try here"), wantErr: "the two passwords differ", prompts: 2},
		{name: "prompt answered with nothing", in: fakeTerminal("", ""), wantErr: "no password entered", prompts: 1},
		{name: "no flag, no terminal", in: console{in: strings.NewReader("")}, wantErr: "--password-stdin, or run in a terminal"},
		{name: "both flags", in: console{in: strings.NewReader("x\n")}, args: []string{"--password", "from the flag", "--password-stdin"}, wantErr: "not both"},
		{name: "too short, whichever way", in: console{in: strings.NewReader("short\n")}, args: []string{"--password-stdin"}, wantErr: "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newInProcess(t)
			r := p.runConsole(tt.in, append([]string{"users", "create", "--username", "bob"}, tt.args...)...)
			if got := strings.Count(r.stderr, "assword"); tt.prompts > 0 && !strings.Contains(r.stderr, "Password for bob: ") {
				t.Errorf("no prompt (%d mentions):\n%s", got, r.stderr)
			}
			if n := strings.Count(r.stderr, "Repeat the password"); tt.prompts == 2 && n != 1 {
				t.Errorf("asked to repeat %d times:\n%s", n, r.stderr)
			}
			users, err := p.store().ListUsers(t.Context(), "", 10)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				if r.code == 0 || !strings.Contains(r.stderr, tt.wantErr) {
					t.Fatalf("exit %d, stderr %q; want an error saying %q", r.code, r.stderr, tt.wantErr)
				}
				if len(users) != 0 {
					t.Errorf("a user was created: %+v", users)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if len(users) != 1 {
				t.Fatalf("users = %+v, want bob", users)
			}
			if ok, err := hashing.Verify(users[0].PasswordHash, tt.want); !ok || err != nil {
				t.Errorf("stored password is not %q (%v)", tt.want, err)
			}
		})
	}
	t.Run("help warns about --password", func(t *testing.T) {
		out := newInProcess(t).mustRun("", "users", "create", "--help")
		if !strings.Contains(out, "shell history") || !strings.Contains(out, "--password-stdin") {
			t.Errorf("help:\n%s", out)
		}
	})
}

// TestCommandsAreAudited checks the CLI leaves the same events as the admin
// API for the same changes, with itself as the actor, and none for a change
// it did not make.
func TestCommandsAreAudited(t *testing.T) {
	p := newInProcess(t)
	p.mustRun("", "clients", "create", "--id", "ops", "--grant-types", "client_credentials")
	p.mustRun("", "clients", "delete", "ops")
	out := p.mustRun("correct horse\n", "users", "create", "--username", "Carol", "--password-stdin")
	var u struct{ ID string }
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatal(err)
	}
	_ = p.run("", "clients", "create", "--id", "bad", "--grant-types", "implicit")
	_ = p.run("", "clients", "delete", "nobody")
	_ = p.run("correct horse\n", "users", "create", "--username", "carol", "--password-stdin")

	tests := []struct {
		typ              string
		clientID, userID string
		details          string
	}{
		{audit.TypeClientCreated, "ops", "", ""},
		{audit.TypeClientDeleted, "ops", "", ""},
		{audit.TypeUserCreated, "", u.ID, `{"username":"carol"}`},
	}
	store := p.store()
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			rows, err := store.ListAudit(t.Context(), storage.AuditFilter{Type: tt.typ, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 {
				t.Fatalf("%d %s events, want 1: %+v", len(rows), tt.typ, rows)
			}
			e := rows[0]
			if !strings.HasPrefix(e.Actor, "cli:") || len(e.Actor) == len("cli:") {
				t.Errorf("actor = %q, want cli:<os user>", e.Actor)
			}
			if e.ClientID != tt.clientID || e.UserID != tt.userID || e.Outcome != audit.OutcomeSuccess {
				t.Errorf("event = %+v", e)
			}
			if tt.details != "" && e.Details != tt.details {
				t.Errorf("details = %s, want %s", e.Details, tt.details)
			}
		})
	}
}

// TestSQLiteDatabaseFile checks the database is created readable by its
// owner only, that an existing file keeps the mode its operator gave it, and
// that any folder name works.
func TestSQLiteDatabaseFile(t *testing.T) {
	tests := []struct {
		name     string
		dir      string
		existing os.FileMode // 0: no file before
		want     os.FileMode
	}{
		{name: "new", dir: "data", want: 0o600},
		{name: "existing keeps its mode", dir: "data", existing: 0o640, want: 0o640},
		{name: "folder with URI characters", dir: "a#b?c%20d", want: 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.dir)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "p.db")
			if tt.existing != 0 {
				if err := os.WriteFile(path, nil, tt.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.existing); err != nil { // whatever the umask
					t.Fatal(err)
				}
			}
			s, err := storage.Open(t.Context(), "sqlite://"+path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{path, path + "-wal"} {
				info, err := os.Stat(name)
				if err != nil {
					t.Fatalf("the database is not where the URL says: %v", err)
				}
				if got := info.Mode().Perm(); got != tt.want {
					t.Errorf("%s mode %v, want %v", filepath.Base(name), got, tt.want)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 3 {
				t.Errorf("files beside the database: %v", entries)
			}
		})
	}
}
