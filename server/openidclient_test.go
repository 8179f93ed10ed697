package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/oauth"
)

// nodeE2EDir holds the Node scripts that drive the server with independent
// client libraries; its node_modules come from `npm ci`.
const nodeE2EDir = "../e2e"

// requireNodeScript returns the node binary and the script's absolute path, or
// skips t when Node or the installed packages are missing (fails it under
// CI=true, where the test must run).
func requireNodeScript(t *testing.T, script string) (node, path string) {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		msg := why + "; install Node.js 20+ and run `cd e2e && npm ci`"
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: the Node end-to-end test is required)", msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	dir, err := filepath.Abs(nodeE2EDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client", "package.json")); err != nil {
		missing("openid-client is not installed in " + filepath.Join(dir, "node_modules"))
	}
	return node, filepath.Join(dir, script)
}

// openIDClientResult is the JSON line e2e/openid-client.mjs prints.
type openIDClientResult struct {
	OK                  bool     `json:"ok"`
	Steps               []string `json:"steps"`
	Sub                 string   `json:"sub"`
	UserinfoSub         string   `json:"userinfo_sub"`
	RefreshRotated      bool     `json:"refresh_rotated"`
	IntrospectionActive *bool    `json:"introspection_active"`
	RevokedActive       *bool    `json:"revoked_active"`
	Logout              string   `json:"logout"`
	PromptNoneError     string   `json:"prompt_none_error"`
}

// TestOpenIDClientNode runs the npm openid-client library, with its
// default client authentication (client_secret_post), through a whole
// session: the server must work with a certified relying party unchanged.
func TestOpenIDClientNode(t *testing.T) {
	node, script := requireNodeScript(t, "openid-client.mjs")
	const (
		redirectURI   = "http://127.0.0.1:9/callback"
		postLogoutURI = "http://127.0.0.1:9/signed-out"
		password      = "node rp password 1234"
	)
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{})
		secret := in.createClient(oauth.ClientSpec{
			ID:                     "node-rp",
			Name:                   "Node RP",
			RedirectURIs:           []string{redirectURI},
			PostLogoutRedirectURIs: []string{postLogoutURI},
			GrantTypes:             []string{"authorization_code", "refresh_token"},
			Scopes:                 []string{"openid", "profile", "offline_access"},
		})
		uid := in.createUser(authn.UserSpec{Username: "carol", Password: password, Email: "carol@example.com", EmailVerified: true})

		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, script)
		cmd.Dir = filepath.Dir(script)
		// Settings go in the environment, not argv, so the password is not
		// visible in the process list.
		cmd.Env = append(os.Environ(),
			"OIDC_ISSUER="+in.issuer,
			"OIDC_CLIENT_ID=node-rp",
			"OIDC_CLIENT_SECRET="+secret,
			"OIDC_REDIRECT_URI="+redirectURI,
			"OIDC_POST_LOGOUT_REDIRECT_URI="+postLogoutURI,
			"OIDC_USERNAME=carol",
			"OIDC_PASSWORD="+password,
		)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("openid-client run timed out\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
		}
		if err != nil {
			t.Fatalf("openid-client run failed: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		t.Logf("openid-client: %s", lines[len(lines)-1])
		var res openIDClientResult
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("result line is not JSON: %v\nstdout: %s", err, stdout.String())
		}

		wantSteps := []string{"discovery", "sign-in", "authorization_code", "refresh_token", "userinfo", "introspection",
			"revocation", "introspection_after_revocation", "end_session", "prompt_none"}
		checks := []struct {
			name string
			ok   bool
		}{
			{"ok", res.OK},
			{"every step ran", strings.Join(res.Steps, ",") == strings.Join(wantSteps, ",")},
			{"ID token sub is the user", res.Sub == uid},
			{"userinfo sub is the user", res.UserinfoSub == uid},
			{"refresh rotated the refresh token", res.RefreshRotated},
			{"access token introspects active", res.IntrospectionActive != nil && *res.IntrospectionActive},
			{"revoked refresh token introspects inactive", res.RevokedActive != nil && !*res.RevokedActive},
			{"logout returned to the post-logout URI", strings.HasPrefix(res.Logout, postLogoutURI+"?")},
			{"prompt=none after logout is login_required", res.PromptNoneError == "login_required"},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("%s: result %+v", c.name, res)
			}
		}
	})
}
