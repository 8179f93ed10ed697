package policies

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/fielderr"
)

func TestApplyPatch(t *testing.T) {
	withAdmin := func(p *Policy) {
		p.Token.Admin = AdminToken{AccessTokenTTL: d("5m"), RefreshTokenTTL: d("1h"), IdleTimeout: d("30m")}
	}
	tests := []struct {
		name  string
		base  func(*Policy) // applied to Defaults to get the input
		patch string
		want  func(*Policy) // applied to the input to get the result
	}{
		{name: "empty patch", patch: `{}`, want: func(*Policy) {}},
		{name: "empty section", patch: `{"token":{}}`, want: func(*Policy) {}},
		{name: "one duration", patch: `{"token":{"access_token_ttl":"5m"}}`,
			want: func(p *Policy) { p.Token.AccessTokenTTL = d("5m") }},
		{name: "long form duration", patch: `{"token":{"refresh_token_ttl":"720h0m0s"}}`,
			want: func(p *Policy) { p.Token.RefreshTokenTTL = d("720h") }},
		{name: "nested admin table", patch: `{"token":{"admin":{"idle_timeout":"10m"}}}`,
			want: func(p *Policy) { p.Token.Admin.IdleTimeout = d("10m") }},
		{name: "null resets a leaf", patch: `{"token":{"refresh_token_ttl":null,"refresh_window":"1h"}}`,
			want: func(p *Policy) { p.Token.RefreshTokenTTL, p.Token.RefreshWindow = 0, d("1h") }},
		{name: "null resets an object", base: withAdmin, patch: `{"token":{"admin":null}}`,
			want: func(p *Policy) { p.Token.Admin = AdminToken{} }},
		{name: "null resets a section", patch: `{"session":null}`,
			want: func(p *Policy) { p.Session = Session{} }},
		{name: "null next to values in the same object", base: withAdmin,
			patch: `{"token":{"admin":{"access_token_ttl":null,"refresh_token_ttl":"2h"}}}`,
			want:  func(p *Policy) { p.Token.Admin.AccessTokenTTL, p.Token.Admin.RefreshTokenTTL = 0, d("2h") }},
		{name: "array replaces whole", patch: `{"session":{"reauth_for":["email_change"]}}`,
			want: func(p *Policy) { p.Session.ReauthFor = []string{"email_change"} }},
		{name: "empty array", patch: `{"session":{"reauth_for":[]}}`,
			want: func(p *Policy) { p.Session.ReauthFor = []string{} }},
		{name: "null array", patch: `{"session":{"reauth_for":null}}`,
			want: func(p *Policy) { p.Session.ReauthFor = nil }},
		{name: "every kind of value",
			patch: `{"token":{"format":"jwt","revoke_on_change":true},"session":{"cookie":"browser","max_concurrent":3,"on_limit":"reject","invalidate_on_password_change":false}}`,
			want: func(p *Policy) {
				p.Token.Format, p.Token.RevokeOnChange = FormatJWT, true
				p.Session.Cookie, p.Session.MaxConcurrent, p.Session.OnLimit = CookieLifetime{Browser: true}, 3, OnLimitReject
				p.Session.InvalidateOnPasswordChange = false
			}},
		{name: "nonsense values are ApplyPatch's business only as types", patch: `{"token":{"access_token_ttl":"-5m","format":"paseto"}}`,
			want: func(p *Policy) { p.Token.AccessTokenTTL, p.Token.Format = d("-5m"), "paseto" }},
		{name: "whitespace and null root members", patch: " {\n\"token\" : { \"id_token_ttl\" : \"2h\" } }\n",
			want: func(p *Policy) { p.Token.IDTokenTTL = d("2h") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Defaults()
			if tt.base != nil {
				tt.base(&in)
			}
			want := in.clone()
			tt.want(&want)
			before := string(in.Canonical())
			got, err := ApplyPatch(in, []byte(tt.patch))
			if err != nil {
				t.Fatalf("ApplyPatch: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ApplyPatch =\n%s\nwant\n%s", got.Canonical(), want.Canonical())
			}
			if string(in.Canonical()) != before {
				t.Error("ApplyPatch modified its input")
			}
		})
	}
}

func TestApplyPatchErrors(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		want  map[string]string
	}{
		{"unknown key", `{"token":{"acces_token_ttl":"5m"}}`,
			map[string]string{"token.acces_token_ttl": "unknown key"}},
		{"unknown section", `{"tokens":{"access_token_ttl":"5m"}}`,
			map[string]string{"tokens": "unknown key"}},
		{"unknown nested key", `{"token":{"admin":{"id_token_ttl":"5m"}}}`,
			map[string]string{"token.admin.id_token_ttl": "unknown key"}},
		{"keys are case-sensitive", `{"Token":{},"token":{"Access_Token_TTL":"5m"}}`,
			map[string]string{"Token": "unknown key", "token.Access_Token_TTL": "unknown key"}},
		{"number for a duration", `{"token":{"access_token_ttl":900}}`,
			map[string]string{"token.access_token_ttl": `must be a duration string such as "15m"`}},
		{"bad duration string", `{"session":{"idle_timeout":"an hour"}}`,
			map[string]string{"session.idle_timeout": `invalid duration "an hour"`}},
		{"bad cookie", `{"session":{"cookie":true}}`,
			map[string]string{"session.cookie": `must be "browser" or a duration string`}},
		{"string for an integer", `{"session":{"max_concurrent":"3"}}`,
			map[string]string{"session.max_concurrent": "must be an integer"}},
		{"fraction for an integer", `{"session":{"max_concurrent":1.5}}`,
			map[string]string{"session.max_concurrent": "must be an integer"}},
		{"string for a boolean", `{"token":{"revoke_on_change":"yes"}}`,
			map[string]string{"token.revoke_on_change": "must be true or false"}},
		{"number for a string", `{"token":{"format":1}}`,
			map[string]string{"token.format": "must be a string"}},
		{"string for an array", `{"session":{"reauth_for":"password_change"}}`,
			map[string]string{"session.reauth_for": "must be an array of strings"}},
		{"bad array elements", `{"session":{"reauth_for":["password_change",5,null]}}`,
			map[string]string{"session.reauth_for[1]": "must be a string", "session.reauth_for[2]": "not null"}},
		{"value for a section", `{"token":5}`,
			map[string]string{"token": "must be an object"}},
		{"array for an object", `{"token":{"admin":[]}}`,
			map[string]string{"token.admin": "must be an object"}},
		{"array root", `[]`, map[string]string{"": "must be a JSON object"}},
		{"null root", `null`, map[string]string{"": "must be a JSON object"}},
		{"string root", `"x"`, map[string]string{"": "must be a JSON object"}},
		{"empty body", ``, map[string]string{"": "not valid JSON"}},
		{"broken JSON", `{"token":`, map[string]string{"": "not valid JSON"}},
		{"every problem at once",
			`{"token":{"acces_token_ttl":"5m","id_token_ttl":60,"access_token_ttl":"1m"},"session":{"on_limit":false},"x":1}`,
			map[string]string{
				"token.acces_token_ttl": "unknown key",
				"token.id_token_ttl":    "duration string",
				"session.on_limit":      "must be a string",
				"x":                     "unknown key",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Defaults()
			in.Token.Admin.AccessTokenTTL = d("5m")
			before := string(in.Canonical())
			got, err := ApplyPatch(in, []byte(tt.patch))
			if err == nil {
				t.Fatalf("ApplyPatch = %s, want an error", got.Canonical())
			}
			checkFields(t, "errors", errorFields(t, err), tt.want)
			// Nothing is half-applied, not even the valid keys.
			if string(got.Canonical()) != before || string(in.Canonical()) != before {
				t.Errorf("a refused patch changed the policy:\n got %s\nwant %s", got.Canonical(), before)
			}
		})
	}
}

func TestApplyPatchSharesNoMemory(t *testing.T) {
	in := Defaults()
	reauth := in.Session.ReauthFor
	// A patch that leaves reauth_for alone must still not alias it.
	got, err := ApplyPatch(in, []byte(`{"token":{"format":"jwt"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got.Session.ReauthFor[0] = "changed"
	if reauth[0] != ActionPasswordChange {
		t.Errorf("result aliases the input's reauth_for: %v", reauth)
	}

	got, err = ApplyPatch(in, []byte(`{"session":{"reauth_for":["email_change"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(reauth, []string{ActionPasswordChange, ActionMFARemoval}) || !slices.Equal(got.Session.ReauthFor, []string{ActionEmailChange}) {
		t.Errorf("input %v, result %v", reauth, got.Session.ReauthFor)
	}
}

func TestCanonical(t *testing.T) {
	const want = `{"token":{"access_token_ttl":"15m","id_token_ttl":"1h","authorization_code_ttl":"10m",` +
		`"refresh_token_ttl":"168h","refresh_window":"0s","refresh_reuse_grace":"0s","format":"opaque","revoke_on_change":false,` +
		`"admin":{"access_token_ttl":"0s","refresh_token_ttl":"0s","idle_timeout":"0s"}},` +
		`"session":{"absolute_timeout":"0s","idle_timeout":"0s","max_concurrent":0,"on_limit":"evict_oldest","cookie":"336h",` +
		`"invalidate_on_password_change":true,"reauth_max_age":"0s","reauth_for":["password_change","mfa_removal"]},` +
		`"password":{"min_length":8,"max_length":128,"min_uppercase":0,"min_lowercase":0,"min_digits":0,"min_special":0,` +
		`"allow_whitespace":true,"disallow_username":false,"check_breached":true,"hibp":false,"hibp_url":"","hibp_timeout":"2s",` +
		`"hibp_failure":"open","prevent_reuse":0,"reuse_days":0,"expire_days":0,"force_reset_if_invalid":"off"},` +
		`"lockout":{"max_failures":5,"window":"10m","action":"lock","duration":"15m","max_temporary_locks":0,` +
		`"device":{"max_failures":3,"reset_after":"15m","lock_for":"15m"},"user":{"max_device_locks":3,"reset_after":"24h","lock_for":"1h"},` +
		`"ip":{"max_failures":50,"window":"10m","block_for":"15m"},"notify_user":false,"notify_admin":false},` +
		`"ip":{"mode":"off","allow":[],"block":[],"apply_to":[]},` +
		`"captcha":{"provider":"builtin","site_key":"","verify_url":"","min_score":0.5,"show_on":["login"],"when":"after_failures"},` +
		`"registration":{"enabled":false,"rate_limit":{"max":5,"period":"1h"},"require_email_verification":false,` +
		`"activation_link_ttl":"24h","reset_link_ttl":"1h","account_expire_days":0},` +
		`"mfa":{"requirement":"optional","allowed_factors":["totp","webauthn"],"grace_period":"0s","remember_device":"0s",` +
		`"passwordless":false,"totp":{"skew":1,"max_attempts":5,"attempt_window":"5m"}},` +
		`"device_flow":{"code_ttl":"10m","poll_interval":"5s","user_code_attempts":{"max":10,"period":"10m"}}}`
	if got := string(Defaults().Canonical()); got != want {
		t.Errorf("Canonical() =\n%s\nwant\n%s", got, want)
	}

	empty, null := Defaults(), Defaults()
	empty.Session.ReauthFor, null.Session.ReauthFor = []string{}, nil
	if string(empty.Canonical()) != string(null.Canonical()) {
		t.Errorf("nil and empty reauth_for differ: %s vs %s", null.Canonical(), empty.Canonical())
	}
	if null.Session.ReauthFor != nil {
		t.Error("Canonical modified its receiver")
	}

	// The canonical form is itself a patch that reproduces the policy.
	p := Defaults()
	p.Token.Admin.IdleTimeout, p.Session.Cookie = d("90m"), CookieLifetime{Browser: true}
	back, err := ApplyPatch(Policy{}, p.Canonical())
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("ApplyPatch(Policy{}, Canonical()) = %+v, %v; want %+v", back, err, p)
	}
}

func TestOverlay(t *testing.T) {
	base := Defaults()
	for _, empty := range []string{"", "  ", "null", "{}"} {
		got, err := Overlay(base, json.RawMessage(empty))
		if err != nil || !reflect.DeepEqual(got, base) {
			t.Errorf("Overlay(base, %q) = %s, %v; want base", empty, got.Canonical(), err)
		}
	}

	got, err := Overlay(base, json.RawMessage(`{"token":{"access_token_ttl":"5m"}}`))
	if err != nil || got.Token.AccessTokenTTL != d("5m") || got.Token.IDTokenTTL != base.Token.IDTokenTTL {
		t.Errorf("Overlay = %s, %v", got.Canonical(), err)
	}

	_, err = Overlay(base, json.RawMessage(`{"token":{"gone_key":"5m"}}`))
	if fe, ok := errorsAs(err); !ok || len(fe) != 1 || fe[0].Field != "token.gone_key" {
		t.Errorf("Overlay with an unknown key = %v, want a field error on token.gone_key", err)
	}
}

func TestMergeOverlay(t *testing.T) {
	tests := []struct {
		name    string
		overlay string
		patch   string
		want    string
	}{
		{"first change", ``, `{"token":{"access_token_ttl":"5m"}}`,
			`{"token":{"access_token_ttl":"5m"}}`},
		{"untouched keys kept", `{"token":{"access_token_ttl":"5m"},"session":{"max_concurrent":2}}`,
			`{"token":{"id_token_ttl":"30m"}}`,
			`{"session":{"max_concurrent":2},"token":{"access_token_ttl":"5m","id_token_ttl":"30m"}}`},
		{"touched keys replaced", `{"token":{"access_token_ttl":"5m"}}`, `{"token":{"access_token_ttl":"10m"}}`,
			`{"token":{"access_token_ttl":"10m"}}`},
		{"null becomes an explicit zero", `{}`, `{"token":{"refresh_token_ttl":null,"refresh_window":"1h"}}`,
			`{"token":{"refresh_token_ttl":"0s","refresh_window":"1h"}}`},
		{"null on an object records every leaf", `{"token":{"admin":{"idle_timeout":"10m"}}}`, `{"token":{"admin":null}}`,
			`{"token":{"admin":{"access_token_ttl":"0s","idle_timeout":"0s","refresh_token_ttl":"0s"}}}`},
		{"arrays are leaves", `{"session":{"reauth_for":["email_change"]}}`, `{"session":{"reauth_for":["mfa_removal","email_change"]}}`,
			`{"session":{"reauth_for":["mfa_removal","email_change"]}}`},
		{"null array", `{}`, `{"session":{"reauth_for":null}}`,
			`{"session":{"reauth_for":null}}`},
		{"long duration stored short", `{}`, `{"token":{"refresh_token_ttl":"720h0m0s"}}`,
			`{"token":{"refresh_token_ttl":"720h"}}`},
		{"numbers survive", `{"session":{"max_concurrent":12345678901}}`, `{"token":{"format":"jwt"}}`,
			`{"session":{"max_concurrent":12345678901},"token":{"format":"jwt"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current, err := Overlay(Defaults(), json.RawMessage(tt.overlay))
			if err != nil {
				t.Fatalf("Overlay: %v", err)
			}
			result, err := ApplyPatch(current, []byte(tt.patch))
			if err != nil {
				t.Fatalf("ApplyPatch: %v", err)
			}
			got, err := MergeOverlay(json.RawMessage(tt.overlay), []byte(tt.patch), result)
			if err != nil {
				t.Fatalf("MergeOverlay: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MergeOverlay =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}

	t.Run("later config changes show through untouched keys", func(t *testing.T) {
		ov, err := MergeOverlay(nil, []byte(`{"token":{"access_token_ttl":"5m"}}`), Defaults())
		if err != nil {
			t.Fatal(err)
		}
		base := Defaults()
		base.Token.IDTokenTTL = d("2h")
		got, err := Overlay(base, ov)
		if err != nil || got.Token.IDTokenTTL != d("2h") {
			t.Errorf("Overlay = %s, %v; want id_token_ttl from the new base", got.Canonical(), err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		if _, err := MergeOverlay(json.RawMessage(`{"token":`), []byte(`{}`), Defaults()); err == nil {
			t.Error("a corrupt stored overlay was accepted")
		}
		_, err := MergeOverlay(nil, []byte(`{"token":{"nope":1}}`), Defaults())
		if fe, ok := errorsAs(err); !ok || len(fe) != 1 || fe[0].Field != "token.nope" {
			t.Errorf("MergeOverlay with an unknown key = %v", err)
		}
	})
}

// TestOverlayRoundTrip checks, on random documents, the property the global
// policy relies on: storing MergeOverlay's result and re-applying it to the
// base reproduces exactly what the patch produced — whatever the base, which
// is what lets config.toml change under a stored overlay.
func TestOverlayRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	leaves := leafPaths(reflect.TypeFor[Policy](), nil)
	for i := range 2000 {
		base := Defaults()
		if err := randomApply(rng, &base, leaves); err != nil {
			t.Fatal(err)
		}
		// Build a stored overlay by a few successive merges, as the admin
		// API would.
		var ov json.RawMessage
		for range rng.IntN(3) {
			current, err := Overlay(base, ov)
			if err != nil {
				t.Fatalf("case %d: Overlay: %v", i, err)
			}
			patch := randomPatch(rng, leaves)
			result, err := ApplyPatch(current, patch)
			if err != nil {
				t.Fatalf("case %d: ApplyPatch(%s): %v", i, patch, err)
			}
			if ov, err = MergeOverlay(ov, patch, result); err != nil {
				t.Fatalf("case %d: MergeOverlay: %v", i, err)
			}
		}

		current, err := Overlay(base, ov)
		if err != nil {
			t.Fatalf("case %d: Overlay: %v", i, err)
		}
		patch := randomPatch(rng, leaves)
		want, err := ApplyPatch(current, patch)
		if err != nil {
			t.Fatalf("case %d: ApplyPatch(%s): %v", i, patch, err)
		}
		newOV, err := MergeOverlay(ov, patch, want)
		if err != nil {
			t.Fatalf("case %d: MergeOverlay: %v", i, err)
		}
		got, err := Overlay(base, newOV)
		if err != nil {
			t.Fatalf("case %d: Overlay(new): %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: base %s\noverlay %s\npatch %s\nnew overlay %s\ngot  %s\nwant %s",
				i, base.Canonical(), ov, patch, newOV, got.Canonical(), want.Canonical())
		}

		// And a different base keeps every key the overlay holds.
		other := Defaults()
		if err := randomApply(rng, &other, leaves); err != nil {
			t.Fatal(err)
		}
		again, err := Overlay(other, newOV)
		if err != nil {
			t.Fatalf("case %d: Overlay(other): %v", i, err)
		}
		var touched map[string]any
		if err := json.Unmarshal(newOV, &touched); err != nil {
			t.Fatal(err)
		}
		for _, leaf := range leaves {
			if _, set := lookup(touched, leaf); set && !reflect.DeepEqual(fieldAt(again, leaf), fieldAt(want, leaf)) {
				t.Fatalf("case %d: %s = %v under another base, want %v", i, strings.Join(leaf, "."), fieldAt(again, leaf), fieldAt(want, leaf))
			}
		}
	}
}

func errorsAs(err error) ([]fielderr.Field, bool) {
	fe, ok := fielderr.As(err)
	if !ok {
		return nil, false
	}
	return fe.Fields, true
}

func leafPaths(t reflect.Type, path []string) [][]string {
	if !isObjectType(t) {
		return [][]string{path}
	}
	var out [][]string
	for i := range t.NumField() {
		out = append(out, leafPaths(t.Field(i).Type, append(slices.Clone(path), jsonName(t.Field(i))))...)
	}
	return out
}

// randomPatch builds a patch of a few random leaves, with random values or
// nulls, and now and then a null on a whole object.
func randomPatch(rng *rand.Rand, leaves [][]string) []byte {
	doc := map[string]any{}
	for range rng.IntN(5) {
		leaf := leaves[rng.IntN(len(leaves))]
		if len(leaf) > 1 && rng.IntN(8) == 0 {
			// Null on an enclosing object.
			setPath(doc, leaf[:1+rng.IntN(len(leaf)-1)], nil)
			continue
		}
		setPath(doc, leaf, randomValue(rng, leaf))
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

func randomValue(rng *rand.Rand, leaf []string) any {
	if rng.IntN(5) == 0 {
		return nil
	}
	durations := []string{"0s", "30s", "5m", "15m", "1h", "1h30m", "168h", "720h0m0s"}
	switch leaf[len(leaf)-1] {
	case "format":
		return []string{"opaque", "jwt"}[rng.IntN(2)]
	case "on_limit":
		return []string{"evict_oldest", "reject"}[rng.IntN(2)]
	case "action":
		return []string{LockoutActionLock, LockoutActionCaptcha}[rng.IntN(2)]
	case "cookie":
		if rng.IntN(3) == 0 {
			return "browser"
		}
		return durations[rng.IntN(len(durations))]
	case "reauth_for":
		all := []string{"password_change", "mfa_removal", "mfa_enrollment", "email_change"}
		return all[:rng.IntN(len(all)+1)]
	case "provider":
		all := []string{CaptchaBuiltin, CaptchaRecaptchaV2, CaptchaRecaptchaV3, CaptchaHCaptcha, CaptchaTurnstile}
		return all[rng.IntN(len(all))]
	case "site_key":
		return []string{"", "6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI"}[rng.IntN(2)]
	case "verify_url":
		return []string{"", "https://verify.example/siteverify"}[rng.IntN(2)]
	case "hibp_failure":
		return []string{HIBPFailOpen, HIBPFailClosed}[rng.IntN(2)]
	case "hibp_url":
		return []string{"", "https://range.example/range/"}[rng.IntN(2)]
	case "force_reset_if_invalid":
		return []string{ForceResetOff, ForceResetChange, ForceResetEmail}[rng.IntN(3)]
	case "show_on":
		all := []string{CaptchaOnLogin, CaptchaOnRegistration, CaptchaOnPasswordReset}
		return all[:rng.IntN(len(all)+1)]
	case "when":
		return []string{CaptchaAlways, CaptchaAfterFailures}[rng.IntN(2)]
	case "mode":
		return []string{IPModeOff, IPModeAllowlist, IPModeBlocklist}[rng.IntN(3)]
	case "allow", "block":
		all := []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::ffff:198.51.100.0/120"}
		return all[:rng.IntN(len(all)+1)]
	case "apply_to":
		return []string{IPSurfaceAdmin}[:rng.IntN(2)]
	case "requirement":
		return []string{MFAOff, MFAOptional, MFARequired}[rng.IntN(3)]
	case "allowed_factors":
		all := [][]string{{}, {FactorTOTP}, {FactorWebAuthn}, {FactorTOTP, FactorWebAuthn}, {FactorWebAuthn, FactorTOTP}}
		return all[rng.IntN(len(all))]
	}
	// The rest by type, so a new field of a known type needs nothing here.
	switch leafType(leaf) {
	case reflect.TypeFor[bool]():
		return rng.IntN(2) == 0
	case reflect.TypeFor[int]():
		return rng.IntN(10)
	case reflect.TypeFor[float64]():
		return float64(rng.IntN(11)) / 10
	case reflect.TypeFor[Duration]():
		return durations[rng.IntN(len(durations))]
	}
	panic(fmt.Sprintf("randomValue: no values for policy field %s of type %s; add them", strings.Join(leaf, "."), leafType(leaf)))
}

// leafType is the Go type of the policy field at a JSON path.
func leafType(path []string) reflect.Type {
	t := reflect.TypeFor[Policy]()
	for _, name := range path {
		for i := range t.NumField() {
			if jsonName(t.Field(i)) == name {
				t = t.Field(i).Type
				break
			}
		}
	}
	return t
}

// randomApply changes a policy by a random patch, to make random bases.
func randomApply(rng *rand.Rand, p *Policy, leaves [][]string) error {
	got, err := ApplyPatch(*p, randomPatch(rng, leaves))
	if err != nil {
		return fmt.Errorf("random base: %w", err)
	}
	*p = got
	return nil
}

func lookup(doc map[string]any, path []string) (any, bool) {
	var cur any = doc
	for _, name := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[name]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func fieldAt(p Policy, path []string) any {
	v := reflect.ValueOf(p)
	for _, name := range path {
		i, _ := fieldIndex(v.Type(), name)
		v = v.Field(i)
	}
	return v.Interface()
}
