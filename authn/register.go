package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/captcha"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// RegistrationsAPIPath is where a program registers an account for a
// person, in JSON (NewRegistrationAPI).
const RegistrationsAPIPath = "/api/registrations"

// ErrRegistrationDisabled means the registration policy in force does
// not let people create their own accounts.
var ErrRegistrationDisabled = errors.New("registration is not available")

// RateLimitedError means the address has used up its budget of
// registrations; RetryAfter is when the window that refused it ends.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("registration rate limit reached; retry after %s", e.RetryAfter)
}

// Codes of the registration's own field problems, beside the username's
// and the password rules' (policies.PasswordTooShort, …).
const (
	CodeRequired = "required"
	// CodeTaken is a username that names an account already. A
	// registration must say so, or nobody could pick another name; the
	// rate limit per address bounds how many names one can probe.
	CodeTaken = "taken"
	// CodeMismatch is a confirmation that differs from the password.
	CodeMismatch = "mismatch"
	// CodeInvalid is what the API says for a problem that has no code of
	// its own (an email address that does not parse).
	CodeInvalid = "invalid"
)

// RegistrationActor is the audit actor of the user.created event of an
// account its owner made: no id exists before the account does. The
// user.registered event that follows names the new account as its actor.
const RegistrationActor = "self-registration"

// RateBudget counts attempts against a budget every instance shares
// (storage.Store.TakeRateBudget).
type RateBudget interface {
	TakeRateBudget(ctx context.Context, key string, window time.Duration, limit int64) (allowed bool, count int64, err error)
}

// UsernameLookup finds an account by username.
type UsernameLookup interface {
	UserByUsername(ctx context.Context, username string) (*storage.User, error)
}

var (
	_ RateBudget     = (*storage.Store)(nil)
	_ UsernameLookup = (*storage.Store)(nil)
)

// RegisterConfig configures Register.
type RegisterConfig struct {
	Accounts *Accounts
	// Links mails the email verification link.
	Links    *Links
	Budget   RateBudget
	Users    UsernameLookup
	Policies PolicySource
	// Recorder receives user.registered; nil records nothing.
	Recorder *audit.Recorder
	Logger   *slog.Logger
	// Now is the clock, for the Retry-After of a refusal; nil means
	// time.Now. It must be the store's, which places the windows.
	Now func() time.Time
}

// Register creates accounts for the people who ask, under the
// registration policy: the self-service counterpart of an administrator's
// Accounts.Create, which it goes through, so every password rule applies.
type Register struct {
	accounts *Accounts
	links    *Links
	budget   RateBudget
	users    UsernameLookup
	policies PolicySource
	recorder *audit.Recorder
	logger   *slog.Logger
	now      func() time.Time
}

// NewRegister returns the registration service.
func NewRegister(cfg RegisterConfig) *Register {
	r := &Register{accounts: cfg.Accounts, links: cfg.Links, budget: cfg.Budget, users: cfg.Users,
		policies: cfg.Policies, recorder: cfg.Recorder, logger: cfg.Logger, now: cfg.Now}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.policies == nil {
		defaults := policies.Defaults()
		r.policies = func(string) policies.Policy { return defaults }
	}
	return r
}

// RegisterRequest is one person asking for an account.
type RegisterRequest struct {
	// ClientID is the application the person came from; its registration
	// policy applies. "" is the global policy.
	ClientID string
	Username string
	Email    string
	Password string
	// Problems are the caller's own findings about the input, such as a
	// form's confirmation that does not match: they are listed with the
	// rest, and any of them keeps the account from being created.
	Problems []fielderr.Field
}

// Registered is the outcome of a registration.
type Registered struct {
	User *storage.User
	// VerificationSent says a verification link was mailed: the policy
	// requires a verified address and the mail was queued.
	VerificationSent bool
	// VerificationRequired says the policy requires a verified address,
	// whether or not the mail could be sent.
	VerificationRequired bool
}

// Available reports whether people may register under clientID's policy.
// A policy that requires a verified address needs email to send the link;
// without it an account could never be used, so none is offered.
func (r *Register) Available(clientID string) bool {
	return r.available(r.policies(clientID).Registration)
}

func (r *Register) available(p policies.Registration) bool {
	return p.Enabled && (!p.RequireEmailVerification || r.links.CanMail())
}

// captchaRequired reports whether clientID's captcha policy puts a
// captcha on registration (see captchaOn).
func (r *Register) captchaRequired(clientID string) bool {
	return r.policies(clientID).Captcha.Shows(policies.CaptchaOnRegistration, true)
}

// Register creates the account req asks for, in this order: the policy
// must allow it (ErrRegistrationDisabled), the request's address must have
// budget left (*RateLimitedError), and the input must pass every rule
// (*fielderr.Error naming each problem, a taken username included). The
// budget is taken before the input is judged, so that every attempt
// counts, including those that only probe which usernames exist. The new
// account's address is unverified; when the policy requires a verified
// one, a verification link is mailed.
func (r *Register) Register(ctx context.Context, req RegisterRequest) (*Registered, error) {
	pol := r.policies(req.ClientID).Registration
	if !r.available(pol) {
		return nil, ErrRegistrationDisabled
	}
	if err := r.take(ctx, pol.RateLimit); err != nil {
		return nil, err
	}
	req.Email = strings.TrimSpace(req.Email)
	if len(req.Problems) > 0 || req.Email == "" {
		// The account will not be made, but every other problem is still
		// worth saying at once.
		return nil, r.check(ctx, req)
	}
	u, err := r.accounts.Create(ctx, UserSpec{Username: req.Username, Email: req.Email, Password: req.Password},
		Actor{ID: RegistrationActor})
	if errors.Is(err, storage.ErrConflict) {
		return nil, &fielderr.Error{Fields: []fielderr.Field{takenField()}}
	}
	if fe, ok := fielderr.As(err); ok {
		return nil, r.withTaken(ctx, req.Username, fe)
	}
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	// Create has committed: a failure to record here leaves the
	// user.created event as the account's only record, which is still
	// one. Joining Create's transaction would hold it open across the
	// password hash.
	if err := record(ctx, r.recorder, Actor{ID: u.ID}, audit.Event{Type: audit.TypeUserRegistered, UserID: u.ID,
		ClientID: req.ClientID, Details: map[string]any{"username": u.Username, "email_verification": pol.RequireEmailVerification}}); err != nil {
		r.logger.ErrorContext(ctx, "registration not recorded", slog.String("user_id", u.ID), slog.Any("error", err))
	}
	out := &Registered{User: u, VerificationRequired: pol.RequireEmailVerification}
	if pol.RequireEmailVerification {
		sent, err := r.links.Send(ctx, u, LinkVerifyEmail, Actor{ID: u.ID})
		if err != nil {
			// The account exists; signing in sends a new link.
			r.logger.ErrorContext(ctx, "verification link not sent after registration", slog.String("user_id", u.ID), slog.Any("error", err))
		}
		out.VerificationSent = sent && err == nil
	}
	return out, nil
}

// take counts this attempt against the request address's budget.
func (r *Register) take(ctx context.Context, limit policies.RateLimit) error {
	if limit.Max <= 0 {
		return nil
	}
	period := limit.Period.D()
	allowed, _, err := r.budget.TakeRateBudget(ctx, "register:ip:"+reqinfo.From(ctx).IPString(), period, int64(limit.Max))
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if !allowed {
		return &RateLimitedError{RetryAfter: windowLeft(r.now(), period)}
	}
	return nil
}

// windowLeft is how long the fixed window of length period that holds
// now still runs (storage.Store.TakeRateBudget places them so).
func windowLeft(now time.Time, period time.Duration) time.Duration {
	now = now.UTC()
	return now.Truncate(period).Add(period).Sub(now)
}

// check judges req without creating anything: every problem Create would
// find, the taken username, an email address required for a registration
// (it is how a forgotten password is recovered), and req's own problems.
func (r *Register) check(ctx context.Context, req RegisterRequest) error {
	var fe fielderr.Error
	spec := UserSpec{Username: req.Username, Email: req.Email}
	username := checkUsername(&fe, spec)
	if len(fe.Fields) == 0 {
		if err := r.takenInto(ctx, username, &fe); err != nil {
			return err
		}
	}
	err := r.accounts.CheckPassword(ctx, "password", req.Password, &storage.User{Username: username, Email: req.Email})
	if pe, ok := fielderr.As(err); ok {
		fe.Fields = append(fe.Fields, pe.Fields...)
	} else if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if req.Email == "" {
		fe.Fields = append(fe.Fields, fielderr.Field{Field: "email", Code: CodeRequired, Message: "is required"})
	}
	checkEmail(&fe, spec)
	fe.Fields = append(fe.Fields, req.Problems...)
	return &fe
}

// withTaken adds to fe, which Create returned, that the username is
// taken when it is: Create stops at the first failing field set and never
// reaches the database.
func (r *Register) withTaken(ctx context.Context, username string, fe *fielderr.Error) error {
	for _, f := range fe.Fields {
		if f.Field == "username" {
			return fe
		}
	}
	canonical, err := storage.NormalizeUsername(username)
	if err != nil {
		return fe
	}
	out := &fielderr.Error{Fields: append([]fielderr.Field(nil), fe.Fields...)}
	if err := r.takenInto(ctx, canonical, out); err != nil {
		return err
	}
	return out
}

// takenInto adds the taken-username problem to fe when username names an
// account.
func (r *Register) takenInto(ctx context.Context, username string, fe *fielderr.Error) error {
	_, err := r.users.UserByUsername(ctx, username)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("register: look up username: %w", err)
	}
	fe.Fields = append([]fielderr.Field{takenField()}, fe.Fields...)
	return nil
}

func takenField() fielderr.Field {
	return fielderr.Field{Field: "username", Code: CodeTaken, Message: "is already taken"}
}

// PageConfig is what the self-service account pages share.
type PageConfig struct {
	// Flows finds the sign-in in progress a page was opened from
	// (?flow=ID), to judge by its application's policy and to go back to.
	Flows *Flows
	CSRF  *CSRF
	Pages *templates.Renderer
	// Captcha draws and judges the captchas the captcha policy puts on
	// registration and password reset; nil shows none.
	Captcha CaptchaChecker
	// Policies gives the captcha policy by application.
	Policies PolicySource
	Logger   *slog.Logger
}

func (pc PageConfig) logger() *slog.Logger {
	if pc.Logger == nil {
		return slog.Default()
	}
	return pc.Logger
}

// maxAccountForm bounds the registration and forgotten-password forms:
// short fields, two passwords, a CSRF token and a provider's captcha
// token, with room to spare.
const maxAccountForm = 64 << 10

// Messages of the self-service pages.
const (
	msgFormCaptchaMissing = "Type the digits in the picture before sending the form."
	msgConfirmDiffers     = "does not match the password above"
)

type registerHandler struct {
	reg *Register
	pc  PageConfig
	log *slog.Logger
}

// NewRegisterHandler serves the registration page at RegisterPath: GET
// shows the form, POST creates the account through reg and says what
// comes next (check your email, or sign in). ?flow=ID (a hidden field in
// the POST) names the sign-in the person came from: its application's
// registration and captcha policies apply, and the page leads back to it.
// A flow that cannot go on is ignored, so the global policy applies: the
// account is the same for every application either way.
func NewRegisterHandler(reg *Register, pc PageConfig) http.Handler {
	return &registerHandler{reg: reg, pc: pc, log: pc.logger()}
}

func (h *registerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fl, ok := h.flow(w, r, r.URL.Query().Get("flow"))
		if !ok {
			return
		}
		if !h.reg.Available(clientOf(fl)) {
			h.disabled(w, fl)
			return
		}
		h.show(w, r, fl, templates.RegisterPage{}, "")
	case http.MethodPost:
		h.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		showError(h.pc.Pages, w, http.StatusMethodNotAllowed, "Method not allowed", "This page only accepts GET and POST.")
	}
}

// flow is pendingFlow answering an infrastructure failure itself.
func (h *registerHandler) flow(w http.ResponseWriter, r *http.Request, id string) (*storage.LoginFlow, bool) {
	fl, err := pendingFlow(r, h.pc.Flows, id)
	if err != nil {
		h.internalError(w, r, err)
		return nil, false
	}
	return fl, true
}

func (h *registerHandler) show(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, page templates.RegisterPage, captchaError string) {
	page.CSRFToken = h.pc.CSRF.Token(w, r)
	page.MinLength = h.reg.accounts.PasswordPolicy().MinLength
	page.SignInURL = signInURL(fl)
	if fl != nil {
		page.Flow = fl.ID
	}
	if h.captchaShown(fl) {
		widget, err := drawCaptcha(r.Context(), w, h.pc.Captcha, h.pc.Policies(clientOf(fl)).Captcha, policies.CaptchaOnRegistration, captchaError)
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		page.Captcha = widget
	}
	h.pc.Pages.Render(w, http.StatusOK, "register.html", page)
}

func (h *registerHandler) captchaShown(fl *storage.LoginFlow) bool {
	return captchaOn(h.pc, clientOf(fl), policies.CaptchaOnRegistration)
}

func (h *registerHandler) submit(w http.ResponseWriter, r *http.Request) {
	if !readForm(w, r, maxAccountForm, h.pc.CSRF, h.pc.Pages, h.log, "registration") {
		return
	}
	ctx := r.Context()
	fl, ok := h.flow(w, r, r.PostFormValue("flow"))
	if !ok {
		return
	}
	clientID := clientOf(fl)
	if !h.reg.Available(clientID) {
		h.disabled(w, fl)
		return
	}
	typed := templates.RegisterPage{Username: r.PostFormValue("username"), Email: r.PostFormValue("email")}
	if h.captchaShown(fl) {
		msg, err := formCaptcha(r, h.pc, clientID, policies.CaptchaOnRegistration)
		if err != nil {
			h.internalError(w, r, err)
			return
		}
		if msg != "" {
			h.show(w, r, fl, typed, msg)
			return
		}
	}
	req := RegisterRequest{ClientID: clientID, Username: typed.Username, Email: typed.Email, Password: r.PostFormValue("password")}
	if req.Password != r.PostFormValue("confirm_password") {
		req.Problems = []fielderr.Field{{Field: "confirm_password", Code: CodeMismatch, Message: msgConfirmDiffers}}
	}
	out, err := h.reg.Register(ctx, req)
	if err != nil {
		h.refused(w, r, fl, typed, err)
		return
	}
	h.log.InfoContext(ctx, "account registered", slog.String("user_id", out.User.ID),
		slog.Bool("verification_sent", out.VerificationSent))
	notice := templates.NoticePage{Success: true, LinkURL: signInURL(fl), LinkText: "Sign in"}
	switch {
	case out.VerificationSent:
		notice.Title = "Check your email"
		notice.Message = "Your account " + out.User.Username + " is created. We sent a link to " + out.User.Email +
			": open it to confirm that the address is yours, then sign in."
		notice.Advice = "The mail can take a few minutes to arrive. If it does not, look in your spam folder; signing in also sends a new link."
		notice.LinkText = "Go to sign in"
	case out.VerificationRequired:
		notice.Title = "Your account is created"
		notice.Message = "Your account " + out.User.Username + " is created, but we could not send the mail to confirm your email address just now."
		notice.Advice = "Wait a few minutes, then sign in: we will send you a new link."
	default:
		notice.Title = "Your account is created"
		notice.Message = "You can now sign in as " + out.User.Username + "."
	}
	h.pc.Pages.Render(w, http.StatusOK, "notice.html", notice)
}

// refused answers a registration that did not create an account.
func (h *registerHandler) refused(w http.ResponseWriter, r *http.Request, fl *storage.LoginFlow, typed templates.RegisterPage, err error) {
	if fe, ok := fielderr.As(err); ok {
		typed.Errors = registerErrors(fe)
		h.show(w, r, fl, typed, "")
		return
	}
	if errors.Is(err, ErrRegistrationDisabled) {
		h.disabled(w, fl)
		return
	}
	if rl, ok := errors.AsType[*RateLimitedError](err); ok {
		w.Header().Set("Retry-After", retryAfterSeconds(rl.RetryAfter))
		h.pc.Pages.Render(w, http.StatusTooManyRequests, "notice.html", templates.NoticePage{
			Title:   "Too many new accounts",
			Message: "Too many accounts have been created from your network in a short time, so no more can be created from it for now.",
			Advice:  "Try again in " + inMinutes(rl.RetryAfter) + ". If you already have an account, you can sign in.",
			LinkURL: signInURL(fl), LinkText: "Sign in",
		})
		return
	}
	h.internalError(w, r, err)
}

func (h *registerHandler) disabled(w http.ResponseWriter, fl *storage.LoginFlow) {
	h.pc.Pages.Render(w, http.StatusForbidden, "notice.html", templates.NoticePage{
		Title:   "Creating an account is not available",
		Message: "You cannot create an account here yourself: accounts are created by an administrator.",
		Advice:  "If you need one, ask the administrator of the application you want to use. If you already have an account, you can sign in.",
		LinkURL: signInURL(fl), LinkText: "Sign in",
	})
}

func (h *registerHandler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r.Context(), h.log, "registration", err)
	if unavailableError(h.pc.Pages, w, err) {
		return
	}
	showError(h.pc.Pages, w, http.StatusInternalServerError, "Something went wrong",
		"Your account could not be created because of a problem on our side. Please try again later.")
}

// registerErrors turns the problems of a registration into one sentence
// per form field.
func registerErrors(fe *fielderr.Error) templates.FieldErrors {
	return fieldSentences(fe, map[string]string{
		"username": "This username", "email": "This", "password": "This password", "confirm_password": "This",
	})
}

// fieldSentences joins the problems of each field into one sentence,
// each field named by subject: "The password must be at least 12
// characters and must contain a digit." Problems of fields the form does
// not have go under "" (none are expected).
func fieldSentences(fe *fielderr.Error, subject map[string]string) templates.FieldErrors {
	byField := map[string][]string{}
	var order []string
	for _, f := range fe.Fields {
		name := f.Field
		if _, ok := subject[name]; !ok {
			name = ""
		}
		if _, seen := byField[name]; !seen {
			order = append(order, name)
		}
		byField[name] = append(byField[name], f.Message)
	}
	out := templates.FieldErrors{}
	for _, name := range order {
		msgs := byField[name]
		list := msgs[0]
		if n := len(msgs); n > 1 {
			list = strings.Join(msgs[:n-1], ", ") + " and " + msgs[n-1]
		}
		s := subject[name]
		if s == "" {
			s = "The form"
		}
		out[name] = s + " " + list + "."
	}
	return out
}

// registrationAPI is NewRegistrationAPI's handler.
type registrationAPI struct {
	reg *Register
	log *slog.Logger
}

// maxRegistrationJSON bounds the API's body: three short strings.
const maxRegistrationJSON = 16 << 10

// NewRegistrationAPI serves POST RegistrationsAPIPath for programs that
// draw their own sign-up screen: a JSON body {username, email, password}
// creates the account through reg under the global policy, answering 201
// {"id","username","email_verification_sent"}; 403 registration_disabled
// (or captcha_required, when the captcha policy puts one on registration:
// this API cannot show one, so the page is the only way in); 415 for a
// body that is not application/json; 422 invalid_request with every field
// problem; 429 rate_limited with Retry-After.
//
// It asks for no CSRF token: a page on another site can only make a
// browser send application/json after a CORS preflight, which this server
// never grants, and a cross-site HTML form cannot set that content type
// (text/plain bodies shaped like JSON are refused with 415). No cookie
// is read either, so there is no ambient authority to abuse.
func NewRegistrationAPI(reg *Register, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &registrationAPI{reg: reg, log: logger}
}

type registrationBody struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

type apiField struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type apiError struct {
	Error   string     `json:"error"`
	Message string     `json:"message,omitempty"`
	Fields  []apiField `json:"fields,omitempty"`
}

func (h *registrationAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method_not_allowed"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, apiError{Error: "unsupported_media_type", Message: "send the body as application/json"})
		return
	}
	ctx := r.Context()
	if !h.reg.Available("") {
		writeJSON(w, http.StatusForbidden, apiError{Error: "registration_disabled", Message: "people cannot create their own accounts here"})
		return
	}
	if h.reg.captchaRequired("") {
		writeJSON(w, http.StatusForbidden, apiError{Error: "captcha_required", Message: "registration needs a captcha: use the registration page"})
		return
	}
	body, msg := decodeRegistration(w, r)
	if msg != "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid_request", Message: msg})
		return
	}
	out, err := h.reg.Register(ctx, RegisterRequest{Username: body.Username, Email: body.Email, Password: body.Password})
	if err == nil {
		h.log.InfoContext(ctx, "account registered", slog.String("user_id", out.User.ID), slog.Bool("verification_sent", out.VerificationSent))
		writeJSON(w, http.StatusCreated, map[string]any{
			"id": out.User.ID, "username": out.User.Username, "email_verification_sent": out.VerificationSent,
		})
		return
	}
	if fe, ok := fielderr.As(err); ok {
		fields := make([]apiField, len(fe.Fields))
		for i, f := range fe.Fields {
			fields[i] = apiField{Field: f.Field, Code: f.Code, Message: f.Message}
			if f.Code == "" {
				fields[i].Code = CodeInvalid
			}
		}
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: "invalid_request", Fields: fields})
		return
	}
	if errors.Is(err, ErrRegistrationDisabled) {
		writeJSON(w, http.StatusForbidden, apiError{Error: "registration_disabled"})
		return
	}
	if rl, ok := errors.AsType[*RateLimitedError](err); ok {
		w.Header().Set("Retry-After", retryAfterSeconds(rl.RetryAfter))
		writeJSON(w, http.StatusTooManyRequests, apiError{Error: "rate_limited", Message: "too many registrations from this address; try again later"})
		return
	}
	logFailure(ctx, h.log, "registration API", err)
	if errors.Is(err, hashing.ErrBusy) || errors.Is(err, storage.ErrUnavailable) || errors.Is(err, captcha.ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "temporarily_unavailable"})
		return
	}
	writeJSON(w, http.StatusInternalServerError, apiError{Error: "server_error"})
}

// decodeRegistration reads the body as one JSON object of the known
// fields, or says what is wrong with it.
func decodeRegistration(w http.ResponseWriter, r *http.Request) (registrationBody, string) {
	var body registrationBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRegistrationJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return body, "the body is too large"
		}
		return body, "the body is not a JSON object of username, email and password: " + err.Error()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return body, "the body holds more than one JSON value"
	}
	for _, s := range []string{body.Username, body.Email, body.Password} {
		if !storage.StorableText(s) {
			return body, "a field holds characters that cannot be accepted"
		}
	}
	return body, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// retryAfterSeconds is d for a Retry-After header: whole seconds, rounded
// up, at least one.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// inMinutes says d for a person: "1 minute", "25 minutes".
func inMinutes(d time.Duration) string {
	m := max(1, int64(math.Ceil(d.Minutes())))
	if m == 1 {
		return "1 minute"
	}
	return strconv.FormatInt(m, 10) + " minutes"
}

// pendingFlow is the sign-in in progress id names, if this browser may
// still use it; nil when id is empty or the flow cannot go on, which the
// self-service pages answer by working without it. err is an
// infrastructure failure.
func pendingFlow(r *http.Request, flows *Flows, id string) (*storage.LoginFlow, error) {
	if id == "" || flows == nil {
		return nil, nil
	}
	fl, err := flows.Pending(r, id)
	if errors.Is(err, ErrFlowNotFound) || errors.Is(err, ErrFlowUsed) || errors.Is(err, ErrFlowOtherBrowser) {
		return nil, nil
	}
	return fl, err
}

func clientOf(fl *storage.LoginFlow) string {
	if fl == nil {
		return ""
	}
	return fl.ClientID
}

// signInURL leads back to the sign-in of fl, or to a new one.
func signInURL(fl *storage.LoginFlow) string {
	if fl == nil {
		return "/login"
	}
	return "/login?" + url.Values{"flow": {fl.ID}}.Encode()
}

// captchaOn reports whether page (registration or password reset) shows
// a captcha under clientID's policy. These pages have no failures to
// count, so the page listed in show_on is enough whatever "when" says:
// otherwise listing it under the default "after_failures" would do
// nothing.
func captchaOn(pc PageConfig, clientID, page string) bool {
	return pc.Captcha != nil && pc.Policies != nil && pc.Policies(clientID).Captcha.Shows(page, true)
}

// drawCaptcha makes the captcha of page under pol, widening the response's
// content security policy by what it needs, for this page only.
func drawCaptcha(ctx context.Context, w http.ResponseWriter, c CaptchaChecker, pol policies.Captcha, page, errMsg string) (*templates.CaptchaWidget, error) {
	widget, err := c.Widget(ctx, pol, page)
	if err != nil {
		return nil, fmt.Errorf("draw %s captcha: %w", page, err)
	}
	w.Header().Set("Content-Security-Policy", widget.ContentSecurityPolicy(w.Header().Get("Content-Security-Policy")))
	return widget.Template(errMsg), nil
}

// solveCaptcha judges the captcha answer of a posted form under pol:
// solved says it was right, answered that there was one.
func solveCaptcha(r *http.Request, c CaptchaChecker, pol policies.Captcha, page string) (solved, answered bool, err error) {
	for _, f := range []string{captcha.FieldAnswer, captcha.FieldChallengeID, captcha.FieldRecaptcha, captcha.FieldHCaptcha, captcha.FieldTurnstile} {
		if r.PostFormValue(f) != "" {
			answered = true
		}
	}
	if !answered {
		return false, false, nil
	}
	solved, err = c.Verify(r.Context(), pol, page, r.PostForm, reqinfo.From(r.Context()).IPString())
	if err != nil {
		return false, true, fmt.Errorf("check %s captcha: %w", page, err)
	}
	return solved, true, nil
}

// formCaptcha judges the captcha of a self-service form (registration,
// forgotten password), shown on every attempt its page is listed for: ""
// when it was solved, else what to tell the person.
func formCaptcha(r *http.Request, pc PageConfig, clientID, page string) (string, error) {
	solved, answered, err := solveCaptcha(r, pc.Captcha, pc.Policies(clientID).Captcha, page)
	switch {
	case err != nil:
		return "", err
	case solved:
		return "", nil
	case answered:
		return captchaWrongMessage, nil
	default:
		return msgFormCaptchaMissing, nil
	}
}
