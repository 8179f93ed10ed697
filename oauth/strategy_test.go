package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

const (
	testCodeTTL   = 10 * time.Minute
	testAccessTTL = time.Hour
)

// newTestStrategy builds the strategy as provider.go does: an HMAC strategy
// over a fosite.Config holding a 32-byte global secret, and fosite's JWT
// strategy, signing with signer (an in-memory ES256 key when nil), for JWT
// access tokens.
func newTestStrategy(t *testing.T, now func() time.Time, defaultJWT bool, signer jwt.Signer) *tokenStrategy {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	fc := &fosite.Config{
		GlobalSecret:        secret,
		AccessTokenIssuer:   "https://issuer.example",
		AccessTokenLifespan: testAccessTTL,
		JWTScopeClaimKey:    jwt.JWTScopeFieldString,
	}
	if signer == nil {
		signer = &jwt.DefaultSigner{GetPrivateKey: memoryES256Key(t)}
	}
	s := &tokenStrategy{
		hmac:      &hmac.HMACStrategy{Config: fc},
		jwt:       &oauth2.DefaultJWTStrategy{Signer: signer, Config: fc},
		policies:  staticPolicy(defaultJWT),
		codeTTL:   testCodeTTL,
		accessTTL: testAccessTTL,
		now:       now,
	}
	s.jwt.HMACSHAStrategy = s
	return s
}

// staticPolicy is a PolicySource whose every client gets the default
// policy, with JWT access tokens when jwt is set.
type staticPolicyFn func(string) policies.Policy

func (f staticPolicyFn) For(id string) policies.Policy { return f(id) }

func staticPolicy(jwt bool) PolicySource {
	return staticPolicyFn(func(string) policies.Policy {
		p := policies.Defaults()
		if jwt {
			p.Token.Format = policies.FormatJWT
		}
		return p
	})
}

func memoryES256Key(t *testing.T) jwt.GetPrivateKeyFunc {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := &josev3.JSONWebKey{Key: k, KeyID: "test", Algorithm: AlgES256, Use: "sig"}
	return func(context.Context) (interface{}, error) { return jwk, nil }
}

// newRequest is a token request of client made at requestedAt; exp sets the
// session's expiry per token type (unset types have none).
func newRequest(client fosite.Client, requestedAt time.Time, exp map[fosite.TokenType]time.Time) *fosite.Request {
	r := fosite.NewRequest()
	r.Client = client
	r.RequestedAt = requestedAt
	sess := newSession()
	sess.Subject = "alice"
	sess.ClientID = client.GetID()
	for tt, at := range exp {
		sess.SetExpiresAt(tt, at)
	}
	r.Session = sess
	return r
}

func opaqueClient() *storage.Client {
	return &storage.Client{ID: "app", AccessTokenFormat: "opaque"}
}

// tokenKind binds one kind of opaque token to the strategy's methods.
type tokenKind struct {
	name     string
	prefix   string
	generate func(*tokenStrategy, context.Context, fosite.Requester) (string, string, error)
	validate func(*tokenStrategy, context.Context, fosite.Requester, string) error
	sig      func(*tokenStrategy, context.Context, string) string
}

var (
	accessKind = tokenKind{"access token", prefixAccess,
		(*tokenStrategy).GenerateAccessToken, (*tokenStrategy).ValidateAccessToken, (*tokenStrategy).AccessTokenSignature}
	refreshKind = tokenKind{"refresh token", prefixRefresh,
		(*tokenStrategy).GenerateRefreshToken, (*tokenStrategy).ValidateRefreshToken, (*tokenStrategy).RefreshTokenSignature}
	codeKind = tokenKind{"authorization code", prefixCode,
		(*tokenStrategy).GenerateAuthorizeCode, (*tokenStrategy).ValidateAuthorizeCode, (*tokenStrategy).AuthorizeCodeSignature}
	allKinds = []tokenKind{accessKind, refreshKind, codeKind}
)

func TestOpaqueTokensArePrefixed(t *testing.T) {
	clock := storagetest.NewClock(keyEpoch)
	s := newTestStrategy(t, clock.Now, false, nil)
	ctx := t.Context()
	for _, k := range allKinds {
		t.Run(k.name, func(t *testing.T) {
			r := newRequest(opaqueClient(), clock.Now(), nil)
			tok, sig, err := k.generate(s, ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tok, k.prefix) {
				t.Fatalf("token %q lacks the prefix %q", tok, k.prefix)
			}
			key, gotSig, ok := strings.Cut(strings.TrimPrefix(tok, k.prefix), ".")
			if !ok || key == "" || gotSig != sig {
				t.Fatalf("token %q is not prefix+key.signature with signature %q", tok, sig)
			}
			if strings.Contains(sig, k.prefix) {
				t.Fatalf("signature %q carries the prefix", sig)
			}
			if got := k.sig(s, ctx, tok); got != sig {
				t.Fatalf("signature extracted from the token = %q, want %q", got, sig)
			}
			if err := k.validate(s, ctx, r, tok); err != nil {
				t.Fatalf("fresh token does not validate: %v", err)
			}
			tok2, sig2, err := k.generate(s, ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if tok2 == tok || sig2 == sig {
				t.Fatal("two generated tokens are equal")
			}
		})
	}
}

func TestTokenSignature(t *testing.T) {
	s := newTestStrategy(t, time.Now, false, nil)
	ctx := t.Context()
	tests := []struct {
		name  string
		kind  tokenKind
		token string
		want  string
	}{
		{"access", accessKind, "pc_at_KEY.SIG", "SIG"},
		{"refresh", refreshKind, "pc_rt_KEY.SIG", "SIG"},
		{"code", codeKind, "pc_ac_KEY.SIG", "SIG"},
		{"access without dot", accessKind, "pc_at_KEYSIG", ""},
		{"refresh with extra dot", refreshKind, "pc_rt_A.B.C", ""},
		{"JWT access token", accessKind, "header.payload.jwtsig", "jwtsig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.sig(s, ctx, tt.token); got != tt.want {
				t.Fatalf("signature of %q = %q, want %q", tt.token, got, tt.want)
			}
		})
	}
}

// tamper changes the first character of the token's HMAC signature (the last
// character of unpadded base64 may carry only ignored bits).
func tamper(tok string) string {
	i := strings.LastIndex(tok, ".") + 1
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// tamperKey changes the first character of the token's random part, just
// after the six-character prefix.
func tamperKey(tok string) string {
	const i = len(prefixAccess)
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func TestValidateOpaqueTokens(t *testing.T) {
	clock := storagetest.NewClock(keyEpoch)
	now := clock.Now()
	ctx := t.Context()
	s := newTestStrategy(t, clock.Now, false, nil)
	other := newTestStrategy(t, clock.Now, false, nil) // another secret
	live := map[fosite.TokenType]time.Time{
		fosite.AccessToken:   now.Add(time.Minute),
		fosite.RefreshToken:  now.Add(time.Minute),
		fosite.AuthorizeCode: now.Add(time.Minute),
	}

	tests := []struct {
		name        string
		issue       tokenKind
		present     tokenKind
		issuer      *tokenStrategy // nil: s
		mutate      func(string) string
		requestedAt time.Time
		exp         map[fosite.TokenType]time.Time
		wantErr     error
	}{
		{name: "access valid", issue: accessKind, present: accessKind, exp: live},
		{name: "refresh valid", issue: refreshKind, present: refreshKind, exp: live},
		{name: "code valid", issue: codeKind, present: codeKind, exp: live},

		// wrong kind: one HMAC key signs all three, so only the prefix tells.
		{name: "access as refresh", issue: accessKind, present: refreshKind, exp: live, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "access as code", issue: accessKind, present: codeKind, exp: live, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "refresh as access", issue: refreshKind, present: accessKind, exp: live, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "refresh as code", issue: refreshKind, present: codeKind, exp: live, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "code as access", issue: codeKind, present: accessKind, exp: live, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "code as refresh", issue: codeKind, present: refreshKind, exp: live, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "access without prefix", issue: accessKind, present: accessKind, exp: live,
			mutate: func(s string) string { return strings.TrimPrefix(s, prefixAccess) }, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "refresh without prefix", issue: refreshKind, present: refreshKind, exp: live,
			mutate: func(s string) string { return strings.TrimPrefix(s, prefixRefresh) }, wantErr: fosite.ErrInvalidTokenFormat},
		{name: "code without prefix", issue: codeKind, present: codeKind, exp: live,
			mutate: func(s string) string { return strings.TrimPrefix(s, prefixCode) }, wantErr: fosite.ErrInvalidTokenFormat},

		// tampered or foreign
		{name: "access tampered signature", issue: accessKind, present: accessKind, exp: live, mutate: tamper, wantErr: fosite.ErrTokenSignatureMismatch},
		{name: "refresh tampered signature", issue: refreshKind, present: refreshKind, exp: live, mutate: tamper, wantErr: fosite.ErrTokenSignatureMismatch},
		{name: "code tampered signature", issue: codeKind, present: codeKind, exp: live, mutate: tamper, wantErr: fosite.ErrTokenSignatureMismatch},
		{name: "refresh tampered key", issue: refreshKind, present: refreshKind, exp: live, mutate: tamperKey, wantErr: fosite.ErrTokenSignatureMismatch},
		{name: "code tampered key", issue: codeKind, present: codeKind, exp: live, mutate: tamperKey, wantErr: fosite.ErrTokenSignatureMismatch},
		{name: "access from another secret", issue: accessKind, present: accessKind, issuer: other, exp: live, wantErr: fosite.ErrTokenSignatureMismatch},
		{name: "refresh from another secret", issue: refreshKind, present: refreshKind, issuer: other, exp: live, wantErr: fosite.ErrTokenSignatureMismatch},

		// expiry from the session
		{name: "access exp now", issue: accessKind, present: accessKind, exp: map[fosite.TokenType]time.Time{fosite.AccessToken: now}, wantErr: fosite.ErrTokenExpired},
		{name: "access exp 1s ago", issue: accessKind, present: accessKind, exp: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(-time.Second)}, wantErr: fosite.ErrTokenExpired},
		{name: "access exp in 1s", issue: accessKind, present: accessKind, exp: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Second)}},
		{name: "refresh exp 1s ago", issue: refreshKind, present: refreshKind, exp: map[fosite.TokenType]time.Time{fosite.RefreshToken: now.Add(-time.Second)}, wantErr: fosite.ErrTokenExpired},
		{name: "code exp 1s ago", issue: codeKind, present: codeKind, exp: map[fosite.TokenType]time.Time{fosite.AuthorizeCode: now.Add(-time.Second)}, wantErr: fosite.ErrTokenExpired},
		// each kind reads its own expiry
		{name: "access live while others expired", issue: accessKind, present: accessKind, exp: map[fosite.TokenType]time.Time{
			fosite.AccessToken: now.Add(time.Minute), fosite.RefreshToken: now.Add(-time.Minute), fosite.AuthorizeCode: now.Add(-time.Minute)}},
		{name: "refresh live while others expired", issue: refreshKind, present: refreshKind, exp: map[fosite.TokenType]time.Time{
			fosite.AccessToken: now.Add(-time.Minute), fosite.RefreshToken: now.Add(time.Minute), fosite.AuthorizeCode: now.Add(-time.Minute)}},
		{name: "code live while others expired", issue: codeKind, present: codeKind, exp: map[fosite.TokenType]time.Time{
			fosite.AccessToken: now.Add(-time.Minute), fosite.RefreshToken: now.Add(-time.Minute), fosite.AuthorizeCode: now.Add(time.Minute)}},
		// session exp wins over requested_at + ttl
		{name: "access exp later than ttl", issue: accessKind, present: accessKind, requestedAt: now.Add(-2 * testAccessTTL),
			exp: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Minute)}},

		// no exp in the session: requested_at + ttl
		{name: "access unset exp, ttl elapsed", issue: accessKind, present: accessKind, requestedAt: now.Add(-testAccessTTL), wantErr: fosite.ErrTokenExpired},
		{name: "access unset exp, within ttl", issue: accessKind, present: accessKind, requestedAt: now.Add(-testAccessTTL + time.Second)},
		{name: "code unset exp, ttl elapsed", issue: codeKind, present: codeKind, requestedAt: now.Add(-testCodeTTL), wantErr: fosite.ErrTokenExpired},
		{name: "code unset exp, within ttl", issue: codeKind, present: codeKind, requestedAt: now.Add(-testCodeTTL + time.Second)},
		{name: "refresh unset exp never expires", issue: refreshKind, present: refreshKind, requestedAt: now.AddDate(-10, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := tt.issuer
			if issuer == nil {
				issuer = s
			}
			requestedAt := tt.requestedAt
			if requestedAt.IsZero() {
				requestedAt = now
			}
			r := newRequest(opaqueClient(), requestedAt, tt.exp)
			tok, _, err := tt.issue.generate(issuer, ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tok = tt.mutate(tok)
			}
			err = tt.present.validate(s, ctx, r, tok)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("validate = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestExpiryFollowsInjectedClock: the wall clock never decides.
func TestExpiryFollowsInjectedClock(t *testing.T) {
	wall := time.Now()
	tests := []struct {
		name    string
		clock   time.Time
		exp     time.Time
		expired bool
	}{
		{name: "clock 1h ahead, exp 30 min ahead of wall", clock: wall.Add(time.Hour), exp: wall.Add(30 * time.Minute), expired: true},
		{name: "clock 1h behind, exp 30 min behind wall", clock: wall.Add(-time.Hour), exp: wall.Add(-30 * time.Minute), expired: false},
	}
	for _, tt := range tests {
		for _, k := range allKinds {
			t.Run(tt.name+"/"+k.name, func(t *testing.T) {
				clock := storagetest.NewClock(tt.clock)
				s := newTestStrategy(t, clock.Now, false, nil)
				r := newRequest(opaqueClient(), tt.clock.Add(-time.Minute), map[fosite.TokenType]time.Time{
					fosite.AccessToken: tt.exp, fosite.RefreshToken: tt.exp, fosite.AuthorizeCode: tt.exp,
				})
				tok, _, err := k.generate(s, t.Context(), r)
				if err != nil {
					t.Fatal(err)
				}
				err = k.validate(s, t.Context(), r, tok)
				if tt.expired && !errors.Is(err, fosite.ErrTokenExpired) {
					t.Fatalf("validate = %v, want expired", err)
				}
				if !tt.expired && err != nil {
					t.Fatalf("validate = %v, want valid", err)
				}
			})
		}
	}
}

func TestExpiryAdvancesWithClock(t *testing.T) {
	clock := storagetest.NewClock(keyEpoch)
	s := newTestStrategy(t, clock.Now, false, nil)
	r := newRequest(opaqueClient(), clock.Now(), nil) // ttl-based expiry
	tok, _, err := s.GenerateAuthorizeCode(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(testCodeTTL - time.Second)
	if err := s.ValidateAuthorizeCode(t.Context(), r, tok); err != nil {
		t.Fatalf("1s before expiry: %v", err)
	}
	clock.Advance(time.Second)
	err = s.ValidateAuthorizeCode(t.Context(), r, tok)
	if !errors.Is(err, fosite.ErrTokenExpired) {
		t.Fatalf("at expiry: %v, want expired", err)
	}
	if rfc := fosite.ErrorToRFC6749Error(err); !strings.Contains(rfc.HintField, "authorize code expired at 2031-03-04T05:16:07Z") {
		t.Fatalf("hint %q does not say which token expired when", rfc.HintField)
	}
}

type plainClient struct{ fosite.DefaultClient }

func TestWantsJWT(t *testing.T) {
	tests := []struct {
		name       string
		client     fosite.Client
		defaultJWT bool
		want       bool
	}{
		{"client jwt, default opaque", &storage.Client{ID: "c", AccessTokenFormat: "jwt"}, false, true},
		{"client jwt, default jwt", &storage.Client{ID: "c", AccessTokenFormat: "jwt"}, true, true},
		{"client opaque, default jwt", &storage.Client{ID: "c", AccessTokenFormat: "opaque"}, true, false},
		{"client opaque, default opaque", &storage.Client{ID: "c", AccessTokenFormat: "opaque"}, false, false},
		{"client unset, default jwt", &storage.Client{ID: "c"}, true, true},
		{"client unset, default opaque", &storage.Client{ID: "c"}, false, false},
		{"client without format, default jwt", &plainClient{fosite.DefaultClient{ID: "c"}}, true, true},
		{"client without format, default opaque", &plainClient{fosite.DefaultClient{ID: "c"}}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := storagetest.NewClock(keyEpoch)
			s := newTestStrategy(t, clock.Now, tt.defaultJWT, nil)
			r := newRequest(tt.client, clock.Now(), map[fosite.TokenType]time.Time{fosite.AccessToken: clock.Now().Add(time.Hour)})
			if got := s.wantsJWT(r); got != tt.want {
				t.Fatalf("wantsJWT = %v, want %v", got, tt.want)
			}
			// And GenerateAccessToken follows it.
			tok, _, err := s.GenerateAccessToken(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			isJWT := strings.Count(tok, ".") == 2 && !strings.HasPrefix(tok, prefixAccess)
			if isJWT != tt.want {
				t.Fatalf("GenerateAccessToken issued %q; JWT = %v, want %v", tok, isJWT, tt.want)
			}
			if !isJWT && !strings.HasPrefix(tok, prefixAccess) {
				t.Fatalf("opaque access token %q lacks %q", tok, prefixAccess)
			}
		})
	}
}

// TestJWTAccessTokens issues and validates RFC 9068 access tokens with a
// real KeyManager, for each signing algorithm.
func TestJWTAccessTokens(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			store, clock, _ := newKeyStore(t)
			km := newKeyManager(t, store, alg, clock)
			s := newTestStrategy(t, clock.Now, false, newKeySigner(km))
			ctx := t.Context()
			client := &storage.Client{ID: "app", AccessTokenFormat: "jwt"}
			r := newRequest(client, clock.Now(), map[fosite.TokenType]time.Time{fosite.AccessToken: clock.Now().Add(time.Hour)})

			tok, sig, err := s.GenerateAccessToken(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tok, prefixAccess) || strings.Count(tok, ".") != 2 {
				t.Fatalf("JWT client got %q", tok)
			}
			if got := s.AccessTokenSignature(ctx, tok); got != sig {
				t.Fatalf("AccessTokenSignature = %q, want %q", got, sig)
			}

			// A relying party verifies it with the JWKS.
			parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := parsed.Headers[0]
			if h.KeyID != signer(t, km).KeyID || h.ExtraHeaders["typ"] != "at+jwt" {
				t.Fatalf("header kid=%q typ=%v, want kid %q typ at+jwt", h.KeyID, h.ExtraHeaders["typ"], signer(t, km).KeyID)
			}
			pub, ok := km.PublicKey(h.KeyID)
			if !ok {
				t.Fatal("signing kid not published")
			}
			var claims josejwt.Claims
			if err := parsed.Claims(pub.Key, &claims); err != nil {
				t.Fatalf("verify with JWKS: %v", err)
			}
			if claims.Subject != "alice" || !claims.Audience.Contains("app") {
				t.Fatalf("claims sub=%q aud=%v", claims.Subject, claims.Audience)
			}

			if err := s.ValidateRefreshToken(ctx, r, tok); !errors.Is(err, fosite.ErrInvalidTokenFormat) {
				t.Fatalf("JWT access token as refresh token: %v, want invalid format", err)
			}
			if err := s.ValidateAccessToken(ctx, r, tok[:len(tok)-4]+"AAAA"); err == nil {
				t.Fatal("tampered JWT access token validates")
			}

			if err := s.ValidateAccessToken(ctx, r, tok); err != nil {
				t.Fatalf("ValidateAccessToken: %v", err)
			}
			// Expiry by the injected clock: the JWT's own exp (2031) is far in
			// the wall clock's future, so only the strategy can refuse it.
			clock.Advance(time.Hour)
			if err := s.ValidateAccessToken(ctx, r, tok); !errors.Is(err, fosite.ErrTokenExpired) {
				t.Fatalf("after exp: %v, want expired", err)
			}
		})
	}
}
