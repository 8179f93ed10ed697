package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

func TestPasswordRefusalError(t *testing.T) {
	until := time.Date(2031, time.March, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		res  PasswordGrantResult
		want string
	}{
		{"credentials", PasswordGrantResult{Refusal: RefusedCredentials}, "The username or password is wrong."},
		{"unclassified tells least", PasswordGrantResult{Refusal: PasswordRefusal(99), Until: until}, "The username or password is wrong."},
		{"account locked until, in UTC", PasswordGrantResult{Refusal: RefusedAccountLocked, Until: until},
			"The account is locked until 2031-03-04T04:06:07Z."},
		{"account locked for good", PasswordGrantResult{Refusal: RefusedAccountLocked},
			"The account is locked until an administrator unlocks it."},
		{"device locked until", PasswordGrantResult{Refusal: RefusedDeviceLocked, Until: until},
			"The account is locked on this device until 2031-03-04T04:06:07Z."},
		{"device locked for good", PasswordGrantResult{Refusal: RefusedDeviceLocked},
			"The account is locked on this device until an administrator unlocks it."},
		{"address blocked until", PasswordGrantResult{Refusal: RefusedAddressBlocked, Until: until},
			"Too many failed sign-ins from this network; sign-in from it is blocked until 2031-03-04T04:06:07Z."},
		{"address blocked, no end known", PasswordGrantResult{Refusal: RefusedAddressBlocked},
			"Too many failed sign-ins from this network; sign-in from it is blocked for now."},
		{"address rule", PasswordGrantResult{Refusal: RefusedAddressRule}, "Sign-in from this network is not allowed."},
		{"browser required", PasswordGrantResult{Refusal: RefusedBrowserRequired}, "Sign in through the browser to continue."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := passwordRefusalError(tt.res)
			if e.ErrorField != "invalid_grant" || e.CodeField != 400 {
				t.Errorf("error = %s %d, want invalid_grant 400", e.ErrorField, e.CodeField)
			}
			if got := e.GetDescription(); got != tt.want {
				t.Errorf("description = %q, want %q", got, tt.want)
			}
		})
	}
}

// fakeAuthenticator answers every attempt with res, err and remembers
// what it was asked.
type fakeAuthenticator struct {
	res   PasswordGrantResult
	err   error
	calls []string
	ctx   context.Context
}

func (f *fakeAuthenticator) PasswordGrant(ctx context.Context, username, password, clientID string) (PasswordGrantResult, error) {
	f.calls = append(f.calls, username+"/"+password+"/"+clientID)
	f.ctx = ctx
	return f.res, f.err
}

func TestPasswordGrantHandleTokenEndpointRequest(t *testing.T) {
	now := time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)
	alice := &storage.User{ID: "u-alice", Username: "alice"}
	root := &storage.User{ID: "u-root", Username: "root", Admin: true}
	ok := func(u *storage.User) PasswordGrantResult {
		return PasswordGrantResult{User: u, AMR: []string{"pwd"}, ACR: "urn:portcullis:acr:password"}
	}
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"secret"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	mobile := &storage.Client{ID: "mobile", Public: true, GrantTypes: []string{"password", "refresh_token"}, Scopes: []string{"openid", "offline_access", "admin"}}
	tests := []struct {
		name   string
		client *storage.Client
		form   url.Values
		scopes []string
		auth   *fakeAuthenticator
		// err is the RFC 6749 error wanted, "" for success; called says
		// whether the authenticator must have run.
		err    string
		called bool
		// granted are the scopes granted on success.
		granted []string
	}{
		{name: "success", client: mobile, form: form(), scopes: []string{"openid", "offline_access"},
			auth: &fakeAuthenticator{res: ok(alice)}, called: true, granted: []string{"openid", "offline_access"}},
		{name: "admin scope only for administrators", client: mobile, form: form(), scopes: []string{"openid", "admin"},
			auth: &fakeAuthenticator{res: ok(alice)}, called: true, granted: []string{"openid"}},
		{name: "admin scope for an administrator", client: mobile, form: form(), scopes: []string{"admin"},
			auth: &fakeAuthenticator{res: ok(root)}, called: true, granted: []string{"admin"}},
		{name: "client without the grant", client: &storage.Client{ID: "web", GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}},
			form: form(), auth: &fakeAuthenticator{res: ok(alice)}, err: "unauthorized_client"},
		{name: "scope the client lacks", client: mobile, form: form(), scopes: []string{"email"},
			auth: &fakeAuthenticator{res: ok(alice)}, err: "invalid_scope"},
		{name: "no password", client: mobile, form: form("password", ""),
			auth: &fakeAuthenticator{res: ok(alice)}, err: "invalid_request"},
		{name: "no username", client: mobile, form: form("username", ""),
			auth: &fakeAuthenticator{res: ok(alice)}, err: "invalid_request"},
		{name: "malformed device_id", client: mobile, form: form("device_id", "has space"),
			auth: &fakeAuthenticator{res: ok(alice)}, err: "invalid_request"},
		{name: "empty device_id", client: mobile, form: form("device_id", ""),
			auth: &fakeAuthenticator{res: ok(alice)}, err: "invalid_request"},
		{name: "valid device_id", client: mobile, form: form("device_id", "ios-7.A_b~c"),
			auth: &fakeAuthenticator{res: ok(alice)}, called: true},
		{name: "refused", client: mobile, form: form(),
			auth: &fakeAuthenticator{res: PasswordGrantResult{Refusal: RefusedAccountLocked}}, called: true, err: "invalid_grant"},
		{name: "database down", client: mobile, form: form(),
			auth: &fakeAuthenticator{err: fmt.Errorf("look up user: %w", storage.ErrUnavailable)}, called: true, err: "unavailable"},
		{name: "hashing busy", client: mobile, form: form(),
			auth: &fakeAuthenticator{err: hashing.ErrBusy}, called: true, err: "unavailable"},
		{name: "other failure", client: mobile, form: form(),
			auth: &fakeAuthenticator{err: errors.New("boom")}, called: true, err: "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Provider{cfg: Config{Issuer: "https://id.example", Now: func() time.Time { return now }}}
			h := &passwordGrantHandler{p: p, auth: tt.auth, config: &clockedConfig{
				Config: &fosite.Config{ScopeStrategy: fosite.ExactScopeStrategy, AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy},
				now:    p.cfg.Now,
			}}
			ar := fosite.NewAccessRequest(newSession())
			ar.GrantTypes = fosite.Arguments{"password"}
			ar.Form = tt.form
			ar.Client = tt.client
			ar.SetRequestedScopes(tt.scopes)
			ctx := reqinfo.With(t.Context(), reqinfo.Info{DeviceID: "from-context"})

			err := h.HandleTokenEndpointRequest(ctx, ar)

			if ar.Form.Has("password") {
				t.Error("the password is still in the request form, which is stored")
			}
			if got := len(tt.auth.calls) == 1; got != tt.called {
				t.Errorf("authenticator called %d times, want called %v", len(tt.auth.calls), tt.called)
			}
			if tt.called && tt.auth.calls[0] != "alice/secret/"+tt.client.ID {
				t.Errorf("authenticator asked %q", tt.auth.calls[0])
			}
			switch {
			case tt.err == "unavailable":
				if !unavailable(err) {
					t.Fatalf("err = %v, want one the token endpoint answers with 503", err)
				}
				return
			case tt.err != "":
				if got := fosite.ErrorToRFC6749Error(err).ErrorField; got != tt.err {
					t.Fatalf("err = %v (%s), want %s", err, got, tt.err)
				}
				if unavailable(err) {
					t.Fatalf("err = %v would be answered with 503", err)
				}
				return
			case err != nil:
				t.Fatalf("err = %v, want success", err)
			}
			if reqinfo.From(tt.auth.ctx).DeviceID != "from-context" {
				t.Error("the authenticator did not get the request's context")
			}
			sess, _ := ar.GetSession().(*Session)
			u := tt.auth.res.User
			if sess == nil || sess.Subject != u.ID || sess.Claims.Subject != u.ID || sess.ClientID != tt.client.ID || sess.Admin != u.Admin {
				t.Fatalf("session = %+v, want one for %s of client %s", sess, u.ID, tt.client.ID)
			}
			c := sess.Claims
			if !c.AuthTime.Equal(now) || !slices.Equal(c.AuthenticationMethodsReferences, []string{"pwd"}) ||
				c.AuthenticationContextClassReference != "urn:portcullis:acr:password" || c.Issuer != "https://id.example" {
				t.Errorf("claims auth_time %v amr %v acr %q iss %q", c.AuthTime, c.AuthenticationMethodsReferences, c.AuthenticationContextClassReference, c.Issuer)
			}
			if tt.granted != nil && !slices.Equal(ar.GetGrantedScopes(), fosite.Arguments(tt.granted)) {
				t.Errorf("granted %v, want %v", ar.GetGrantedScopes(), tt.granted)
			}
		})
	}
}

func TestPasswordGrantOff(t *testing.T) {
	h := &passwordGrantHandler{}
	ar := fosite.NewAccessRequest(newSession())
	ar.GrantTypes = fosite.Arguments{"password"}
	ar.Form = url.Values{"username": {"alice"}, "password": {"secret"}}
	ar.Client = &storage.Client{ID: "mobile", GrantTypes: []string{"password"}}
	err := h.HandleTokenEndpointRequest(t.Context(), ar)
	if got := fosite.ErrorToRFC6749Error(err).ErrorField; got != "unsupported_grant_type" {
		t.Fatalf("without an authenticator: %v, want unsupported_grant_type", err)
	}
	p := &Provider{}
	if slices.Contains(p.grantTypes(), GrantPassword) {
		t.Errorf("discovery advertises the password grant without an authenticator: %v", p.grantTypes())
	}
	if slices.Contains(p.grantTypes(), GrantDeviceCode) {
		t.Errorf("discovery advertises the device grant without a device store: %v", p.grantTypes())
	}
	p.cfg.PasswordGrant = &fakeAuthenticator{}
	p.cfg.Devices = &storage.Store{}
	if !slices.Equal(p.grantTypes(), GrantTypes()) {
		t.Errorf("discovery grant types %v, want %v", p.grantTypes(), GrantTypes())
	}
}
