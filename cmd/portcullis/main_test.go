package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
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
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
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
// checked-in config.toml, the management commands, then serve, a client
// credentials grant over TCP, an admin API call, and a graceful SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	repoConfig, err := filepath.Abs("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	c := &cli{t: t, bin: buildBinary(t), dir: t.TempDir(), env: []string{
		"PORTCULLIS_SERVER_LISTEN=" + addr,
		"PORTCULLIS_SERVER_ISSUER=http://" + addr,
		// Cheap hashing: this test is about the commands, not argon2.
		"PORTCULLIS_HASHING_MEMORY_KIB=8192",
		"PORTCULLIS_HASHING_ITERATIONS=1",
	}}
	cfgFlag := "--config=" + repoConfig

	out := c.mustRun(cfgFlag, "migrate")
	if !strings.Contains(out, "schema version") {
		t.Fatalf("migrate printed %q", out)
	}
	if out := c.mustRun(cfgFlag, "migrate"); !strings.HasPrefix(out, "applied 0 migration") {
		t.Fatalf("second migrate printed %q, want nothing applied", out)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "portcullis.secret")); err != nil {
		t.Fatalf("no generated system secret beside the database: %v", err)
	}
	if info, _ := os.Stat(filepath.Join(c.dir, "portcullis.secret")); info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, want 0600", info.Mode().Perm())
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
	if out := c.mustRun(cfgFlag, "users", "list"); !strings.Contains(out, `"root"`) || strings.Contains(out, "argon2") {
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
}

// TestConfigErrorsExitBeforeListening checks a bad configuration names the
// key and the reason and exits non-zero without opening the port.
func TestConfigErrorsExitBeforeListening(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	addr := freePort(t)
	c := &cli{t: t, bin: buildBinary(t), dir: t.TempDir()}
	for _, tt := range []struct {
		env  []string
		want []string
	}{
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_TOKEN_ACCESS_TOKEN_TTL=-5m"}, []string{"token.access_token_ttl"}},
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_DATABASE_URL=mysql://x"}, []string{"database.url"}},
		{[]string{"PORTCULLIS_SERVER_LISTEN=" + addr, "PORTCULLIS_DATABASE_URL=postgres://postgres@127.0.0.1/test"}, []string{"secrets.system"}},
		{[]string{"PORTCULLIS_SERVER_LISTN=" + addr}, []string{"PORTCULLIS_SERVER_LISTN"}},
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
