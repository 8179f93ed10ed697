package authn

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// strictPassword is the policy change the tests apply: longer passwords
// with a digit.
func strictPassword(p *policies.Password) { p.MinLength, p.MinDigits = 12, 1 }

// codesOf is the field, code and message of every problem in err.
func codesOf(err error) []string {
	fe, ok := fielderr.As(err)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range fe.Fields {
		out = append(out, f.Field+": "+f.Code+": "+f.Message)
	}
	return out
}

// TestAccountsFollowPasswordPolicy checks that a changed global password
// policy applies to every password write, with every problem listed.
func TestAccountsFollowPasswordPolicy(t *testing.T) {
	short := []string{
		"password: too_short: must be at least 12 characters",
		"password: needs_digit: must contain a digit",
	}
	tests := []struct {
		name     string
		write    string // create, change or reset
		password string
		want     []string // nil: accepted
	}{
		{name: "create refused", write: "create", password: "short", want: short},
		{name: "change refused", write: "change", password: "short", want: short},
		{name: "reset refused", write: "reset", password: "short", want: short},
		{name: "change lacks only the digit", write: "change", password: "long enough but no digit",
			want: []string{"password: needs_digit: must contain a digit"}},
		{name: "too long reports its code alone", write: "reset", password: strings.Repeat("x", MaxPasswordLength+1),
			want: []string{"password: too_long: must be at most 1024 bytes"}},
		{name: "create accepted", write: "create", password: "twelve chars 1"},
		{name: "change accepted", write: "change", password: "twelve chars 1"},
		{name: "reset accepted", write: "reset", password: "twelve chars 1"},
	}
	for _, tt := range tests {
		for _, b := range storagetest.Backends(t) {
			t.Run(tt.name+"/"+b.Name, func(t *testing.T) {
				e := newAccountsEnv(t, b.URL, true)
				accounts := NewAccounts(AccountsConfig{
					Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Recorder: e.recorder, Now: e.clock.Now,
					Policies: func(string) policies.Policy {
						p := policies.Defaults()
						strictPassword(&p.Password)
						return p
					},
				})
				var err error
				switch tt.write {
				case "create":
					_, err = accounts.Create(requestCtx(t), UserSpec{Username: "carol", Password: tt.password}, Actor{ID: "cli:ops"})
				case "change":
					_, err = accounts.ChangePassword(requestCtx(t), e.alice.ID, tt.password, Actor{ID: e.alice.ID}, "s-keep")
				case "reset":
					_, err = accounts.ResetPassword(requestCtx(t), e.alice.ID, tt.password, Actor{ID: "root"})
				}
				if tt.want == nil {
					if err != nil {
						t.Fatalf("%s: %v", tt.write, err)
					}
					return
				}
				if got := codesOf(err); !slices.Equal(got, tt.want) {
					t.Errorf("problems = %q, want %q (err %v)", got, tt.want, err)
				}
				if tt.write != "create" && !e.passwordIs(t, e.alice.ID, loginPassword) {
					t.Error("a refused write changed the password")
				}
			})
		}
	}
}

// TestPasswordRuleFunc checks an embedder's function rule runs after the
// policy's, and that both rules' problems are reported together.
func TestPasswordRuleFunc(t *testing.T) {
	b := storagetest.Backends(t)[0]
	e := newAccountsEnv(t, b.URL, true)
	var seen []policies.PasswordCandidate
	accounts := NewAccounts(AccountsConfig{
		Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Now: e.clock.Now,
		Rules: []policies.PasswordRule{policies.PasswordRuleFunc(func(_ context.Context, c policies.PasswordCandidate) ([]policies.PasswordProblem, error) {
			seen = append(seen, c)
			return []policies.PasswordProblem{{Code: "house_rule", Message: "must please the house"}}, nil
		})},
	})
	err := accounts.CheckPassword(t.Context(), "new_password", "Åsa", &storage.User{ID: "u1", Username: "åsa", Email: "a@example.com", Admin: true})
	want := []string{
		"new_password: too_short: must be at least 8 characters",
		"new_password: house_rule: must please the house",
	}
	if got := codesOf(err); !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
	if len(seen) != 1 || seen[0].UserID != "u1" || seen[0].Username != "åsa" || seen[0].Email != "a@example.com" ||
		!seen[0].Admin || seen[0].Password != "Åsa" || seen[0].Policy.Password != policies.Defaults().Password {
		t.Errorf("the rule saw %+v", seen)
	}
}

// TestPasswordPageListsEveryProblem checks the self-service page follows
// the policy in its hint and lists every problem in one sentence.
func TestPasswordPageListsEveryProblem(t *testing.T) {
	e := newAccountEnv(t, nil)
	e.accounts = NewAccounts(AccountsConfig{
		Store: e.st, Sessions: e.st, Hasher: cheapArgon2, Recorder: e.recorder, Now: e.clock.Now,
		Policies: func(string) policies.Policy {
			p := policies.Defaults()
			strictPassword(&p.Password)
			p.Password.MinUppercase = 1
			return p
		},
	})
	e.password = NewPasswordHandler(e.pipeline, e.sessions, e.accounts, e.csrf, e.pages, slog.New(slog.DiscardHandler))
	page, _, _ := e.passwordPage(t, e.thisCk)
	if body := page.Body.String(); !strings.Contains(body, `minlength="12"`) || !strings.Contains(body, "At least 12 characters.") {
		t.Errorf("form does not follow min_length 12:\n%s", body)
	}
	rec := e.change(t, loginPassword, "short", "short")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	const want = "The new password must be at least 12 characters, must contain an uppercase letter and must contain a digit."
	if body := rec.Body.String(); !strings.Contains(body, want) {
		t.Errorf("page lacks %q:\n%s", want, body)
	}
	if !e.passwordIs(t, loginPassword) {
		t.Error("a refused change changed the password")
	}
}
