package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/storage"
)

// DeviceStore is the device registry as the admin API uses it;
// *storage.Store satisfies it. The device routes are served when
// Config.Sessions also implements it, so they join its transactions.
type DeviceStore interface {
	UserDevices(ctx context.Context, userID string) ([]storage.UserDevice, error)
	EndDeviceSessions(ctx context.Context, userID, deviceID string) (*storage.DeviceSignOut, error)
}

var _ DeviceStore = (*storage.Store)(nil)

// DeviceView is a registered device as the API shows it.
type DeviceView struct {
	DeviceID    string    `json:"device_id"`
	Name        string    `json:"name"`
	FirstSeenAt time.Time `json:"first_seen_at"`
	LastSeenAt  time.Time `json:"last_seen_at"`
	IP          string    `json:"ip"`
	UserAgent   string    `json:"user_agent"`
}

// deviceList is the answer of GET /admin/users/{id}/devices, most recently
// seen first. A user signs in from few devices, so it is not paginated.
type deviceList struct {
	Items []DeviceView `json:"items"`
}

// deviceSignedOut is the answer of DELETE /admin/users/{id}/devices/{device_id}.
type deviceSignedOut struct {
	SessionsEnded int   `json:"sessions_ended"`
	TokensRevoked int64 `json:"tokens_revoked"`
}

// devices is the device registry, nil when the server runs without one.
func (h *handler) devices() DeviceStore {
	d, _ := h.sessions.(DeviceStore)
	return d
}

func (h *handler) listUserDevices(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	id := r.PathValue("id")
	if _, err := h.store.User(r.Context(), id); err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	rows, err := h.devices().UserDevices(r.Context(), id)
	if err != nil {
		return fmt.Errorf("list devices of user %s: %w", id, err)
	}
	items := make([]DeviceView, 0, len(rows))
	for _, d := range rows {
		items = append(items, DeviceView{
			DeviceID: d.DeviceID, Name: d.Name, FirstSeenAt: d.FirstSeenAt, LastSeenAt: d.LastSeenAt,
			IP: d.IP, UserAgent: d.UserAgent,
		})
	}
	h.writeJSON(w, r, http.StatusOK, deviceList{Items: items})
	return nil
}

// deleteUserDevice signs a device of a user out: its browser sessions end,
// the tokens issued under them are revoked and the device leaves the
// registry, with a session.ended event per session, in one transaction.
func (h *handler) deleteUserDevice(w http.ResponseWriter, r *http.Request, who *oauth.TokenInfo) error {
	id, dev := r.PathValue("id"), r.PathValue("device_id")
	var out deviceSignedOut
	err := h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		if _, err := h.store.User(ctx, id); err != nil {
			return nil, notFoundFor(err, fmt.Sprintf("no user with id %q", id))
		}
		ended, err := h.devices().EndDeviceSessions(ctx, id, dev)
		if err != nil {
			return nil, notFoundFor(err, fmt.Sprintf("user %q has no device %q", id, dev))
		}
		out = deviceSignedOut{SessionsEnded: len(ended.Sessions), TokensRevoked: ended.TokensRevoked}
		events := make([]audit.Event, 0, len(ended.Sessions)+1)
		for _, sid := range ended.Sessions {
			events = append(events, audit.Event{
				Type: audit.TypeSessionEnded, UserID: id, Reason: reasonAdmin,
				Details: map[string]any{"session_id": sid, "device_id": dev},
			})
		}
		if len(events) == 0 {
			// Even a device with no live session leaves a trace of who
			// removed it.
			events = append(events, audit.Event{
				Type: audit.TypeTokenRevoked, UserID: id, Reason: reasonAdmin,
				Details: map[string]any{"device_id": dev, "tokens_revoked": int64(0)},
			})
		}
		return events, nil
	})
	if err != nil {
		return fmt.Errorf("sign out device: %w", err)
	}
	h.writeJSON(w, r, http.StatusOK, out)
	return nil
}
