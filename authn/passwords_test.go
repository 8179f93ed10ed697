package authn

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const (
	joseNFC = "jos\u00e9 correct horse"
	joseNFD = "jose\u0301 correct horse"
)

func TestPasswordsAreNormalizedBeforeHashing(t *testing.T) {
	tests := []struct {
		name     string
		set      string
		signIn   string
		wantOK   bool
		wantFail string // a field error at creation
	}{
		{"NFD set, NFC typed", joseNFD, joseNFC, true, ""},
		{"NFC set, NFD typed", joseNFC, joseNFD, true, ""},
		{"no-break space is a space", "correct\u00a0horse battery", "correct horse battery", true, ""},
		{"different password", joseNFC, "jose correct horse", false, ""},
		{"control character refused", "correct horse\u0007battery", "", false, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAccountsEnv(t, storagetest.SQLiteURL(t), true)
			_, err := e.accounts.Create(context.Background(), UserSpec{Username: "jose", Password: tt.set}, Actor{})
			if tt.wantFail != "" {
				fe, ok := fielderr.As(err)
				if !ok || len(fe.Fields) != 1 || fe.Fields[0].Field != "password" {
					t.Fatalf("Create = %v, want a field error naming password", err)
				}
				if _, err := e.st.UserByUsername(context.Background(), "jose"); err == nil {
					t.Fatal("the refused user was stored")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := NewPipeline(e.st, cheapArgon2, slog.New(slog.DiscardHandler), nil)
			out, err := p.PasswordLogin(context.Background(), Attempt{Username: "jose", Password: tt.signIn})
			if err != nil {
				t.Fatal(err)
			}
			if out.OK != tt.wantOK {
				t.Fatalf("sign-in OK = %v (%s), want %v", out.OK, out.Reason, tt.wantOK)
			}
		})
	}
}

// A hash stored before normalization holds the password as typed then:
// it still verifies, and is upgraded to the normalized form.
func TestPasswordHashFromBeforeNormalizationVerifiesAndIsUpgraded(t *testing.T) {
	st := openAuthnStore(t, newClock())
	u := addUser(t, st, cheapArgon2, "jose", joseNFD, false)
	p := NewPipeline(st, cheapArgon2, slog.New(slog.DiscardHandler), nil)
	out, err := p.PasswordLogin(context.Background(), Attempt{Username: "jose", Password: joseNFD})
	if err != nil || !out.OK {
		t.Fatalf("sign-in with the password as first typed = %+v, %v", out, err)
	}
	got, err := st.User(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := hashing.Verify(got.PasswordHash, joseNFC); !ok {
		t.Fatal("hash not upgraded to the normalized password")
	}
	out, err = p.PasswordLogin(context.Background(), Attempt{Username: "jose", Password: joseNFC})
	if err != nil || !out.OK {
		t.Fatalf("sign-in typed in the other form after upgrade = %+v, %v", out, err)
	}
}

// Raising the hashing parameters must not let response time tell a known
// account (whose hash is older and cheaper) from an unknown one: item 3
// of the hardening issue measured 73 ms against 188 ms. Real argon2, real
// clock: each pair is measured back to back and only the order of the two
// times is compared, so machine speed does not matter.
func TestFailedSignInTakesAsLongForAnOldHashAsForNoAccount(t *testing.T) {
	if testing.Short() {
		t.Skip("measures real hashing")
	}
	old := hashing.Argon2{Memory: 1024, Iterations: 1, Parallelism: 1}
	today := hashing.Argon2{Memory: 8192, Iterations: 2, Parallelism: 1}
	st := openAuthnStore(t, newClock())
	addUser(t, st, old, "alice", "correct horse battery", false)
	p := NewPipeline(st, today, slog.New(slog.DiscardHandler), nil)
	attempt := func(username string) time.Duration {
		start := time.Now()
		out, err := p.PasswordLogin(context.Background(), Attempt{Username: username, Password: "wrong guess"})
		if err != nil || out.OK {
			t.Fatalf("attempt = %+v, %v", out, err)
		}
		return time.Since(start)
	}
	for range 4 { // warm the averages
		attempt("alice")
		attempt("nobody")
	}
	const pairs = 40
	var known, unknown []time.Duration
	knownSlower := 0
	for i := range pairs {
		var k, u time.Duration
		if i%2 == 0 {
			k, u = attempt("alice"), attempt("nobody")
		} else {
			u, k = attempt("nobody"), attempt("alice")
		}
		known, unknown = append(known, k), append(unknown, u)
		if k > u {
			knownSlower++
		}
	}
	slices.Sort(known)
	slices.Sort(unknown)
	mk, mu := known[pairs/2], unknown[pairs/2]
	t.Logf("median known %v, unknown %v; known slower in %d of %d pairs", mk, mu, knownSlower, pairs)
	// Unpaced, the known account is faster in every pair. Paced, both
	// end at the same target and which is later is a coin toss, except
	// when load pushes the unknown account's real hash past the target.
	if knownSlower < pairs/7 {
		t.Errorf("the known account answered faster in %d of %d pairs", pairs-knownSlower, pairs)
	}
	if float64(mk) < 0.8*float64(mu) {
		t.Errorf("median failure: known account %v, unknown %v", mk, mu)
	}
}

func TestBusyHashingIsAnErrorNotAWrongPassword(t *testing.T) {
	st := openAuthnStore(t, newClock())
	addUser(t, st, cheapArgon2, "alice", "correct horse battery", false)
	limiter := hashing.NewLimiter(int64(cheapArgon2.Memory), time.Millisecond)
	p := NewPipeline(st, cheapArgon2, slog.New(slog.DiscardHandler), nil, WithLimiter(limiter))
	release, err := limiter.Acquire(context.Background(), int64(cheapArgon2.Memory))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, name := range []string{"alice", "nobody"} {
		_, err := p.PasswordLogin(context.Background(), Attempt{Username: name, Password: "correct horse battery"})
		if !errors.Is(err, hashing.ErrBusy) {
			t.Errorf("%s while hashing is full: err = %v, want hashing.ErrBusy", name, err)
		}
	}
}
