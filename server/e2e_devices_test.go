package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/authn"
)

// TestDeviceRegistry signs one account in from two browsers: both devices
// show at /account/devices and in the admin API, and the admin signing one
// device out ends that browser's session while the other stays signed in.
func TestDeviceRegistry(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		in := start(t, dbURL, &testClock{})
		const pass = "correct horse battery"
		uid := in.createUser(authn.UserSpec{Username: "dora", Password: pass})
		api := in.adminAPI(in.createAdminClient())

		devicesURL := in.issuer + authn.AccountDevicesPath
		signIn := func(ua string) *browser {
			b := in.browser()
			b.c.Transport = uaTransport{ua: ua}
			resp, body := b.postLogin(devicesURL, "dora", pass)
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != authn.AccountDevicesPath {
				t.Fatalf("sign in from %s: %d at %s: %.300s", ua, resp.StatusCode, resp.Request.URL, body)
			}
			return b
		}
		laptop := signIn("Mozilla/5.0 Firefox/130.0")
		phone := signIn("Mozilla/5.0 Chrome/128.0 Mobile")

		_, page := phone.get(devicesURL)
		if !strings.Contains(page, "Firefox") || !strings.Contains(page, "Chrome") || !strings.Contains(page, "(this device)") {
			t.Fatalf("devices page lacks a device: %.2000s", page)
		}

		var list struct {
			Items []struct {
				DeviceID  string `json:"device_id"`
				UserAgent string `json:"user_agent"`
			} `json:"items"`
		}
		if err := json.Unmarshal(api.get("/admin/users/"+uid+"/devices"), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 2 {
			t.Fatalf("admin lists %d devices, want 2: %+v", len(list.Items), list.Items)
		}
		var laptopID string
		for _, d := range list.Items {
			if strings.Contains(d.UserAgent, "Firefox") {
				laptopID = d.DeviceID
			}
		}
		if laptopID == "" {
			t.Fatalf("no Firefox device in %+v", list.Items)
		}

		status, body := api.do(http.MethodDelete, "/admin/users/"+uid+"/devices/"+laptopID, "", "")
		if status != http.StatusOK || !strings.Contains(string(body), `"sessions_ended":1`) {
			t.Fatalf("DELETE device: %d %s", status, body)
		}

		// The laptop is sent to sign in; the phone stays signed in.
		resp, _ := laptop.get(devicesURL)
		if resp.Request.URL.Path != "/login" {
			t.Errorf("signed-out laptop ended at %s, want /login", resp.Request.URL)
		}
		resp, page = phone.get(devicesURL)
		if resp.Request.URL.Path != authn.AccountDevicesPath || !strings.Contains(page, "Chrome") || strings.Contains(page, "Firefox") {
			t.Errorf("phone after the laptop's sign-out: at %s: %.1000s", resp.Request.URL, page)
		}
	})
}

// uaTransport sends every request with one User-Agent, as one browser does.
type uaTransport struct{ ua string }

func (u uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}
