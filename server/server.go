package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/admin"
	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/captcha"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/notify"
	"github.com/portcullis/portcullis/oauth"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policystore"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// Options are what a caller (the CLI, a test) supplies besides the config.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; tests move it. Defaults to time.Now.
	Now func() time.Time
	// ReloadInterval is how often signing keys and policies are re-read so
	// changes made through another instance take effect (default 1s, which
	// keeps propagation well within two seconds).
	ReloadInterval time.Duration
	// LoginHooks are an embedding program's own sign-in steps, run on every
	// sign-in in the phase each names (see authn.Hook).
	LoginHooks []authn.Hook
	// PasswordRules are an embedding program's own password rules, run on
	// every password write after the password policy's (see policies.PasswordRule).
	PasswordRules []policies.PasswordRule
}

// Server is one Portcullis instance.
type Server struct {
	cfg      *config.Config
	logger   *slog.Logger
	now      func() time.Time
	store    *storage.Store
	keys     *oauth.KeyManager
	policies *policystore.Engine
	audit    *audit.Recorder
	provider *oauth.Provider
	metrics  *Metrics
	// lockMail sends lockout notices by email, accountMail the account
	// links (verification, activation, reset).
	lockMail    *notify.Lockouts
	accountMail *notify.AccountMails
	links       *authn.Links
	// hashLimiter bounds the memory of password hashes running at once.
	hashLimiter *hashing.Limiter
	handler     http.Handler
	reload      time.Duration
	hooks       []authn.Hook
	rules       []policies.PasswordRule
	accounts    *authn.Accounts
	captcha     *captcha.Service

	// metricsHandler is what the metrics listener serves; see MetricsHandler.
	metricsHandler http.Handler
}

// OpenStore opens (and, unless disabled, migrates) the configured database
// with the system secrets resolved. The CLI uses it directly.
func OpenStore(ctx context.Context, cfg *config.Config, logger *slog.Logger, now func() time.Time) (*storage.Store, []string, error) {
	return openStore(ctx, cfg, logger, now, nil)
}

// openStore is OpenStore with when accounts expire (storage.Options).
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger, now func() time.Time,
	expiry func(created time.Time, override *time.Time) time.Time) (*storage.Store, []string, error) {
	secrets, err := SystemSecrets(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	box, err := storage.NewSecretBox(secrets)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Database.Driver() == config.DriverSQLite {
		if dir := filepath.Dir(cfg.Database.SQLitePath()); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, nil, fmt.Errorf("database.url: create directory %s: %w", dir, err)
			}
		}
	}
	store, err := storage.Open(ctx, cfg.Database.URL, storage.Options{
		MaxOpenConns:  cfg.Database.MaxOpenConns,
		Box:           box,
		Now:           now,
		AccountExpiry: expiry,
	})
	if err != nil {
		return nil, nil, err
	}
	if cfg.Database.AutoMigrateEnabled() {
		n, err := store.Migrate(ctx)
		if err != nil {
			_ = store.Close()
			return nil, nil, err
		}
		if n > 0 {
			logger.Info("applied database migrations", "count", n)
		}
	}
	return store, secrets, nil
}

// SystemSecrets returns the configured system secrets, newest first. With
// SQLite and none configured, one is generated on first start into a 0600
// file beside the database, so a single-machine install needs no setup; with
// PostgreSQL one must be configured so every instance agrees.
func SystemSecrets(cfg *config.Config, logger *slog.Logger) ([]string, error) {
	if len(cfg.Secrets.System) > 0 {
		return cfg.Secrets.System, nil
	}
	path := cfg.SecretFilePath()
	if path == "" {
		return nil, errors.New("secrets.system: required with PostgreSQL (set it in the config file or PORTCULLIS_SECRETS_SYSTEM)")
	}
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, fmt.Errorf("secrets.file: %s holds fewer than 32 characters", path)
		}
		return []string{s}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secrets.file: read %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate system secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets.file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process won the race to create it; use theirs.
		return SystemSecrets(cfg, logger)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets.file: create %s: %w", path, err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("secrets.file: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("secrets.file: write %s: %w", path, err)
	}
	logger.Warn("generated a system secret; keep this file safe and back it up with the database", "path", path)
	return []string{secret}, nil
}

// New builds a server from cfg: opens the database, loads keys, composes
// the provider and the handler. It does not listen; see Serve.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = time.Second
	}
	logger := opts.Logger
	// Tokens stop working when their account expires, under the global
	// registration policy, which is loaded once the store is open: until
	// then no token is checked.
	var s *Server
	expiry := func(created time.Time, override *time.Time) time.Time {
		return s.policies.For("").Registration.AccountExpiry(created, override)
	}
	store, secrets, err := openStore(ctx, cfg, logger, opts.Now, expiry)
	if err != nil {
		return nil, err
	}
	s = &Server{cfg: cfg, logger: logger, now: opts.Now, store: store, metrics: NewMetrics(), reload: opts.ReloadInterval, hooks: opts.LoginHooks, rules: opts.PasswordRules}
	if err := s.build(ctx, secrets); err != nil {
		_ = store.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) build(ctx context.Context, secrets []string) error {
	cfg := s.cfg
	issuer, err := url.Parse(cfg.Server.Issuer)
	if err != nil {
		return fmt.Errorf("server.issuer: %w", err)
	}
	secure := issuer.Scheme == "https"
	origin := issuer.Scheme + "://" + issuer.Host

	rec := audit.NewRecorder(s.store, s.logger, s.now)
	s.audit = rec
	s.metrics.WatchAudit(rec.Stats)
	s.policies, err = policystore.New(ctx, s.store, cfg.Policy(), rec, s.logger, s.now)
	if err != nil {
		return err
	}
	keys, err := oauth.NewKeyManager(ctx, s.store, cfg.Keys.Algorithm, s.logger, s.now,
		oauth.WithKeyAudit(rec), oauth.WithSignedLifetime(s.policies.MaxSignedLifetime))
	if err != nil {
		return err
	}
	s.keys = keys
	tmpl, err := templates.New()
	if err != nil {
		return err
	}
	clientIP, err := NewClientIP(cfg.Server.TrustedProxies)
	if err != nil {
		return fmt.Errorf("server.trusted_proxies: %w", err)
	}
	devices, err := NewDeviceCookie(secrets, secure)
	if err != nil {
		return err
	}
	csrfKey, err := storage.DeriveKey(secrets[0], "portcullis/csrf/v1", 32)
	if err != nil {
		return err
	}
	// Built-in challenges live in the database, so any instance checks
	// an answer to a picture another drew.
	s.captcha, err = captcha.New(captcha.Config{Store: s.store, SystemSecrets: secrets, ProviderSecret: cfg.Secrets.Captcha, Now: s.now})
	if err != nil {
		return err
	}
	hasher := hashing.Argon2{Memory: cfg.Hashing.MemoryKiB, Iterations: cfg.Hashing.Iterations, Parallelism: cfg.Hashing.Parallelism}
	// One memory budget for every argon2 hash the server runs: sign-ins,
	// password writes and chosen client secrets.
	s.hashLimiter = hashing.NewLimiter(hashingBudgetKiB(cfg.Hashing), cfg.Hashing.QueueTimeout.Duration,
		hashing.WithRelease(time.Second, debug.FreeOSMemory))
	s.metrics.WatchHashing(s.hashLimiter)
	sessions := authn.NewSessions(s.store, s.store, authn.SessionConfig{
		CookieName: cfg.Session.CookieName,
		// Browser sessions are shared by every application (single sign-on):
		// the global session policy governs them, and the application signed
		// in to decides admission (see authn.SessionConfig.Policy).
		Policy:   func(clientID string) policies.Session { return s.policies.For(clientID).Session },
		Secure:   secure,
		Recorder: rec,
		Logger:   s.logger,
	}, s.now)
	leaked := newBreaches(s.logger)
	s.accounts = authn.NewAccounts(authn.AccountsConfig{
		Store: s.store, Sessions: s.store, Hasher: hasher, Limiter: s.hashLimiter, Recorder: rec,
		Policies: s.policies.For, Rules: s.rules, Breaches: leaked, Now: s.now,
	})
	if err := s.setUpMail(cfg); err != nil {
		return err
	}
	passkeys, serviceName, err := newWebAuthn(cfg, s.logger)
	if err != nil {
		return err
	}
	factors := authn.NewSecondFactors(s.store, passkeys, serviceName, rec, s.logger, s.now)
	pipeline := authn.NewPipeline(s.store, hasher, s.logger, rec,
		authn.WithPolicies(s.policies.For), authn.WithClock(s.now), authn.WithLimiter(s.hashLimiter),
		authn.WithLockout(s.store, s.accounts, s.notifyLock), authn.WithBreaches(leaked), authn.WithSecondFactors(factors),
		authn.WithTransactions(s.store), authn.WithHooks(append([]authn.Hook{authn.IPRules(s.policies.For)}, s.hooks...)...))
	flows := authn.NewFlows(s.store, secure, s.now).WithSecondFactors(factors, s.policies.For)
	// Form tokens are bound to the browser's session, or before sign-in
	// to its login flow, so a planted cookie and token pair is useless.
	csrf, err := authn.NewCSRF(csrfKey, secure, origin, sessions.CookieName(), flows.CookieName())
	if err != nil {
		return err
	}

	s.provider, err = oauth.New(oauth.Config{
		ScopeDescriptions: cfg.Scopes.Descriptions,
		Issuer:            cfg.Server.Issuer,
		Policies:          s.policies,
		SystemSecrets:     secrets,
		Audit:             rec,
		Store:             s.store,
		Keys:              keys,
		Browser:           browserSessions{sessions},
		Flows:             flows,
		CSRF:              csrf,
		Templates:         tmpl,
		Metrics:           s.metrics,
		Logger:            s.logger,
		Now:               s.now,
		HashLimiter:       s.hashLimiter,
		PasswordGrant:     passwordGrant{pipeline},
		Devices:           s.store,
		Standing:          deviceStanding{pipeline: pipeline, users: s.store},
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	s.provider.Register(mux)
	// The provider names the application an authorization request is for,
	// so the login page can say whom the person is signing in to.
	login := authn.NewLoginHandler(pipeline, sessions, flows, csrf, tmpl, s.provider, s.logger, authn.WithCaptcha(s.captcha, s.policies.For),
		authn.WithLinks(s.links, s.store, s.policies.For), authn.WithPasskeys(factors, s.policies.For))
	mux.Handle("GET /login", login)
	mux.Handle("POST /login", login)
	secondFactor, enrol := authn.NewMFAPages(pipeline, factors, flows, sessions, s.store, csrf, tmpl, s.policies.For, s.logger)
	for path, h := range map[string]http.Handler{authn.SecondFactorPath: secondFactor, authn.MFAEnrollPath: enrol} {
		mux.Handle("GET "+path, h)
		mux.Handle("POST "+path, h)
	}
	accountMFA := authn.NewAccountMFA(pipeline, factors, sessions, csrf, tmpl, s.policies.For, s.now, s.logger)
	mux.Handle(authn.AccountMFAPath, accountMFA)
	mux.Handle(authn.AccountMFAPath+"/", accountMFA)
	mux.Handle(authn.AccountDevicesPath, authn.NewAccountDevices(s.store, sessions, csrf, tmpl, s.logger))
	forced := authn.NewForcedChangeHandler(pipeline, flows, sessions, s.accounts, s.store, csrf, tmpl, s.policies.For, s.now, s.logger)
	mux.Handle("GET "+authn.ForcedChangePath, forced)
	mux.Handle("POST "+authn.ForcedChangePath, forced)
	password := authn.NewPasswordHandler(pipeline, sessions, s.accounts, csrf, tmpl, s.logger,
		authn.WithPasswordStepUp(factors, s.policies.For, s.now))
	mux.Handle("GET "+authn.PasswordPath, password)
	mux.Handle("POST "+authn.PasswordPath, password)
	// Self-service account pages: registration, and where mailed links lead.
	accountPages := authn.PageConfig{Flows: flows, CSRF: csrf, Pages: tmpl, Captcha: s.captcha, Policies: s.policies.For, Logger: s.logger}
	register := authn.NewRegister(authn.RegisterConfig{Accounts: s.accounts, Links: s.links, Budget: s.store, Users: s.store,
		Policies: s.policies.For, Recorder: rec, Logger: s.logger, Now: s.now})
	recovery := authn.NewRecovery(authn.RecoveryConfig{Accounts: s.accounts, Links: s.links, Users: s.store, Budget: s.store,
		Recorder: rec, Logger: s.logger})
	for path, h := range map[string]http.Handler{
		authn.RegisterPath:      authn.NewRegisterHandler(register, accountPages),
		authn.ForgotPath:        authn.NewForgotHandler(recovery, accountPages),
		authn.ResetPasswordPath: authn.NewResetHandler(recovery, authn.LinkReset, accountPages),
		authn.ActivatePath:      authn.NewResetHandler(recovery, authn.LinkActivation, accountPages),
		authn.VerifyEmailPath:   authn.NewVerifyEmailHandler(recovery, accountPages),
	} {
		mux.Handle("GET "+path, h)
		mux.Handle("POST "+path, h)
	}
	mux.Handle("POST "+authn.RegistrationsAPIPath, authn.NewRegistrationAPI(register, s.logger))
	mux.Handle("GET /static/", tmpl.Static())
	mux.Handle("GET /favicon.ico", tmpl.Favicon())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page := templates.IndexPage{}
		if id, err := sessions.Current(r); err == nil && id != nil {
			page.Username = id.User.Username
		}
		tmpl.Render(w, http.StatusOK, "index.html", page)
	})
	mux.Handle("/admin/", admin.New(admin.Config{Store: s.store, Tokens: s.provider, Hasher: hasher, Logger: s.logger, Audit: rec,
		Policies: s.policies, Sessions: s.store, Accounts: s.accounts, Keys: keys, Links: s.links, MFA: factors}))
	mux.HandleFunc("GET /health/alive", func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.store.Ping(ctx); err != nil {
			s.logger.WarnContext(ctx, "readiness check failed", "err", err)
			writeHealth(w, http.StatusServiceUnavailable, "database unavailable")
			return
		}
		writeHealth(w, http.StatusOK, "ok")
	})

	var h http.Handler = mux
	h = SecurityHeaders(secure)(h)
	h = Recoverer(s.logger)(h)
	h = s.metrics.Middleware(h)
	h = AccessLog(s.logger)(h)
	h = Identify(clientIP, devices)(h)
	s.handler = h
	s.metricsHandler = newMetricsHandler(s.metrics, cfg.Server.Pprof, s.logger)
	return nil
}

// newMetricsHandler is what the metrics listener serves: /metrics and, with
// pprof, /debug/pprof/. It is kept off the public handler because neither
// asks for authentication. It has none of the public middleware: nothing on
// it reads request identity, and counting the scraper's own requests would
// only add series.
func newMetricsHandler(m *Metrics, pprof bool, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if pprof {
		registerPprof(mux)
	}
	return Recoverer(logger)(mux)
}

func writeHealth(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"status\":%q}\n", msg)
}

// browserSessions adapts authn's sessions to what oauth asks of them.
type browserSessions struct{ s *authn.Sessions }

func (b browserSessions) Current(r *http.Request) (*storage.User, *storage.BrowserSession, error) {
	id, err := b.s.Current(r)
	if err != nil || id == nil {
		return nil, nil, err
	}
	return id.User, id.Session, nil
}

func (b browserSessions) End(w http.ResponseWriter, r *http.Request) error { return b.s.End(w, r) }

// Handler is the whole public server as one http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler is what the metrics listener serves (/metrics, and
// /debug/pprof/ with server.pprof), for tests and for programs that serve it
// on a listener of their own. It exists even when server.metrics_listen is
// "".
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler }

// Store is the server's storage (tests and the CLI use it).
func (s *Server) Store() *storage.Store { return s.store }

// Accounts is the instance's accounts service: every password write and
// every end of all of a user's sessions goes through it.
func (s *Server) Accounts() *authn.Accounts { return s.accounts }

// Captcha is the instance's captcha service: the widgets pages show and
// the judge of their answers.
func (s *Server) Captcha() *captcha.Service { return s.captcha }

// hashingBudgetKiB is the memory hashes may hold at once: the configured
// budget, but no more than two hashes per CPU (per lane of each), since
// argon2 is CPU-bound and further hashes would only share the CPUs, each
// taking longer while holding its memory.
func hashingBudgetKiB(h config.Hashing) int64 {
	perCPU := int64(2*runtime.GOMAXPROCS(0)/max(int(h.Parallelism), 1)) * int64(h.MemoryKiB)
	return max(min(int64(h.MaxMemoryMiB)*1024, perCPU), int64(h.MemoryKiB))
}

// memoryHeadroomMiB is what SetMemoryLimit allows the process beyond the
// hashing budget: the rest of the server lives in a fraction of it.
const memoryHeadroomMiB = 64

// SetMemoryLimit sets the Go runtime's soft memory limit to the hashing
// budget plus a headroom, unless the operator set GOMEMLIMIT, and returns
// the limit in force. Without it a burst of sign-ins could take the
// process to twice the budget: the garbage collector lets the heap grow
// to double what was live at the last collection, and the memory of
// finished hashes is garbage only the next collection returns. It is
// process-wide, so the program that owns the process calls it, once.
func SetMemoryLimit(cfg *config.Config) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	limit := hashingBudgetKiB(cfg.Hashing)*1024 + memoryHeadroomMiB<<20
	debug.SetMemoryLimit(limit)
	return limit
}

// HashLimiter bounds the memory of the password hashes the instance runs
// at once.
func (s *Server) HashLimiter() *hashing.Limiter { return s.hashLimiter }

// Audit is the instance's security event recorder.
func (s *Server) Audit() *audit.Recorder { return s.audit }

// Keys is the server's signing key manager.
func (s *Server) Keys() *oauth.KeyManager { return s.keys }

// setUpMail builds what sends lockout notices: with no [smtp] host the
// notices are dropped unsent (the lock itself is audited regardless).
func (s *Server) setUpMail(cfg *config.Config) error {
	// An interface holding a nil *Mailer is not nil: mail off must stay nil.
	var mailer notify.Sender
	m, err := NewMailer(cfg, s.now)
	if err != nil {
		return err
	}
	if m != nil {
		mailer = m
	}
	s.lockMail = notify.NewLockouts(notify.LockoutsConfig{Mailer: mailer, Issuer: cfg.Server.Issuer,
		AdminAddress: cfg.SMTP.AdminAddress, Logger: s.logger, Now: s.now})
	s.accountMail, err = notify.NewAccountMails(notify.AccountMailsConfig{Mailer: mailer, Issuer: cfg.Server.Issuer,
		Logger: s.logger, Now: s.now})
	if err != nil {
		return fmt.Errorf("account mails: %w", err)
	}
	var queue authn.LinkMailer
	if mailer != nil {
		queue = LinkQueue(s.accountMail)
	}
	s.links = authn.NewLinks(authn.LinksConfig{Store: s.store, Mail: queue, Issuer: cfg.Server.Issuer,
		Policies: s.policies.For, Recorder: s.audit, Now: s.now})
	return nil
}

// notifyLock queues the mails of an account lock; it never blocks the
// sign-in that caused it.
func (s *Server) notifyLock(_ context.Context, n authn.LockNotice) {
	cause := notify.Cause(n.State.Cause)
	if n.State.Permanent && n.State.Cause == policies.LockCauseFailures {
		cause = notify.CauseEscalated // a failures lock has an end unless escalated
	}
	notice := notify.AccountLockNotice{
		UserID: n.User.ID, Username: n.User.Username, LockedAt: n.At, Until: n.State.Until, Cause: cause,
		IP: n.IP, Device: n.DeviceID, Client: n.ClientID, NotifyUser: n.NotifyUser, NotifyAdmin: n.NotifyAdmin,
	}
	// Only to an address the owner proved: mail about an account to an
	// address anyone typed in would tell a stranger of the attack.
	if n.User.EmailVerified {
		notice.Email = n.User.Email
	}
	s.lockMail.Notify(notice)
}

// LockMail sends the instance's lockout notices.
func (s *Server) LockMail() *notify.Lockouts { return s.lockMail }

// AccountMail sends the instance's account link mails (verification,
// activation, reset).
func (s *Server) AccountMail() *notify.AccountMails { return s.accountMail }

// Close releases the database.
func (s *Server) Close() error { return s.store.Close() }

// Background runs the periodic jobs (key reload, expired-token cleanup)
// until ctx ends.
func (s *Server) Background(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.audit.Run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.lockMail.Run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.accountMail.Run(ctx) }()
	jobs := []struct {
		name  string
		every time.Duration
		run   func(context.Context) error
	}{
		// Rotations and policy changes made through any instance.
		{"reload signing keys", s.reload, s.keys.Reload},
		{"reload policies", s.reload, s.policies.Reload},
		{"delete expired tokens", 10 * time.Minute, s.sweepTokens},
	}
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(j.every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := j.run(ctx); err != nil && ctx.Err() == nil {
						s.logger.Warn(j.name, "err", err.Error())
					}
				}
			}
		}()
	}
	wg.Wait()
}

func (s *Server) sweepTokens(ctx context.Context) error {
	// A day's grace keeps used refresh tokens around long enough to
	// recognise their reuse after they expire.
	n, err := s.store.DeleteExpiredTokens(ctx, s.now().Add(-24*time.Hour))
	if n > 0 {
		s.logger.Info("deleted expired tokens", "count", n)
	}
	if err != nil {
		return err
	}
	n, err = s.store.DeleteExpiredLoginFlows(ctx, s.now())
	if n > 0 {
		s.logger.Info("deleted expired login flows", "count", n)
	}
	if err != nil {
		return err
	}
	n, err = s.store.DeleteExpiredCaptchaChallenges(ctx, s.now())
	if n > 0 {
		s.logger.Info("deleted expired captcha challenges", "count", n)
	}
	if err != nil {
		return err
	}
	n, err = s.store.DeleteExpiredAccountLinks(ctx, s.now())
	if n > 0 {
		s.logger.Info("deleted expired account links", "count", n)
	}
	if err != nil {
		return err
	}
	// A day past expiry, a device code is of no use even to explain a
	// poll's expired_token.
	n, err = s.store.DeleteExpiredDeviceCodes(ctx, s.now().Add(-24*time.Hour))
	if n > 0 {
		s.logger.Info("deleted expired device codes", "count", n)
	}
	if err != nil {
		return err
	}
	n, err = s.store.DeleteExpiredMFAChallenges(ctx, s.now())
	if n > 0 {
		s.logger.Info("deleted expired passkey ceremonies", "count", n)
	}
	if err != nil {
		return err
	}
	// A day of counters behind now outlives every rate limit window.
	n, err = s.store.DeleteExpiredRateCounters(ctx, s.now().Add(-24*time.Hour))
	if n > 0 {
		s.logger.Info("deleted expired rate counters", "count", n)
	}
	return err
}

// Serve answers on ln with Handler until ctx ends, then shuts down
// gracefully within the configured timeout; it also runs the background
// jobs. It serves the public handler only: ListenAndServe adds the metrics
// listener, and ServeMetrics serves it on a listener of the caller's.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	bgCtx, stopBg := context.WithCancel(ctx)
	bgDone := make(chan struct{})
	go func() { s.Background(bgCtx); close(bgDone) }()
	// Stopped after the HTTP server, so events of the last requests are
	// written before Serve returns.
	defer func() { stopBg(); <-bgDone }()

	s.logger.Info("listening", "addr", ln.Addr().String(), "issuer", s.cfg.Server.Issuer, "database", s.store.Dialect())
	return s.serveUntil(ctx, srv, ln, "")
}

// ServeMetrics answers on ln with MetricsHandler until ctx ends, then shuts
// down gracefully within the configured timeout.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	write := 30 * time.Second
	if s.cfg.Server.Pprof {
		// Room for the longest CPU profile or trace a request may ask for.
		write = maxProfileDuration + 30*time.Second
	}
	srv := &http.Server{
		Handler:           s.metricsHandler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      write,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		// Requests see ctx end at shutdown, so that a running profile
		// stops early instead of holding shutdown up to its timeout.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	s.logger.Info("serving metrics", "addr", ln.Addr().String(), "pprof", s.cfg.Server.Pprof)
	return s.serveUntil(ctx, srv, ln, "metrics listener: ")
}

// serveUntil serves srv on ln until ctx ends, then shuts it down gracefully
// within server.shutdown_timeout. prefix starts its errors, so that with two
// listeners the failed one is named.
func (s *Server) serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, prefix string) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%sserve: %w", prefix, err)
	case <-ctx.Done():
	}
	s.logger.Info("shutting down", "addr", ln.Addr().String())
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.ShutdownTimeout.Duration)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("%sshutdown: %w", prefix, err)
	}
	return nil
}

// ListenAndServe listens on server.listen and, unless it is "", on
// server.metrics_listen, and serves both until ctx ends, shutting both down
// together within server.shutdown_timeout. Both addresses are bound before
// either serves, so that a taken port stops the start with an error naming
// its key rather than leaving half a server running; when one listener
// fails, the other is shut down too.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	if s.cfg.Server.MetricsListen == "" {
		return s.Serve(ctx, ln)
	}
	mln, err := net.Listen("tcp", s.cfg.Server.MetricsListen)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("server.metrics_listen: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- s.Serve(ctx, ln) }()
	go func() { errc <- s.ServeMetrics(ctx, mln) }()
	first := <-errc
	cancel()
	return errors.Join(first, <-errc)
}
