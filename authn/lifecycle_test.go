package authn

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// lifecycleEnv is the accounts service under a password policy the test
// edits, with a breached list of its own and an injected clock.
type lifecycleEnv struct {
	st       *storage.Store
	clock    *storagetest.Clock
	recorder *audit.Recorder
	accounts *Accounts
	links    *Links
	mails    []LinkMail
	mu       sync.Mutex
	policy   policies.Policy
}

// listBreaches is a BreachChecker over a fixed list, with a switchable
// outage of the online check.
type listBreaches struct {
	leaked  []string
	offline bool
}

func (b *listBreaches) Breached(_ context.Context, password string, p policies.Password) (bool, error) {
	if slices.Contains(b.leaked, password) {
		return true, nil
	}
	if b.offline && p.HIBP && p.HIBPFailure == policies.HIBPFailClosed {
		return false, ErrBreachCheckUnavailable
	}
	return false, nil
}

func newLifecycleEnv(t *testing.T, edit func(*policies.Policy)) *lifecycleEnv {
	t.Helper()
	e := &lifecycleEnv{clock: newClock(), policy: policies.Defaults()}
	if edit != nil {
		edit(&e.policy)
	}
	e.st = storagetest.OpenWithClock(t, storagetest.SQLiteURL(t), e.clock.Now)
	e.recorder = audit.NewRecorder(e.st, nil, e.clock.Now)
	source := func(string) policies.Policy {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.policy
	}
	e.accounts = NewAccounts(AccountsConfig{
		Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Recorder: e.recorder, Now: e.clock.Now, Policies: source,
		Breaches: &listBreaches{leaked: []string{"password123", "iloveyou2"}},
	})
	e.links = NewLinks(LinksConfig{Store: e.st, Issuer: "https://id.example.test", Policies: source, Recorder: e.recorder,
		Now: e.clock.Now, Mail: func(m LinkMail) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.mails = append(e.mails, m)
			return true
		}})
	return e
}

func (e *lifecycleEnv) create(t *testing.T, username, password string) *storage.User {
	t.Helper()
	u, err := e.accounts.Create(t.Context(), UserSpec{Username: username, Password: password, Email: username + "@example.test"}, Actor{ID: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// problemCodes is the code of every problem in err.
func problemCodes(err error) []string {
	fe, ok := fielderr.As(err)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range fe.Fields {
		out = append(out, f.Code)
	}
	return out
}

func TestHistoryByCount(t *testing.T) {
	e := newLifecycleEnv(t, func(p *policies.Policy) { p.Password.PreventReuse = 3 })
	u := e.create(t, "alice", "first passphrase 1")
	change := func(pw string) error {
		_, err := e.accounts.ResetPassword(t.Context(), u.ID, pw, Actor{ID: "admin"})
		return err
	}
	for _, pw := range []string{"second passphrase 2", "third passphrase 3"} {
		if err := change(pw); err != nil {
			t.Fatalf("change to %q: %v", pw, err)
		}
	}
	// The last three, the current one included, are refused.
	for _, pw := range []string{"third passphrase 3", "second passphrase 2", "first passphrase 1"} {
		if codes := problemCodes(change(pw)); !slices.Equal(codes, []string{policies.PasswordReused}) {
			t.Errorf("reuse of %q: codes %v, want [password_reused]", pw, codes)
		}
	}
	if err := change("fourth passphrase 4"); err != nil {
		t.Fatal(err)
	}
	// The first is now four back: allowed again.
	if err := change("first passphrase 1"); err != nil {
		t.Errorf("the password four back is refused: %v", err)
	}
	history, err := e.st.PasswordHistory(t.Context(), u.ID, 100)
	if err != nil || len(history) != 3 {
		t.Errorf("history keeps %d hashes (%v), want the policy's 3", len(history), err)
	}
}

func TestHistoryByDays(t *testing.T) {
	e := newLifecycleEnv(t, func(p *policies.Policy) { p.Password.ReuseDays = 30 })
	u := e.create(t, "alice", "first passphrase 1")
	change := func(pw string) error {
		_, err := e.accounts.ResetPassword(t.Context(), u.ID, pw, Actor{ID: "admin"})
		return err
	}
	e.clock.Advance(10 * 24 * time.Hour)
	if err := change("second passphrase 2"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(19 * 24 * time.Hour) // the first was set 29 days ago
	if codes := problemCodes(change("first passphrase 1")); !slices.Equal(codes, []string{policies.PasswordReused}) {
		t.Errorf("a password of 29 days ago: codes %v, want [password_reused]", codes)
	}
	e.clock.Advance(24 * time.Hour) // 30 days
	if err := change("first passphrase 1"); err != nil {
		t.Errorf("a password of 30 days ago is refused: %v", err)
	}
	// The second was set 20 days ago.
	if codes := problemCodes(change("second passphrase 2")); !slices.Equal(codes, []string{policies.PasswordReused}) {
		t.Errorf("a password of 20 days ago: codes %v, want [password_reused]", codes)
	}
}

// A password set before the history was kept still counts as the current
// one when a history rule is turned on.
func TestHistoryCountsThePasswordSetBeforeIt(t *testing.T) {
	e := newLifecycleEnv(t, nil)
	u := e.create(t, "alice", "first passphrase 1")
	e.mu.Lock()
	e.policy.Password.PreventReuse = 1
	e.mu.Unlock()
	if _, err := e.accounts.ResetPassword(t.Context(), u.ID, "first passphrase 1", Actor{ID: "admin"}); !slices.Equal(problemCodes(err), []string{policies.PasswordReused}) {
		t.Errorf("the current password again: %v, want password_reused", err)
	}
}

func TestBreachedAndFacts(t *testing.T) {
	e := newLifecycleEnv(t, nil)
	_, err := e.accounts.Create(t.Context(), UserSpec{Username: "alice", Password: "password123"}, Actor{ID: "setup"})
	if codes := problemCodes(err); !slices.Equal(codes, []string{policies.PasswordBreached}) {
		t.Errorf("a leaked password: codes %v, want [password_breached]", codes)
	}
	// Off, the same password is accepted, and its facts say it leaked,
	// for a preview of turning the check back on.
	e.mu.Lock()
	e.policy.Password.CheckBreached = false
	e.mu.Unlock()
	u := e.create(t, "alice", "password123")
	stored, err := e.st.User(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var facts policies.PasswordFacts
	if err := json.Unmarshal([]byte(stored.PasswordFacts), &facts); err != nil {
		t.Fatalf("password facts %q: %v", stored.PasswordFacts, err)
	}
	want := policies.PasswordFacts{Length: 11, Lower: 8, Digits: 3, Breached: true}
	if facts != want {
		t.Errorf("facts = %+v, want %+v", facts, want)
	}
	if stored.PasswordChangedAt == nil || !stored.PasswordChangedAt.Equal(e.clock.Now()) {
		t.Errorf("password_changed_at = %v, want %v", stored.PasswordChangedAt, e.clock.Now())
	}
}

func TestBreachCheckFailingClosed(t *testing.T) {
	e := newLifecycleEnv(t, func(p *policies.Policy) { p.Password.HIBP, p.Password.HIBPFailure = true, policies.HIBPFailClosed })
	e.accounts.breaches.(*listBreaches).offline = true
	_, err := e.accounts.Create(t.Context(), UserSpec{Username: "alice", Password: "a fine passphrase"}, Actor{ID: "setup"})
	if codes := problemCodes(err); !slices.Equal(codes, []string{PasswordBreachCheckUnavailable}) {
		t.Errorf("with the range API down and failing closed: codes %v, want [%s]", codes, PasswordBreachCheckUnavailable)
	}
}

// A reset link sets a password once, whoever clicks first: of parallel
// submissions exactly one changes the password, and a refused password
// leaves the link usable.
func TestResetLinkSingleUseUnderParallelSubmissions(t *testing.T) {
	e := newLifecycleEnv(t, nil)
	u := e.create(t, "alice", "first passphrase 1")
	if sent, err := e.links.Send(t.Context(), u, LinkReset, Actor{ID: u.ID}); err != nil || !sent {
		t.Fatalf("Send = %v, %v", sent, err)
	}
	token := tokenOf(t, e.mails[0].Link)
	if _, _, err := e.accounts.SetPasswordWithLink(t.Context(), e.links, LinkReset, token, "short"); !slices.Equal(problemCodes(err), []string{policies.PasswordTooShort}) {
		t.Fatalf("a refused password: %v", err)
	}
	const n = 10
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		ok, invalid int
	)
	for i := range n {
		wg.Go(func() {
			_, _, err := e.accounts.SetPasswordWithLink(t.Context(), e.links, LinkReset, token, "new passphrase number "+string(rune('a'+i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrLinkInvalid):
				invalid++
			default:
				t.Errorf("SetPasswordWithLink: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || invalid != n-1 {
		t.Errorf("%d parallel resets with one link: %d succeeded, %d refused; want 1 and %d", n, ok, invalid, n-1)
	}
	changed := eventsOf(t, e.recorder, audit.TypePasswordChanged)
	if len(changed) != 1 || changed[0].Reason != PasswordReasonResetLink {
		t.Errorf("password.changed events %+v, want one by reset link", changed)
	}
	stored, _ := e.st.User(t.Context(), u.ID)
	if !stored.EmailVerified {
		t.Error("a used reset link does not mark the address verified")
	}
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("no token in %q (%v)", link, err)
	}
	return u.Query().Get("token")
}
