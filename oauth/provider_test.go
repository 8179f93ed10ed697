package oauth

import (
	"context"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// near allows for the moments between reading the injected clock and the
// wall clock; the offsets tested are at least two seconds.
func near(got, want time.Duration) bool {
	d := got - want
	return d > -time.Second && d < time.Second
}

func TestClockedConfigLifespans(t *testing.T) {
	base := &fosite.Config{
		AccessTokenLifespan:   2 * time.Hour,
		RefreshTokenLifespan:  48 * time.Hour,
		AuthorizeCodeLifespan: 15 * time.Minute,
		IDTokenLifespan:       3 * time.Hour,
	}
	getters := []struct {
		name string
		get  func(*clockedConfig, context.Context) time.Duration
		d    time.Duration // the configured lifespan
	}{
		{"access token", (*clockedConfig).GetAccessTokenLifespan, base.AccessTokenLifespan},
		{"refresh token", (*clockedConfig).GetRefreshTokenLifespan, base.RefreshTokenLifespan},
		{"authorize code", (*clockedConfig).GetAuthorizeCodeLifespan, base.AuthorizeCodeLifespan},
		{"ID token", (*clockedConfig).GetIDTokenLifespan, base.IDTokenLifespan},
	}
	offsets := []struct {
		name   string
		offset time.Duration // injected clock minus wall clock
		skewed bool
	}{
		{"no offset", 0, false},
		{"500ms ahead", 500 * time.Millisecond, false},
		{"500ms behind", -500 * time.Millisecond, false},
		{"2s ahead", 2 * time.Second, true},
		{"1h ahead", time.Hour, true},
		{"10m behind", -10 * time.Minute, true},
		{"30 days ahead", 30 * 24 * time.Hour, true},
	}
	for _, g := range getters {
		for _, o := range offsets {
			t.Run(g.name+"/"+o.name, func(t *testing.T) {
				c := &clockedConfig{Config: base, now: func() time.Time { return time.Now().Add(o.offset) }}
				got := g.get(c, t.Context())
				if !o.skewed {
					if got != g.d {
						t.Fatalf("lifespan = %v, want %v unchanged", got, g.d)
					}
					return
				}
				// The offset is measured a moment after the clock was read.
				want := g.d + o.offset
				if !near(got, want) {
					t.Fatalf("lifespan = %v, want %v (%v + offset %v)", got, want, g.d, o.offset)
				}
			})
		}
	}
}

func TestClockedConfigNoExpiryAndDefaults(t *testing.T) {
	ahead := func() time.Time { return time.Now().Add(time.Hour) }
	tests := []struct {
		name string
		cfg  *fosite.Config
		get  func(*clockedConfig, context.Context) time.Duration
		want time.Duration // before the offset; -1 and 0 get none
		skew bool
	}{
		{"refresh -1 stays -1", &fosite.Config{RefreshTokenLifespan: -1}, (*clockedConfig).GetRefreshTokenLifespan, -1, false},
		{"access -1 stays -1", &fosite.Config{AccessTokenLifespan: -1}, (*clockedConfig).GetAccessTokenLifespan, -1, false},
		// An unset lifespan is fosite's default, and that default is skewed.
		{"access unset uses fosite default", &fosite.Config{}, (*clockedConfig).GetAccessTokenLifespan, time.Hour, true},
		{"refresh unset uses fosite default", &fosite.Config{}, (*clockedConfig).GetRefreshTokenLifespan, 30 * 24 * time.Hour, true},
		{"code unset uses fosite default", &fosite.Config{}, (*clockedConfig).GetAuthorizeCodeLifespan, 15 * time.Minute, true},
		{"ID token unset uses fosite default", &fosite.Config{}, (*clockedConfig).GetIDTokenLifespan, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clockedConfig{Config: tt.cfg, now: ahead}
			got := tt.get(c, t.Context())
			if !tt.skew {
				if got != tt.want {
					t.Fatalf("lifespan = %v, want %v", got, tt.want)
				}
				return
			}
			if want := tt.want + time.Hour; !near(got, want) {
				t.Fatalf("lifespan = %v, want %v", got, want)
			}
		})
	}
}

// TestClockedConfigExpiryStamp: fosite stamps time.Now() + lifespan; with the
// skewed lifespan that lands on the injected clock's now + the lifespan.
func TestClockedConfigExpiryStamp(t *testing.T) {
	injected := time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)
	c := &clockedConfig{Config: &fosite.Config{AccessTokenLifespan: time.Hour}, now: func() time.Time { return injected }}
	stamp := time.Now().UTC().Add(c.GetAccessTokenLifespan(t.Context())) // as fosite does
	want := injected.Add(time.Hour)
	if !near(stamp.Sub(want), 0) {
		t.Fatalf("expiry stamped at %v, want %v", stamp, want)
	}
}
