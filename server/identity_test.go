package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/reqinfo"
)

const (
	deviceSecret    = "device-test-secret-0123456789abcdef-0123"
	oldDeviceSecret = "device-old-secret-0123456789abcdef-01234"
)

func mustDevices(t *testing.T, secure bool, secrets ...string) *DeviceCookie {
	t.Helper()
	if len(secrets) == 0 {
		secrets = []string{deviceSecret}
	}
	d, err := NewDeviceCookie(secrets, secure)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// identify serves req through Identify and returns what the handler saw
// and the response.
func identify(t *testing.T, proxies *ClientIP, devices *DeviceCookie, req *http.Request) (reqinfo.Info, *httptest.ResponseRecorder) {
	t.Helper()
	var seen reqinfo.Info
	h := Identify(proxies, devices)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = reqinfo.From(r.Context())
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return seen, rec
}

func deviceCookies(rec *httptest.ResponseRecorder) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range rec.Result().Cookies() {
		if strings.HasSuffix(c.Name, deviceCookieName) {
			out = append(out, c)
		}
	}
	return out
}

func TestIdentifyResolvesTrustedProxies(t *testing.T) {
	c := mustClientIP(t, []string{"10.0.0.0/8"})
	tests := []struct {
		name, remote, xff, want string
	}{
		{"behind a trusted proxy", "10.1.1.1:999", "198.51.100.7", "198.51.100.7"},
		{"untrusted peer", "203.0.113.5:1234", "198.51.100.7", "203.0.113.5"},
		{"mapped peer", "[::ffff:203.0.113.5]:1234", "", "203.0.113.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
			req.RemoteAddr = tt.remote
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			info, rec := identify(t, c, nil, req)
			if info.IP != netip.MustParseAddr(tt.want) {
				t.Fatalf("IP = %s, want %s", info.IP, tt.want)
			}
			if info.RequestID == "" || info.RequestID != rec.Header().Get(RequestIDHeader) {
				t.Fatalf("request id %q, header %q", info.RequestID, rec.Header().Get(RequestIDHeader))
			}
			if info.DeviceID != "" || len(deviceCookies(rec)) != 0 {
				t.Fatalf("without device cookies: device %q, cookies %v", info.DeviceID, deviceCookies(rec))
			}
		})
	}
}

func TestDeviceCookieIssuedOnceOnPages(t *testing.T) {
	for _, path := range []string{"/", "/login", "/login?flow=abc", "/oauth2/auth?client_id=x", "/oauth2/logout", "/account/password"} {
		t.Run(path, func(t *testing.T) {
			d := mustDevices(t, false)
			info, rec := identify(t, nil, d, httptest.NewRequest(http.MethodGet, path, nil))
			cks := deviceCookies(rec)
			if len(cks) != 1 {
				t.Fatalf("first visit set %d device cookies, want 1", len(cks))
			}
			id, _, _ := strings.Cut(cks[0].Value, ".")
			if !reqinfo.ValidDeviceID(info.DeviceID) || info.DeviceID != id {
				t.Fatalf("first visit: device %q, cookie id %q; want the new id in the request already", info.DeviceID, id)
			}

			again := httptest.NewRequest(http.MethodGet, path, nil)
			again.AddCookie(&http.Cookie{Name: cks[0].Name, Value: cks[0].Value})
			info2, rec2 := identify(t, nil, d, again)
			if info2.DeviceID != id {
				t.Fatalf("second visit: device %q, want %q", info2.DeviceID, id)
			}
			if got := deviceCookies(rec2); len(got) != 0 {
				t.Fatalf("second visit set the cookie again: %v", got)
			}
		})
	}
}

func TestDeviceCookieAttributes(t *testing.T) {
	tests := []struct {
		secure   bool
		wantName string
	}{
		{false, "portcullis_device"},
		{true, "__Host-portcullis_device"},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			_, rec := identify(t, nil, mustDevices(t, tt.secure), httptest.NewRequest(http.MethodGet, "/login", nil))
			cks := deviceCookies(rec)
			if len(cks) != 1 {
				t.Fatalf("cookies %v, want one", cks)
			}
			ck := cks[0]
			if ck.Name != tt.wantName || ck.Secure != tt.secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode ||
				ck.Path != "/" || ck.Domain != "" || ck.MaxAge != 400*24*3600 {
				t.Fatalf("cookie %s: want %s, Secure=%v, HttpOnly, SameSite=Lax, Path=/, no Domain, Max-Age 400 days", ck, tt.wantName, tt.secure)
			}
			// The other mode's name is not ours: a __Host- cookie cannot be
			// set over plain HTTP, and a plain one could be planted over
			// HTTPS by a sibling domain.
			other := "__Host-portcullis_device"
			if tt.secure {
				other = "portcullis_device"
			}
			req := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
			req.AddCookie(&http.Cookie{Name: other, Value: ck.Value})
			if info, _ := identify(t, nil, mustDevices(t, tt.secure), req); info.DeviceID != "" {
				t.Fatalf("cookie %s accepted under the name %s", ck.Value, other)
			}
		})
	}
}

func TestDeviceCookieForgedOrForeign(t *testing.T) {
	d := mustDevices(t, false)
	genuine := d.value(newDeviceID())
	id, sig, _ := strings.Cut(genuine, ".")
	otherServer := mustDevices(t, false, "another-servers-secret-0123456789abcdef").value(id)
	tests := []struct {
		name, value string
	}{
		{"garbage", "x"},
		{"no signature", id},
		{"empty signature", id + "."},
		{"signature of another id", newDeviceID() + "." + sig},
		{"signature truncated", id + "." + sig[:len(sig)-2]},
		{"signed by another secret", otherServer},
		{"chosen id", "my-device.AAAA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := httptest.NewRequest(http.MethodGet, "/login", nil)
			page.AddCookie(&http.Cookie{Name: deviceCookieName, Value: tt.value})
			info, rec := identify(t, nil, d, page)
			cks := deviceCookies(rec)
			if len(cks) != 1 || cks[0].Value == tt.value {
				t.Fatalf("page with a forged cookie: set %v, want one fresh cookie", cks)
			}
			if fresh, _, _ := strings.Cut(cks[0].Value, "."); info.DeviceID != fresh || strings.HasPrefix(tt.value, fresh) {
				t.Fatalf("device %q, fresh cookie id %q, forged value %q", info.DeviceID, fresh, tt.value)
			}

			api := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
			api.AddCookie(&http.Cookie{Name: deviceCookieName, Value: tt.value})
			info, rec = identify(t, nil, d, api)
			if info.DeviceID != "" || len(deviceCookies(rec)) != 0 {
				t.Fatalf("API request with a forged cookie: device %q, cookies %v; want none", info.DeviceID, deviceCookies(rec))
			}
		})
	}
	t.Run("a forged cookie beside the genuine one", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/login", nil)
		req.AddCookie(&http.Cookie{Name: deviceCookieName, Value: "planted.AAAA"})
		req.AddCookie(&http.Cookie{Name: deviceCookieName, Value: genuine})
		info, rec := identify(t, nil, d, req)
		if info.DeviceID != id || len(deviceCookies(rec)) != 0 {
			t.Fatalf("device %q, cookies %v; want %q and nothing set", info.DeviceID, deviceCookies(rec), id)
		}
	})
}

func TestDeviceCookieSurvivesSecretRotation(t *testing.T) {
	old := mustDevices(t, false, oldDeviceSecret)
	id := newDeviceID()
	rotated := mustDevices(t, false, deviceSecret, oldDeviceSecret)

	api := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
	api.AddCookie(&http.Cookie{Name: deviceCookieName, Value: old.value(id)})
	if info, rec := identify(t, nil, rotated, api); info.DeviceID != id || len(deviceCookies(rec)) != 0 {
		t.Fatalf("API request: device %q, cookies %v; want %q and nothing set", info.DeviceID, deviceCookies(rec), id)
	}

	page := httptest.NewRequest(http.MethodGet, "/", nil)
	page.AddCookie(&http.Cookie{Name: deviceCookieName, Value: old.value(id)})
	info, rec := identify(t, nil, rotated, page)
	cks := deviceCookies(rec)
	if info.DeviceID != id || len(cks) != 1 || cks[0].Value != rotated.value(id) {
		t.Fatalf("page: device %q, cookies %v; want %q re-signed under the new secret", info.DeviceID, cks, id)
	}
}

func TestDeviceCookieNotOnAPIEndpoints(t *testing.T) {
	for _, tt := range []struct{ method, target string }{
		{http.MethodPost, "/oauth2/token"},
		{http.MethodPost, "/oauth2/introspect"},
		{http.MethodPost, "/oauth2/revoke"},
		{http.MethodGet, "/userinfo"},
		{http.MethodPost, "/userinfo"},
		{http.MethodGet, "/.well-known/openid-configuration"},
		{http.MethodGet, "/.well-known/jwks.json"},
		{http.MethodGet, "/admin/users"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/health/ready"},
		{http.MethodGet, "/static/style.css"},
		{http.MethodGet, "/favicon.ico"},
		{http.MethodGet, "/accounts"},
		// Form posts follow the page that set the cookie.
		{http.MethodPost, "/login"},
		{http.MethodPost, "/oauth2/auth"},
	} {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			info, rec := identify(t, nil, mustDevices(t, true), httptest.NewRequest(tt.method, tt.target, nil))
			if info.DeviceID != "" || len(deviceCookies(rec)) != 0 {
				t.Fatalf("device %q, cookies %v; want none", info.DeviceID, deviceCookies(rec))
			}
		})
	}
}

func TestDeviceIDParameterWins(t *testing.T) {
	d := mustDevices(t, false)
	cookie := d.value(newDeviceID())
	tests := []struct {
		name, target string
		cookie       bool
		want         string // "" means the cookie's id
	}{
		{name: "over the cookie", target: "/oauth2/auth?device_id=ios-install-7", cookie: true, want: "ios-install-7"},
		{name: "without a cookie on an API endpoint", target: "/userinfo?device_id=android.9~x", want: "android.9~x"},
		{name: "invalid falls back to the cookie", target: "/oauth2/auth?device_id=bad%20id", cookie: true},
		{name: "too long falls back to the cookie", target: "/oauth2/auth?device_id=" + strings.Repeat("x", 129), cookie: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.cookie {
				req.AddCookie(&http.Cookie{Name: deviceCookieName, Value: cookie})
			}
			info, _ := identify(t, nil, d, req)
			want := tt.want
			if want == "" {
				want, _, _ = strings.Cut(cookie, ".")
			}
			if info.DeviceID != want {
				t.Fatalf("device %q, want %q", info.DeviceID, want)
			}
		})
	}
}

func TestNewDeviceCookie(t *testing.T) {
	if _, err := NewDeviceCookie(nil, false); err == nil {
		t.Fatal("NewDeviceCookie without secrets succeeded")
	}
	if _, err := NewDeviceCookie([]string{""}, false); err == nil {
		t.Fatal("NewDeviceCookie with an empty secret succeeded")
	}
}
