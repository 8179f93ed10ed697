package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// AccountDevicesPath is the signed-in person's device registry.
const AccountDevicesPath = "/account/devices"

// EndReasonDeviceSignedOut is the reason of the session.ended events of a
// device signed out from the registry.
const EndReasonDeviceSignedOut = "device_signed_out"

// Messages of the devices page.
const (
	msgDeviceRenamed   = "Renamed."
	msgDeviceSignedOut = "Signed out. That device has to sign in again."
	msgDeviceNotFound  = "That device was not found. It may have been signed out already."
	msgDeviceBadName   = "Give the device a name of 1 to 64 characters."
	maxDeviceNameLen   = 64
	maxDevicesBody     = 16 << 10
)

// DeviceStore is the device registry as the devices page uses it;
// *storage.Store satisfies it. It must write to the database the Sessions
// store writes to, whose transactions it joins.
type DeviceStore interface {
	UserDevices(ctx context.Context, userID string) ([]storage.UserDevice, error)
	RenameUserDevice(ctx context.Context, userID, deviceID, name string) error
	EndDeviceSessions(ctx context.Context, userID, deviceID string) (*storage.DeviceSignOut, error)
}

var _ DeviceStore = (*storage.Store)(nil)

// accountDevices serves AccountDevicesPath: the list of the devices the
// person signed in from, rename, and "sign out this device", which ends
// that device's sessions and revokes their tokens.
type accountDevices struct {
	devices  DeviceStore
	sessions *Sessions
	csrf     *CSRF
	pages    *templates.Renderer
	logger   *slog.Logger
}

// NewAccountDevices returns the handler of AccountDevicesPath; mount it at
// that path.
func NewAccountDevices(devices DeviceStore, s *Sessions, csrf *CSRF, r *templates.Renderer, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	a := &accountDevices{devices: devices, sessions: s, csrf: csrf, pages: r, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AccountDevicesPath, a.list)
	mux.HandleFunc("POST "+AccountDevicesPath, a.change)
	return mux
}

// identity returns the signed-in person, sending anyone else to sign in
// and come back.
func (a *accountDevices) identity(w http.ResponseWriter, r *http.Request) (*Identity, bool) {
	id, err := a.sessions.Current(r)
	if err != nil {
		a.internalError(w, r, err)
		return nil, false
	}
	if id == nil {
		seeOther(w, "/login?"+url.Values{"return_to": {AccountDevicesPath}}.Encode())
		return nil, false
	}
	return id, true
}

func (a *accountDevices) list(w http.ResponseWriter, r *http.Request) {
	id, ok := a.identity(w, r)
	if !ok {
		return
	}
	var done string
	switch r.URL.Query().Get("done") {
	case "renamed":
		done = msgDeviceRenamed
	case "signed_out":
		done = msgDeviceSignedOut
	}
	a.show(w, r, id, done, "")
}

func (a *accountDevices) show(w http.ResponseWriter, r *http.Request, id *Identity, done, errMsg string) {
	ds, err := a.devices.UserDevices(r.Context(), id.User.ID)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	current := id.Session.DeviceID
	if current == "" {
		current = reqinfo.From(r.Context()).DeviceID
	}
	page := templates.DevicesPage{Username: id.User.Username, CSRFToken: a.csrf.Token(w, r), Success: done, Error: errMsg}
	for _, d := range ds {
		page.Devices = append(page.Devices, templates.DeviceView{
			ID: d.DeviceID, Name: deviceName(d), UserAgent: d.UserAgent, IP: d.IP,
			FirstSeen: d.FirstSeenAt.UTC().Format("2 Jan 2006 15:04 UTC"),
			LastSeen:  d.LastSeenAt.UTC().Format("2 Jan 2006 15:04 UTC"),
			Current:   d.DeviceID == current,
		})
	}
	a.pages.Render(w, http.StatusOK, "devices.html", page)
}

// deviceName is what the page calls a device the person has not named.
func deviceName(d storage.UserDevice) string {
	if d.Name != "" {
		return d.Name
	}
	ua := d.UserAgent
	switch {
	case ua == "":
		return "Unknown device"
	case strings.Contains(ua, "Firefox/"):
		return "Firefox"
	case strings.Contains(ua, "Edg/"):
		return "Edge"
	case strings.Contains(ua, "Chrome/"):
		return "Chrome"
	case strings.Contains(ua, "Safari/"):
		return "Safari"
	}
	return truncateUTF8(ua, 32)
}

func (a *accountDevices) change(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxDevicesBody, a.csrf, a.pages, a.logger, "devices") {
		return
	}
	id, ok := a.identity(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	dev := r.PostFormValue("device_ref")
	switch r.PostFormValue("op") {
	case "rename":
		name := strings.TrimSpace(cleanUserAgent(r.PostFormValue("name"), 4*maxDeviceNameLen))
		if name == "" || len([]rune(name)) > maxDeviceNameLen {
			a.show(w, r, id, "", msgDeviceBadName)
			return
		}
		err := a.devices.RenameUserDevice(ctx, id.User.ID, dev, name)
		if errors.Is(err, storage.ErrNotFound) {
			a.show(w, r, id, "", msgDeviceNotFound)
			return
		}
		if err != nil {
			a.internalError(w, r, err)
			return
		}
		seeOther(w, AccountDevicesPath+"?done=renamed")
	case "sign_out":
		_, err := a.sessions.EndDevice(ctx, a.devices, id.User.ID, dev, id.User.ID)
		if errors.Is(err, storage.ErrNotFound) {
			a.show(w, r, id, "", msgDeviceNotFound)
			return
		}
		if err != nil {
			a.internalError(w, r, err)
			return
		}
		// Signing out the device this page is viewed from signs this
		// browser out; the next page asks to sign in.
		seeOther(w, AccountDevicesPath+"?done=signed_out")
	default:
		showError(a.pages, w, http.StatusBadRequest, "Bad request", "The form asked for something this page does not do.")
	}
}

// EndDevice signs userID's device out through devices (ending its browser
// sessions and revoking their tokens) and records a session.ended event
// per session, in one transaction. actor is who asked.
func (s *Sessions) EndDevice(ctx context.Context, devices DeviceStore, userID, deviceID, actor string) (*storage.DeviceSignOut, error) {
	var out *storage.DeviceSignOut
	ip := reqinfo.From(ctx).IPString()
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if out, err = devices.EndDeviceSessions(ctx, userID, deviceID); err != nil {
			return err
		}
		for _, sid := range out.Sessions {
			if err := s.cfg.Recorder.Record(ctx, audit.Event{
				Type: audit.TypeSessionEnded, Actor: actor, UserID: userID, IP: ip,
				Outcome: audit.OutcomeSuccess, Reason: EndReasonDeviceSignedOut,
				Details: map[string]any{"session_id": sid, "device_id": deviceID},
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sign out device of user %s: %w", userID, err)
	}
	return out, nil
}

func (a *accountDevices) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), a.logger, "account devices", err)
	if unavailableError(a.pages, w, err) {
		return
	}
	showError(a.pages, w, http.StatusInternalServerError, "Something went wrong",
		"Your devices could not be shown or changed because of a problem on our side. Please try again later.")
}
