package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// Device cookie names. On HTTPS the __Host- prefix makes the browser refuse
// the cookie unless it is Secure, host-only and Path=/, so a sibling
// subdomain cannot plant a device id of its choosing.
const (
	deviceCookieName       = "portcullis_device"
	deviceCookieNameSecure = "__Host-portcullis_device"
	// deviceCookieMaxAge is the longest lifetime browsers honour (RFC 6265bis
	// caps Max-Age at 400 days); a device should keep its id as long as it can.
	deviceCookieMaxAge = 400 * 24 * time.Hour
	// deviceKeyPurpose binds the signing key to this cookie, so no other
	// value derived from the system secret verifies as a device cookie.
	deviceKeyPurpose = "portcullis/device-cookie/v1"
	deviceIDBytes    = 16
)

// DeviceCookie issues and verifies the long-lived cookie that names a
// browser as a device. Its value is a random id and the HMAC-SHA256 of that
// id: the server keeps no table of devices, and a client cannot choose its
// id (to dodge a device lock, or to lock someone else's device out) without
// the system secret.
type DeviceCookie struct {
	// keys are derived from the system secrets, newest first: the first
	// signs, every one verifies, so rotating the secret does not make every
	// browser a new device.
	keys   [][]byte
	secure bool
}

// NewDeviceCookie derives the cookie's keys from the system secrets (newest
// first). secure selects the __Host- name and the Secure attribute; it
// holds whenever the issuer is HTTPS.
func NewDeviceCookie(secrets []string, secure bool) (*DeviceCookie, error) {
	if len(secrets) == 0 {
		return nil, errors.New("device cookie: no system secret")
	}
	d := &DeviceCookie{secure: secure}
	for _, s := range secrets {
		k, err := storage.DeriveKey(s, deviceKeyPurpose, 32)
		if err != nil {
			return nil, fmt.Errorf("device cookie: %w", err)
		}
		d.keys = append(d.keys, k)
	}
	return d, nil
}

func (d *DeviceCookie) name() string {
	if d.secure {
		return deviceCookieNameSecure
	}
	return deviceCookieName
}

// resolve returns the device id of r's cookie, or "" when it carries no
// valid one. On a page (see isPage) a missing or forged cookie is replaced
// by a fresh id, returned so that the request already counts as that
// device, and a cookie signed under an older secret is re-signed.
func (d *DeviceCookie) resolve(w http.ResponseWriter, r *http.Request, page bool) string {
	// Several cookies of one name can arrive (one planted for a parent
	// domain, on plain HTTP); the first that verifies is ours.
	for _, ck := range r.CookiesNamed(d.name()) {
		id, current, ok := d.verify(ck.Value)
		if !ok {
			continue
		}
		if !current && page {
			d.set(w, id)
		}
		return id
	}
	if !page {
		return ""
	}
	id := newDeviceID()
	d.set(w, id)
	return id
}

// verify checks value's signature in constant time under every key. ok is
// false for anything that is not an id and a valid signature; current says
// whether the newest key signed it.
func (d *DeviceCookie) verify(value string) (id string, current, ok bool) {
	id, sig, found := strings.Cut(value, ".")
	if !found || len(id) != base64.RawURLEncoding.EncodedLen(deviceIDBytes) {
		return "", false, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(mac) != sha256.Size {
		return "", false, false
	}
	for i, k := range d.keys {
		if hmac.Equal(mac, d.mac(k, id)) {
			return id, i == 0, true
		}
	}
	return "", false, false
}

func (d *DeviceCookie) mac(key []byte, id string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	return m.Sum(nil)
}

// value is the cookie value naming device id, signed with the newest key.
func (d *DeviceCookie) value(id string) string {
	return id + "." + base64.RawURLEncoding.EncodeToString(d.mac(d.keys[0], id))
}

func (d *DeviceCookie) set(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name:     d.name(),
		Value:    d.value(id),
		Path:     "/",
		MaxAge:   int(deviceCookieMaxAge / time.Second),
		HttpOnly: true,
		Secure:   d.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// newDeviceID is 128 random bits, base64url: no '.', so the id and its
// signature split unambiguously, and within the characters of a device_id
// parameter, so both kinds of id look alike in audit records.
func newDeviceID() string {
	var b [deviceIDBytes]byte
	// crypto/rand.Read never returns an error since Go 1.24.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
