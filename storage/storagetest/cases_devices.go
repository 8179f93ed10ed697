package storagetest

import (
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

func deviceCases() []suiteCase {
	seen := func(t *testing.T, s *storage.Store, clk *Clock, user, device, ip string) {
		t.Helper()
		must(t, "UpsertUserDevice "+device, s.UpsertUserDevice(t.Context(), &storage.UserDevice{
			UserID: user, DeviceID: device, Name: "first name", LastSeenAt: clk.Now(), IP: ip, UserAgent: "ua " + ip,
		}))
	}
	return []suiteCase{
		{"Devices/UpsertKeepsFirstSeenMovesLastSeen", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			first := clk.Now()
			seen(t, s, clk, "u1", "dev-a", "192.0.2.1")
			must(t, "RenameUserDevice", s.RenameUserDevice(t.Context(), "u1", "dev-a", "Laptop"))
			clk.Advance(time.Hour)
			seen(t, s, clk, "u1", "dev-a", "192.0.2.2")
			d, err := s.UserDevice(t.Context(), "u1", "dev-a")
			must(t, "UserDevice", err)
			if !d.FirstSeenAt.Equal(first) || !d.LastSeenAt.Equal(clk.Now()) {
				t.Errorf("first/last seen = %v/%v, want %v/%v", d.FirstSeenAt, d.LastSeenAt, first, clk.Now())
			}
			if d.IP != "192.0.2.2" || d.UserAgent != "ua 192.0.2.2" || d.Name != "Laptop" {
				t.Errorf("device = %+v, want new ip and user agent, name kept", d)
			}
			_, err = s.UserDevice(t.Context(), "u1", "dev-b")
			wantErr(t, "UserDevice unknown", err, storage.ErrNotFound)
			wantErr(t, "RenameUserDevice unknown", s.RenameUserDevice(t.Context(), "u1", "dev-b", "x"), storage.ErrNotFound)
		}},
		{"Devices/ListByLastSeen", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			createUser(t, s, "u2", "bob")
			seen(t, s, clk, "u1", "dev-a", "192.0.2.1")
			clk.Advance(time.Minute)
			seen(t, s, clk, "u1", "dev-b", "192.0.2.1")
			seen(t, s, clk, "u2", "dev-c", "192.0.2.1")
			clk.Advance(time.Minute)
			seen(t, s, clk, "u1", "dev-c", "192.0.2.1")
			clk.Advance(time.Minute)
			seen(t, s, clk, "u1", "dev-a", "192.0.2.1")
			list, err := s.UserDevices(t.Context(), "u1")
			must(t, "UserDevices", err)
			var got []string
			for _, d := range list {
				got = append(got, d.DeviceID)
			}
			if want := []string{"dev-a", "dev-c", "dev-b"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
				t.Errorf("devices = %q, want %q", got, want)
			}
		}},
		{"Devices/EndDeviceSessions", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			c := createClient(t, s, "app")
			seen(t, s, clk, "u1", "dev-a", "192.0.2.1")
			seen(t, s, clk, "u1", "dev-b", "192.0.2.1")
			// Sessions started from each device, as Start makes them.
			for id, dev := range map[string]string{"s-a": "dev-a", "s-b": "dev-b"} {
				now := clk.Now()
				must(t, "CreateBrowserSession", s.CreateBrowserSession(t.Context(), &storage.BrowserSession{
					ID: id, UserID: "u1", AuthTime: now, CreatedAt: now, LastSeenAt: now,
					ExpiresAt: now.Add(time.Hour), DeviceID: dev,
				}))
			}
			got, err := s.BrowserSessionIncludingExpired(t.Context(), "s-a")
			must(t, "BrowserSessionIncludingExpired", err)
			if got.DeviceID != "dev-a" {
				t.Errorf("session device = %q, want dev-a", got.DeviceID)
			}
			atA, _ := issue(t, s, clk, c, "r1", "u1", "s-a")
			atB, _ := issue(t, s, clk, c, "r2", "u1", "s-b")

			out, err := s.EndDeviceSessions(t.Context(), "u1", "dev-a")
			must(t, "EndDeviceSessions", err)
			if len(out.Sessions) != 1 || out.Sessions[0] != "s-a" || out.TokensRevoked != 2 {
				t.Errorf("ended = %+v, want session s-a and 2 tokens", out)
			}
			if isActive(t, s, atA) || !isActive(t, s, atB) {
				t.Error("tokens: want dev-a's revoked and dev-b's live")
			}
			if _, err := s.BrowserSessionIncludingExpired(t.Context(), "s-a"); err == nil {
				t.Error("session s-a survived")
			}
			must(t, "session s-b", func() error { _, err := s.BrowserSessionIncludingExpired(t.Context(), "s-b"); return err }())
			list, err := s.UserDevices(t.Context(), "u1")
			must(t, "UserDevices", err)
			if len(list) != 1 || list[0].DeviceID != "dev-b" {
				t.Errorf("devices after delete = %+v, want only dev-b", list)
			}
			_, err = s.EndDeviceSessions(t.Context(), "u1", "dev-a")
			wantErr(t, "EndDeviceSessions again", err, storage.ErrNotFound)
		}},
		{"Devices/CascadeOnUserDelete", func(t *testing.T, s *storage.Store, clk *Clock) {
			createUser(t, s, "u1", "alice")
			seen(t, s, clk, "u1", "dev-a", "192.0.2.1")
			must(t, "DeleteUser", s.DeleteUser(t.Context(), "u1"))
			createUser(t, s, "u1", "alice")
			list, err := s.UserDevices(t.Context(), "u1")
			must(t, "UserDevices", err)
			if len(list) != 0 {
				t.Errorf("devices after user delete = %+v, want none", list)
			}
		}},
	}
}
