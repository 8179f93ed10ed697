package authn

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// countingUsers counts account lookups, to tell whether a gate ran before
// the account was even looked up.
type countingUsers struct {
	UserStore
	lookups atomic.Int32
}

func (c *countingUsers) UserByUsername(ctx context.Context, name string) (*storage.User, error) {
	c.lookups.Add(1)
	return c.UserStore.UserByUsername(ctx, name)
}

func TestPipelinePhasesAndHooks(t *testing.T) {
	const password = "correct horse battery"
	clock := newClock()
	st := openAuthnStore(t, clock)
	addUser(t, st, cheapArgon2, "alice", password, false)
	until := clock.Now().Add(15 * time.Minute)

	tests := []struct {
		name        string
		hook        Hook
		password    string
		wantVerdict Verdict
		wantReason  string
		wantLookups int32
		wantUntil   bool
	}{
		{
			name: "network gate denies before the account is looked up",
			hook: Hook{Name: "ip_block", Phase: PhaseNetwork, Run: func(context.Context, *Check) (Decision, error) {
				return Denied("ip_blocked", until), nil
			}},
			password: password, wantVerdict: Deny, wantReason: "ip_blocked", wantLookups: 0, wantUntil: true,
		},
		{
			name: "account gate sees the account and denies even the right password",
			hook: Hook{Name: "locked", Phase: PhaseAccount, Run: func(_ context.Context, c *Check) (Decision, error) {
				if c.User == nil || c.User.Username != "alice" {
					return Decision{}, errors.New("account gate without the account")
				}
				return Denied("locked", until), nil
			}},
			password: password, wantVerdict: Deny, wantReason: "locked", wantLookups: 1, wantUntil: true,
		},
		{
			name: "verify-phase step runs only after the password is right",
			hook: Hook{Name: "second_factor", Phase: PhaseVerify, Run: func(context.Context, *Check) (Decision, error) {
				return Challenged(ChallengeSecondFactor, "mfa_required"), nil
			}},
			password: password, wantVerdict: Challenge, wantReason: "mfa_required", wantLookups: 1,
		},
		{
			name: "verify-phase step does not run after a wrong password",
			hook: Hook{Name: "second_factor", Phase: PhaseVerify, Run: func(context.Context, *Check) (Decision, error) {
				return Challenged(ChallengeSecondFactor, "mfa_required"), nil
			}},
			password: "wrong", wantVerdict: Deny, wantReason: ReasonBadPassword, wantLookups: 1,
		},
		{
			name: "a hook cannot wave an attempt through",
			hook: Hook{Name: "yes_man", Phase: PhaseNetwork, Run: func(context.Context, *Check) (Decision, error) {
				return Decision{Verdict: Allow}, nil
			}},
			password: "wrong", wantVerdict: Deny, wantReason: ReasonBadPassword, wantLookups: 1,
		},
		{
			name: "a denial without a reason is named after its step",
			hook: Hook{Name: "custom_rule", Phase: PhaseAccount, Run: func(context.Context, *Check) (Decision, error) {
				return Decision{Verdict: Deny}, nil
			}},
			password: password, wantVerdict: Deny, wantReason: "custom_rule", wantLookups: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := &countingUsers{UserStore: st}
			rec := audit.NewRecorder(st.Store, nil, clock.Now)
			p := NewPipeline(users, cheapArgon2, slog.New(slog.DiscardHandler), rec,
				WithHooks(tt.hook), WithClock(clock.Now), WithTransactions(st.Store))
			out, err := p.PasswordLogin(t.Context(), Attempt{Username: "alice", Password: tt.password, IP: "192.0.2.9", ClientID: "app"})
			if err != nil {
				t.Fatal(err)
			}
			if out.Decision.Verdict != tt.wantVerdict || out.Reason != tt.wantReason {
				t.Fatalf("decision = %+v, want verdict %d reason %q", out.Decision, tt.wantVerdict, tt.wantReason)
			}
			if out.OK || out.User != nil {
				t.Errorf("a refused attempt is OK or carries its user: %+v", out)
			}
			if got := users.lookups.Load(); got != tt.wantLookups {
				t.Errorf("account looked up %d times, want %d", got, tt.wantLookups)
			}
			// The record phase runs whatever the verdict.
			evs, _, err := rec.Query(t.Context(), audit.Query{Limit: 1})
			if err != nil || len(evs) != 1 || evs[0].Type != audit.TypeLoginFailed || evs[0].Reason != tt.wantReason {
				t.Fatalf("audit = %+v, %v; want one login.failed with reason %s", evs, err, tt.wantReason)
			}
			got, _ := evs[0].Details["until"].(string)
			if want := until.UTC().Format(time.RFC3339); tt.wantUntil && got != want {
				t.Errorf("audit until = %q, want %s", got, want)
			}
			if !tt.wantUntil && got != "" {
				t.Errorf("audit until = %q for a denial without one", got)
			}
		})
	}
}

// Every step of one attempt sees the policy of the attempt's client,
// resolved once, and the account's rules the global policy, resolved once.
func TestPipelineResolvesTheClientPolicyOnce(t *testing.T) {
	clock := newClock()
	st := openAuthnStore(t, clock)
	addUser(t, st, cheapArgon2, "alice", "correct horse battery", false)
	var resolved []string
	src := func(clientID string) policies.Policy {
		resolved = append(resolved, clientID)
		p := policies.Defaults()
		if clientID == "strict" {
			p.Session.MaxConcurrent = 1
		}
		return p
	}
	var seen []int
	record := func(_ context.Context, c *Check) (Decision, error) {
		seen = append(seen, c.Policy.Session.MaxConcurrent)
		if !c.Now.Equal(clock.Now()) {
			return Decision{}, errors.New("step clock is not the injected clock")
		}
		return Proceed(), nil
	}
	p := NewPipeline(st, cheapArgon2, slog.New(slog.DiscardHandler), nil, WithPolicies(src), WithClock(clock.Now),
		WithHooks(Hook{Name: "a", Phase: PhaseNetwork, Run: record}, Hook{Name: "b", Phase: PhaseAccount, Run: record},
			Hook{Name: "c", Phase: PhaseVerify, Run: record}))
	out, err := p.PasswordLogin(t.Context(), Attempt{Username: "alice", Password: "correct horse battery", ClientID: "strict"})
	if err != nil || !out.OK {
		t.Fatalf("PasswordLogin = %+v, %v", out, err)
	}
	if !slices.Equal(resolved, []string{"strict", ""}) {
		t.Errorf("policy resolved for %q, want once for strict, then once the global one", resolved)
	}
	if len(seen) != 3 || seen[0] != 1 || seen[1] != 1 || seen[2] != 1 {
		t.Errorf("steps saw max_concurrent %v, want 1 in each of three phases", seen)
	}
}
