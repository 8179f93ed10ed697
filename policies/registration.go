package policies

import "time"

// Bounds of the link lifetimes: under an hour a mail delayed in a queue is
// dead on arrival; over a day a link lying in an inbox is a standing key.
const (
	minLinkTTL = time.Hour
	maxLinkTTL = 24 * time.Hour
)

// Registration is the account lifecycle policy: who may create an account,
// what proves its email address, how long the links mailed for it last,
// and when accounts expire.
type Registration struct {
	// Enabled lets people create their own accounts. Default false: only
	// administrators create accounts, and the registration page and API
	// refuse.
	Enabled bool `json:"enabled" toml:"enabled"`
	// RateLimit bounds registrations from one address.
	RateLimit RateLimit `json:"rate_limit" toml:"rate_limit"`
	// RequireEmailVerification keeps an account whose email address is not
	// verified from finishing a sign-in: it is mailed a verification link
	// instead. Default false: with mail off, the default, accounts an
	// administrator created with an unverified address could not sign in.
	RequireEmailVerification bool `json:"require_email_verification" toml:"require_email_verification"`
	// ActivationLinkTTL is how long the link mailed to the owner of an
	// account an administrator created lasts (it sets the first
	// password), and the email verification link. Default 24h; 1h to 24h.
	ActivationLinkTTL Duration `json:"activation_link_ttl" toml:"activation_link_ttl"`
	// ResetLinkTTL is how long a password reset link lasts. Default 1h;
	// 1h to 24h.
	ResetLinkTTL Duration `json:"reset_link_ttl" toml:"reset_link_ttl"`
	// AccountExpireDays is how many days after its creation an account
	// expires; an expiry date an administrator sets on the account takes
	// precedence. Default 0 (never); at most 36500.
	AccountExpireDays int `json:"account_expire_days" toml:"account_expire_days"`
}

// RateLimit is at most Max events per Period from one source, in fixed
// windows of Period.
type RateLimit struct {
	// Max events per window; 0 turns the limit off. Default 5.
	Max int `json:"max" toml:"max"`
	// Period is the window. Default 1h; at least 1s.
	Period Duration `json:"period" toml:"period"`
}

func defaultRegistration() Registration {
	return Registration{
		RateLimit:         RateLimit{Max: 5, Period: Duration(time.Hour)},
		ActivationLinkTTL: Duration(24 * time.Hour),
		ResetLinkTTL:      Duration(time.Hour),
	}
}

func (r Registration) validate(v *validator) {
	v.nonNegativeInt("registration.rate_limit.max", r.RateLimit.Max)
	if r.RateLimit.Period.D() < time.Second {
		v.fail("registration.rate_limit.period", "must be at least 1s (got %s)", r.RateLimit.Period)
	}
	for _, l := range []struct {
		field string
		ttl   Duration
	}{{"registration.activation_link_ttl", r.ActivationLinkTTL}, {"registration.reset_link_ttl", r.ResetLinkTTL}} {
		if l.ttl.D() < minLinkTTL || l.ttl.D() > maxLinkTTL {
			v.fail(l.field, "must be between 1h and 24h (got %s)", l.ttl)
		}
	}
	if r.AccountExpireDays < 0 || r.AccountExpireDays > 36500 {
		v.fail("registration.account_expire_days", "must be between 0 and 36500 (got %d)", r.AccountExpireDays)
	}
}

// AccountExpiry is when an account created at created expires: override
// (an administrator's date) when set, else AccountExpireDays after
// creation; zero means never.
func (r Registration) AccountExpiry(created time.Time, override *time.Time) time.Time {
	if override != nil {
		return *override
	}
	if r.AccountExpireDays == 0 {
		return time.Time{}
	}
	return created.Add(time.Duration(r.AccountExpireDays) * 24 * time.Hour)
}

// AccountExpired reports whether an account created at created, with the
// administrator's expiry override, has expired at now.
func (r Registration) AccountExpired(created time.Time, override *time.Time, now time.Time) bool {
	end := r.AccountExpiry(created, override)
	return !end.IsZero() && !now.Before(end)
}
