package server_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// unQP undoes the quoted-printable encoding of a mail's text closely
// enough to find a link in it: soft line breaks and escaped "=".
func unQP(s string) string {
	s = strings.ReplaceAll(s, "=\r\n", "")
	s = strings.ReplaceAll(s, "=\n", "")
	return strings.ReplaceAll(s, "=3D", "=")
}

// waitForMail returns the data of the first mail to rcpt whose decoded
// text matches link, waiting for the background sender.
func waitForMail(t *testing.T, mc *mailCatcher, rcpt string, link *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range mc.caught() {
			for _, to := range m.to {
				if to == rcpt {
					if found := link.FindString(unQP(m.data)); found != "" {
						return found
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s with a link matching %s; caught %+v", rcpt, link, mc.caught())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An administrator's expiry date in the past ends the account at once:
// its owner's next sign-in through the login form is refused with the
// one message every failed sign-in gets, and the access and refresh
// tokens they already hold stop working.
func TestAdminLifecycleExpiryInThePast(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		adm := f.admin()
		tok := f.login(f.browser(), "alice", alicePass)
		if !active(f.introspect(tok.AccessToken)) {
			t.Fatal("alice's fresh access token is not active")
		}

		status, body := adm.do(http.MethodPut, "/admin/users/"+f.userID+"/expiry", "application/json",
			`{"expires_at":"`+f.clock.Now().Add(-time.Minute).UTC().Format(time.RFC3339)+`"}`)
		if status != http.StatusOK {
			t.Fatalf("PUT expiry: %d %s", status, body)
		}
		var view struct {
			Expired            bool       `json:"expired"`
			EffectiveExpiresAt *time.Time `json:"effective_expires_at"`
		}
		if err := json.Unmarshal(body, &view); err != nil || !view.Expired || view.EffectiveExpiresAt == nil {
			t.Fatalf("answer %s (%v), want the account expired", body, err)
		}

		resp, page := f.browser().postLogin(f.conf.AuthCodeURL("state-expired-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
		if resp.Request.URL.Path != "/login" || !strings.Contains(page, "Invalid username or password.") {
			t.Errorf("sign-in of the expired account ended at %s (%d), want the login page's generic failure:\n%.600s",
				resp.Request.URL, resp.StatusCode, page)
		}
		if loc, err := resp.Location(); err == nil {
			t.Errorf("sign-in of the expired account redirected to %s", loc)
		}

		if in := f.introspect(tok.AccessToken); active(in) {
			t.Errorf("the expired account's access token still introspects as active: %v", in)
		}
		if _, err := f.refresh(tok.RefreshToken); err == nil {
			t.Error("the expired account's refresh token still works")
		}
		events := adm.auditEvents(map[string][]string{"type": {"account.expiry_changed"}, "user_id": {f.userID}})
		if len(events) != 1 || events[0]["actor"] == "" {
			t.Errorf("account.expiry_changed events = %v", events)
		}
		ended := adm.auditEvents(map[string][]string{"type": {"token.revoked"}, "user_id": {f.userID}})
		if len(ended) != 1 || ended[0]["reason"] != authn.ReasonAccountExpired {
			t.Errorf("token.revoked events = %v, want one with reason %s", ended, authn.ReasonAccountExpired)
		}
	})
}

// An administrator's password reset mails the owner a reset link over
// SMTP, and the next sign-in stops at the password change.
func TestAdminLifecyclePasswordReset(t *testing.T) {
	mc := startMailCatcher(t)
	in := start(t, storagetest.SQLiteURL(t), &testClock{}, func(c *config.Config) {
		c.SMTP.Host, c.SMTP.Port, c.SMTP.TLS = "127.0.0.1", mc.port, config.SMTPNoTLS
		c.SMTP.From = "Portcullis <noreply@example.com>"
	})
	in.background()
	f := fixtureOn(t, in, true)
	adm := f.admin()

	status, body := adm.do(http.MethodPost, "/admin/users/"+f.userID+"/password-reset", "", "")
	if status != http.StatusOK {
		t.Fatalf("POST password-reset: %d %s", status, body)
	}
	var got struct {
		MustChange bool `json:"must_change"`
		LinkSent   bool `json:"link_sent"`
	}
	if err := json.Unmarshal(body, &got); err != nil || !got.MustChange || !got.LinkSent {
		t.Fatalf("answer %s (%v), want the password marked and a link sent", body, err)
	}
	link := waitForMail(t, mc, "alice@example.com", regexp.MustCompile(regexp.QuoteMeta(in.issuer)+`/reset-password\?token=[A-Za-z0-9_-]+`))
	t.Logf("reset link mailed: %s…", link[:len(in.issuer)+len("/reset-password?token=")+4])

	resp, _ := f.browser().postLogin(f.conf.AuthCodeURL("state-reset-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
	if resp.Request.URL.Path != authn.ForcedChangePath {
		t.Errorf("sign-in after the reset ended at %s, want the password change %s", resp.Request.URL, authn.ForcedChangePath)
	}

	// An account created to be activated by its owner gets its link too.
	status, body = adm.do(http.MethodPost, "/admin/users", "application/json",
		`{"username":"nora","email":"nora@example.com","send_activation":true}`)
	if status != http.StatusCreated || !strings.Contains(string(body), `"activation_link_sent":true`) {
		t.Fatalf("POST /admin/users with send_activation: %d %s", status, body)
	}
	waitForMail(t, mc, "nora@example.com", regexp.MustCompile(regexp.QuoteMeta(in.issuer)+`/activate\?token=[A-Za-z0-9_-]+`))
}

// A future expiry date leaves the account working until it comes; then,
// with nobody ending anything, the tokens already held stop working and
// the sign-in is refused.
func TestAdminLifecycleExpiryReached(t *testing.T) {
	f := newFixture(t, storagetest.SQLiteURL(t), true)
	adm := f.admin()
	tok := f.login(f.browser(), "alice", alicePass)
	status, body := adm.do(http.MethodPut, "/admin/users/"+f.userID+"/expiry", "application/json",
		`{"expires_at":"`+f.clock.Now().Add(time.Minute).UTC().Format(time.RFC3339)+`"}`)
	if status != http.StatusOK || strings.Contains(string(body), `"expired":true`) {
		t.Fatalf("PUT a future expiry: %d %s", status, body)
	}
	if !active(f.introspect(tok.AccessToken)) {
		t.Fatal("a future expiry date ended the access token")
	}
	f.clock.Advance(2 * time.Minute)
	if in := f.introspect(tok.AccessToken); active(in) {
		t.Errorf("once the expiry date passed, the access token still introspects as active: %v", in)
	}
	if _, err := f.refresh(tok.RefreshToken); err == nil {
		t.Error("once the expiry date passed, the refresh token still works")
	}
	_, page := f.browser().postLogin(f.conf.AuthCodeURL("state-expired-2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePass)
	if !strings.Contains(page, "Invalid username or password.") {
		t.Errorf("sign-in after the expiry date: %.600s", page)
	}
}
