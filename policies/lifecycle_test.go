package policies

import (
	"testing"
	"time"

	"github.com/portcullis/portcullis/fielderr"
)

func TestPasswordReusable(t *testing.T) {
	now := time.Date(2031, 1, 31, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name         string
		preventReuse int
		reuseDays    int
		rank         int
		age          time.Duration
		want         bool
	}{
		{"no history rule", 0, 0, 0, 0, true},
		{"current password, last 1 refused", 1, 0, 0, 400 * day, false},
		{"previous password, last 1 refused", 1, 0, 1, 0, true},
		{"third back, last 3 refused", 3, 0, 2, 400 * day, false},
		{"fourth back, last 3 refused", 3, 0, 3, 0, true},
		{"used 29 days ago, 30 days refused", 0, 30, 5, 29 * day, false},
		{"used exactly 30 days ago, 30 days refused", 0, 30, 5, 30 * day, true},
		{"used 31 days ago, 30 days refused", 0, 30, 5, 31 * day, true},
		{"old but among the last 5", 5, 30, 4, 400 * day, false},
		{"recent and past the last 5", 5, 30, 9, day, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Password{PreventReuse: tt.preventReuse, ReuseDays: tt.reuseDays}
			if got := p.Reusable(tt.rank, now.Add(-tt.age), now); got != tt.want {
				t.Errorf("Reusable(rank %d, %s old) = %v, want %v", tt.rank, tt.age, got, tt.want)
			}
			if want := tt.preventReuse > 0 || tt.reuseDays > 0; p.KeepsHistory() != want {
				t.Errorf("KeepsHistory = %v, want %v", p.KeepsHistory(), want)
			}
		})
	}
}

func TestPasswordExpired(t *testing.T) {
	set := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		days int
		at   time.Duration
		want bool
	}{
		{0, 10000 * day, false},
		{90, 90*day - time.Second, false},
		{90, 90 * day, true},
		{1, 2 * day, true},
	}
	for _, tt := range tests {
		if got := (Password{ExpireDays: tt.days}).Expired(set, set.Add(tt.at)); got != tt.want {
			t.Errorf("expire_days %d, %s after the change: Expired = %v, want %v", tt.days, tt.at, got, tt.want)
		}
	}
}

func TestAccountExpiry(t *testing.T) {
	created := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	override := created.Add(5 * day)
	tests := []struct {
		name     string
		days     int
		override *time.Time
		at       time.Duration
		want     bool
	}{
		{"never", 0, nil, 100000 * day, false},
		{"before the policy's end", 30, nil, 30*day - time.Second, false},
		{"at the policy's end", 30, nil, 30 * day, true},
		{"administrator's date comes first", 30, &override, 6 * day, true},
		{"administrator's date extends it", 1, &override, 2 * day, false},
		{"administrator's date without a policy", 0, &override, 5 * day, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Registration{AccountExpireDays: tt.days}
			if got := r.AccountExpired(created, tt.override, created.Add(tt.at)); got != tt.want {
				t.Errorf("AccountExpired = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRegistrationValidate(t *testing.T) {
	with := func(edit func(*Registration)) Registration {
		r := defaultRegistration()
		edit(&r)
		return r
	}
	tests := []struct {
		name string
		r    Registration
		want []string
	}{
		{"defaults", defaultRegistration(), nil},
		{"links at 1h and 24h", with(func(r *Registration) {
			r.ActivationLinkTTL, r.ResetLinkTTL = Duration(24*time.Hour), Duration(time.Hour)
		}), nil},
		{"links too short and too long", with(func(r *Registration) {
			r.ActivationLinkTTL, r.ResetLinkTTL = Duration(59*time.Minute), Duration(25*time.Hour)
		}), []string{"registration.activation_link_ttl", "registration.reset_link_ttl"}},
		{"rate limit off", with(func(r *Registration) { r.RateLimit.Max = 0 }), nil},
		{"rate limit negative, period too short", with(func(r *Registration) { r.RateLimit = RateLimit{Max: -1, Period: Duration(time.Millisecond)} }),
			[]string{"registration.rate_limit.max", "registration.rate_limit.period"}},
		{"expiry negative", with(func(r *Registration) { r.AccountExpireDays = -1 }), []string{"registration.account_expire_days"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Defaults()
			p.Registration = tt.r
			_, err := p.Validate()
			var got []string
			if fe, ok := fielderr.As(err); ok {
				for _, f := range fe.Fields {
					got = append(got, f.Field)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("fields at fault = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("fields at fault = %q, want %q", got, tt.want)
				}
			}
		})
	}
}
