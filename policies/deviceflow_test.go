package policies

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/fielderr"
)

var deviceNow = time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)

func TestDeviceFlowValidate(t *testing.T) {
	with := func(edit func(*DeviceFlow)) DeviceFlow {
		d := defaultDeviceFlow()
		edit(&d)
		return d
	}
	tests := []struct {
		name string
		d    DeviceFlow
		want []string // "key: message" prefixes, in order
	}{
		{"defaults", defaultDeviceFlow(), nil},
		{"lower bounds inclusive", with(func(d *DeviceFlow) {
			d.CodeTTL, d.PollInterval = Duration(time.Minute), Duration(time.Second)
			d.UserCodeAttempts = DeviceCodeAttempts{Max: 1, Period: Duration(time.Minute)}
		}), nil},
		{"upper bounds inclusive", with(func(d *DeviceFlow) {
			d.CodeTTL, d.PollInterval = Duration(time.Hour), Duration(60*time.Second)
			d.UserCodeAttempts = DeviceCodeAttempts{Max: 1000, Period: Duration(24 * time.Hour)}
		}), nil},
		{"code ttl too short", with(func(d *DeviceFlow) { d.CodeTTL = Duration(59 * time.Second) }),
			[]string{"device_flow.code_ttl: must be between 1m and 1h (got 59s)"}},
		{"code ttl too long", with(func(d *DeviceFlow) { d.CodeTTL = Duration(time.Hour + time.Second) }),
			[]string{"device_flow.code_ttl: must be between 1m and 1h (got 1h0m1s)"}},
		{"code ttl zero", with(func(d *DeviceFlow) { d.CodeTTL = 0 }),
			[]string{"device_flow.code_ttl: must be between 1m and 1h"}},
		{"poll interval zero", with(func(d *DeviceFlow) { d.PollInterval = 0 }),
			[]string{"device_flow.poll_interval: must be whole seconds between 1s and 60s (got 0s)"}},
		{"poll interval negative", with(func(d *DeviceFlow) { d.PollInterval = Duration(-5 * time.Second) }),
			[]string{"device_flow.poll_interval: must be whole seconds between 1s and 60s"}},
		{"poll interval a fraction", with(func(d *DeviceFlow) { d.PollInterval = Duration(1500 * time.Millisecond) }),
			[]string{"device_flow.poll_interval: must be whole seconds between 1s and 60s (got 1.5s)"}},
		{"poll interval too long", with(func(d *DeviceFlow) { d.PollInterval = Duration(61 * time.Second) }),
			[]string{"device_flow.poll_interval: must be whole seconds between 1s and 60s (got 1m1s)"}},
		{"attempts zero is not off", with(func(d *DeviceFlow) { d.UserCodeAttempts.Max = 0 }),
			[]string{"device_flow.user_code_attempts.max: must be between 1 and 1000 (got 0); it cannot be turned off"}},
		{"attempts negative", with(func(d *DeviceFlow) { d.UserCodeAttempts.Max = -1 }),
			[]string{"device_flow.user_code_attempts.max: must be between 1 and 1000 (got -1)"}},
		{"attempts too many", with(func(d *DeviceFlow) { d.UserCodeAttempts.Max = 1001 }),
			[]string{"device_flow.user_code_attempts.max: must be between 1 and 1000 (got 1001)"}},
		{"period too short", with(func(d *DeviceFlow) { d.UserCodeAttempts.Period = Duration(30 * time.Second) }),
			[]string{"device_flow.user_code_attempts.period: must be between 1m and 24h (got 30s)"}},
		{"period too long", with(func(d *DeviceFlow) { d.UserCodeAttempts.Period = Duration(25 * time.Hour) }),
			[]string{"device_flow.user_code_attempts.period: must be between 1m and 24h (got 25h)"}},
		{"every problem at once", DeviceFlow{}, []string{
			"device_flow.code_ttl: ",
			"device_flow.poll_interval: ",
			"device_flow.user_code_attempts.max: ",
			"device_flow.user_code_attempts.period: ",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			p.DeviceFlow = tt.d
			warnings, err := p.Validate()
			var got []string
			if fe, ok := fielderr.As(err); ok {
				for _, f := range fe.Fields {
					got = append(got, f.Field+": "+f.Message)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems\n%q\nwant\n%q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start %q", i, got[i], tt.want[i])
				}
			}
			if len(warnings) != 0 {
				t.Errorf("warnings %v, want none: the device flow's bounds are hard", warnings)
			}
		})
	}
}

func TestDeviceFlowExpiry(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want time.Time
	}{
		{10 * time.Minute, deviceNow.Add(10 * time.Minute)},
		{time.Minute, deviceNow.Add(time.Minute)},
		{time.Hour, deviceNow.Add(time.Hour)},
		// A TTL Validate refuses expires at once rather than never.
		{0, deviceNow},
	}
	for _, tt := range tests {
		d := defaultDeviceFlow()
		d.CodeTTL = Duration(tt.ttl)
		if got := d.Expiry(deviceNow); !got.Equal(tt.want) {
			t.Errorf("Expiry with code_ttl %s = %s, want %s", tt.ttl, got, tt.want)
		}
	}
}

func TestDeviceFlowIntervalSeconds(t *testing.T) {
	tests := []struct {
		interval time.Duration
		want     int
	}{
		{5 * time.Second, 5},
		{time.Second, 1},
		{60 * time.Second, 60},
		// Values Validate refuses err towards slower polling.
		{1500 * time.Millisecond, 2},
		{time.Millisecond, 1},
		{0, 1},
		{-5 * time.Second, 1},
	}
	for _, tt := range tests {
		d := defaultDeviceFlow()
		d.PollInterval = Duration(tt.interval)
		if got := d.IntervalSeconds(); got != tt.want {
			t.Errorf("IntervalSeconds with poll_interval %s = %d, want %d", tt.interval, got, tt.want)
		}
	}
}

// TestDeviceFlowPatch: the section takes merge patches like every other,
// refuses bad values naming the key, and an application that customizes it
// keeps its own values while the global section moves on.
func TestDeviceFlowPatch(t *testing.T) {
	got, err := ApplyPatch(Defaults(), []byte(`{"device_flow":{"poll_interval":"10s","user_code_attempts":{"max":3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.DeviceFlow.IntervalSeconds() != 10 || got.DeviceFlow.UserCodeAttempts != (DeviceCodeAttempts{Max: 3, Period: Duration(10 * time.Minute)}) {
		t.Errorf("ApplyPatch gave %+v", got.DeviceFlow)
	}
	if _, err := got.Validate(); err != nil {
		t.Errorf("Validate of the patched policy: %v", err)
	}

	_, err = ApplyPatch(Defaults(), []byte(`{"device_flow":{"code_ttl":10}}`))
	if fe, ok := fielderr.As(err); !ok || len(fe.Fields) != 1 || fe.Fields[0].Field != "device_flow.code_ttl" {
		t.Errorf("ApplyPatch of a number for code_ttl = %v, want it refused naming device_flow.code_ttl", err)
	}

	app, err := PatchClient(Defaults(), ClientPolicy{Customized: []string{}, Effective: Defaults()}, []byte(`{"device_flow":{"code_ttl":"15m"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(app.Customized) != 1 || app.Customized[0] != "device_flow" || app.Effective.DeviceFlow.CodeTTL != Duration(15*time.Minute) {
		t.Fatalf("PatchClient = %v, %+v; want device_flow alone customized with code_ttl 15m", app.Customized, app.Effective.DeviceFlow)
	}
	global := Defaults()
	global.DeviceFlow.PollInterval = Duration(20 * time.Second)
	global.MFA.TOTP.Skew = 2
	resolved, err := ResolveClient(global, app.Document())
	if err != nil {
		t.Fatal(err)
	}
	if resolved.Effective.DeviceFlow != app.Effective.DeviceFlow {
		t.Errorf("customized device_flow = %+v after a global change, want it kept at %+v", resolved.Effective.DeviceFlow, app.Effective.DeviceFlow)
	}
	if resolved.Effective.MFA.TOTP.Skew != 2 {
		t.Errorf("uncustomized mfa.totp.skew = %d, want the global 2", resolved.Effective.MFA.TOTP.Skew)
	}
}
