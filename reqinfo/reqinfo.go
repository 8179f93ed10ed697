package reqinfo

import (
	"context"
	"net/netip"
)

// Info is who a request comes from, as far as the server can tell.
type Info struct {
	// IP is the client address after trusted-proxy resolution; the zero
	// value (IsValid false) when it is not known.
	IP netip.Addr
	// RequestID correlates the request's log lines, audit events and the
	// X-Request-Id response header.
	RequestID string
	// DeviceID names the device the request comes from: the one a mobile
	// client sends as device_id, or the one in the browser's signed device
	// cookie. "" when the request names none.
	DeviceID string
}

// IPString is IP as audit events and logs spell it, "" when unknown
// (netip.Addr{}.String() would say "invalid IP", which is not an address).
func (i Info) IPString() string {
	if !i.IP.IsValid() {
		return ""
	}
	return i.IP.String()
}

type key struct{}

// With returns a copy of ctx carrying info. The server's middleware calls
// it once per request; tests call it to stand in for that middleware.
func With(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// From returns the Info ctx carries, or the zero Info when it carries none
// (outside a request, or in a handler served without the middleware).
func From(ctx context.Context) Info {
	info, _ := ctx.Value(key{}).(Info)
	return info
}

// WithDevice returns a copy of ctx whose Info names device id. It is for a
// handler that learns the device only from a parameter of the form it
// parses (device_id on the token endpoint or a login POST), which the
// middleware cannot read without consuming the body. An id that is not
// ValidDeviceID leaves ctx unchanged, so a handler may pass the form value
// as it came: a malformed parameter must not erase the device the request
// already had.
func WithDevice(ctx context.Context, id string) context.Context {
	if !ValidDeviceID(id) {
		return ctx
	}
	info := From(ctx)
	info.DeviceID = id
	return With(ctx, info)
}

// Device id bounds: long enough for any platform's installation id, short
// enough to keep audit rows and counter keys small.
const (
	// DeviceIDParam is the form and query parameter a client names its
	// device in.
	DeviceIDParam  = "device_id"
	MaxDeviceIDLen = 128
)

// ValidDeviceID reports whether id may name a device: 1 to MaxDeviceIDLen
// characters of RFC 3986's unreserved set ([A-Za-z0-9._~-]). The id ends up
// in logs, audit rows and lockout counters, so anything else is refused
// rather than escaped.
func ValidDeviceID(id string) bool {
	if len(id) == 0 || len(id) > MaxDeviceIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '~', c == '-':
		default:
			return false
		}
	}
	return true
}
