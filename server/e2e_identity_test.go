package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/portcullis/portcullis/audit"
)

// deviceOf is the device id in the device cookie b holds for the server.
func (b *browser) deviceOf() string {
	b.t.Helper()
	u, _ := url.Parse(b.issuer)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "portcullis_device" {
			id, _, _ := strings.Cut(c.Value, ".")
			return id
		}
	}
	b.t.Fatalf("browser holds no device cookie")
	return ""
}

// One browser is one device from its first page on: its sign-in's events
// name the device of its cookie and its address, and a mobile client's
// device_id on the token endpoint names the device of the grant.
func TestSignInEventsCarryDeviceAndAddress(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL, true)
		ctx := context.Background()
		events := func(typ string) []audit.Event {
			t.Helper()
			evs, _, err := f.srv.Audit().Query(ctx, audit.Query{Type: typ, UserID: f.userID})
			if err != nil {
				t.Fatal(err)
			}
			return evs
		}

		b := f.browser()
		code, verifier := f.code(b)
		device := b.deviceOf()
		for _, typ := range []string{audit.TypeLoginSuccess, audit.TypeSessionStarted} {
			evs := events(typ)
			if len(evs) != 1 || evs[0].Device != device || evs[0].IP != "127.0.0.1" {
				t.Fatalf("%s events = %+v; want one on device %s from 127.0.0.1", typ, evs, device)
			}
		}

		// The code is redeemed by the application's back end, which has no
		// device cookie; a mobile client names its device instead.
		if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("device_id", "ios-install-7")); err != nil {
			t.Fatalf("exchange: %v", err)
		}
		issued := events(audit.TypeTokenIssued)
		if len(issued) != 1 || issued[0].Device != "ios-install-7" || issued[0].IP != "127.0.0.1" {
			t.Fatalf("token.issued events = %+v; want one on device ios-install-7", issued)
		}

		// The same browser stays the same device (signed in already, it
		// goes straight through); another browser is another device.
		f.code(b)
		if again := b.deviceOf(); again != device {
			t.Fatalf("device cookie changed from %s to %s", device, again)
		}
		other := f.browser()
		f.code(other)
		if d := other.deviceOf(); d == device {
			t.Fatalf("two browsers share device %s", d)
		}
		var devices []string
		for _, e := range events(audit.TypeLoginSuccess) {
			devices = append(devices, e.Device)
		}
		if want := []string{other.deviceOf(), device}; strings.Join(devices, " ") != strings.Join(want, " ") {
			t.Fatalf("login.success devices (newest first) = %v, want %v", devices, want)
		}
	})
}
