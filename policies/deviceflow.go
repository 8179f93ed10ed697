package policies

import "time"

// Bounds of the device flow keys. Under a minute nobody finishes typing a
// user code on a second device; over an hour a code shown on a screen in a
// shared room stays a standing invitation. A poll interval under a second is
// a busy loop against the token endpoint, and over a minute the person who
// approved waits at a device that seems stuck. The user code budget must
// exist: user codes are short enough to type, so they are short enough to
// guess (RFC 8628 section 5.1).
const (
	minDeviceCodeTTL      = time.Minute
	maxDeviceCodeTTL      = time.Hour
	minDevicePollInterval = time.Second
	maxDevicePollInterval = time.Minute
	maxUserCodeAttempts   = 1000
	minUserCodePeriod     = time.Minute
	maxUserCodePeriod     = 24 * time.Hour
)

// DeviceFlow is the policy of the OAuth 2.0 device authorization grant
// (RFC 8628): how long a device code and its user code last, how often the
// device may poll the token endpoint, and how many user-code look-ups the
// verification page takes from one address.
type DeviceFlow struct {
	// CodeTTL is how long the device code and the user code are valid
	// from the device authorization request (expires_in). Default 10m;
	// 1m to 1h.
	CodeTTL Duration `json:"code_ttl" toml:"code_ttl"`
	// PollInterval is the interval returned to the device and enforced at
	// the token endpoint: a poll sooner than this after the previous one
	// is answered slow_down, which adds 5 seconds to the interval of that
	// device code (RFC 8628 section 3.5). Default 5s; whole seconds, 1s to
	// 60s, because the response carries it as a number of seconds.
	PollInterval Duration `json:"poll_interval" toml:"poll_interval"`
	// UserCodeAttempts bounds the look-ups of user codes, right or wrong,
	// one address may make on the verification page: counting every one
	// keeps the count exact under parallel guesses. A code being looked
	// up names no application yet, so the page counts under the global
	// section's budget.
	UserCodeAttempts DeviceCodeAttempts `json:"user_code_attempts" toml:"user_code_attempts"`
}

// DeviceCodeAttempts is at most Max look-ups of user codes from one
// address per Period, in fixed windows of Period.
type DeviceCodeAttempts struct {
	// Max look-ups of user codes a window. Default 10; 1 to 1000. Unlike other
	// rate limits it cannot be turned off with 0: without it the short
	// user codes could be guessed.
	Max int `json:"max" toml:"max"`
	// Period is the window. Default 10m; 1m to 24h.
	Period Duration `json:"period" toml:"period"`
}

func defaultDeviceFlow() DeviceFlow {
	return DeviceFlow{
		CodeTTL:          Duration(10 * time.Minute),
		PollInterval:     Duration(5 * time.Second),
		UserCodeAttempts: DeviceCodeAttempts{Max: 10, Period: Duration(10 * time.Minute)},
	}
}

func (d DeviceFlow) validate(v *validator) {
	if d.CodeTTL.D() < minDeviceCodeTTL || d.CodeTTL.D() > maxDeviceCodeTTL {
		v.fail("device_flow.code_ttl", "must be between 1m and 1h (got %s)", d.CodeTTL)
	}
	if p := d.PollInterval.D(); p < minDevicePollInterval || p > maxDevicePollInterval || p%time.Second != 0 {
		v.fail("device_flow.poll_interval", "must be whole seconds between 1s and 60s (got %s)", d.PollInterval)
	}
	if n := d.UserCodeAttempts.Max; n < 1 || n > maxUserCodeAttempts {
		// 0 is named apart: elsewhere it turns a limit off, and whoever
		// writes it here should learn why this one cannot be.
		why := ""
		if n == 0 {
			why = "; it cannot be turned off, or user codes could be guessed"
		}
		v.fail("device_flow.user_code_attempts.max", "must be between 1 and %d (got %d)%s", maxUserCodeAttempts, n, why)
	}
	if p := d.UserCodeAttempts.Period.D(); p < minUserCodePeriod || p > maxUserCodePeriod {
		v.fail("device_flow.user_code_attempts.period", "must be between 1m and 24h (got %s)", d.UserCodeAttempts.Period)
	}
}

// Expiry is when a device code and user code issued at now stop being
// valid: now plus CodeTTL.
func (d DeviceFlow) Expiry(now time.Time) time.Time { return now.Add(d.CodeTTL.D()) }

// IntervalSeconds is PollInterval in whole seconds, as the device
// authorization response's interval carries it. An interval Validate would
// refuse is judged towards slower polling: a fraction of a second rounds up,
// and anything under a second gives 1, so that a broken policy never tells
// devices 0 (poll without pause) or to wait less than it enforces.
func (d DeviceFlow) IntervalSeconds() int {
	p := d.PollInterval.D()
	if p < time.Second {
		return 1
	}
	s := p / time.Second
	if p%time.Second != 0 {
		s++
	}
	return int(s)
}
