package templates

import "html/template"

// PasskeyCeremony is a WebAuthn ceremony inside a form: the page's script
// (static/webauthn.js) hands Options to the browser's authenticator when
// the person presses the button, puts the answer in webauthn_response and
// sends the form, which names the ceremony back.
type PasskeyCeremony struct {
	// Mode is "create" (register a passkey) or "get" (use one).
	Mode string
	// Options is the JSON the server made for this ceremony.
	Options  string
	Ceremony string
	Button   string
}

// TOTPSetup is an authenticator app being set up: the secret as text and
// as a QR code of its otpauth URI, and the pending factor a code confirms.
type TOTPSetup struct {
	FactorID string
	Secret   string
	URI      string
	// QRCode is a data: URL of a PNG, carried inside the page.
	QRCode template.URL
}

// MFAVerifyPage is the data of "mfa_verify.html": the second-factor step
// of a sign-in, or a signed-in person's step-up before a sensitive action.
type MFAVerifyPage struct {
	// Action is the form's target; Flow the login flow (sign-in), or
	// StepUpAction the action stepped up for and Purpose why (step-up).
	Action       string
	Flow         string
	StepUpAction string
	Purpose      string
	CSRFToken    string
	Username     string
	Error        string
	// HasApp says the account has an authenticator app to take a code
	// from (else the code field takes recovery codes only).
	HasApp bool
	// PasskeyURL offers a passkey instead of a code, CodeURL the way
	// back; Passkey is the ceremony when this showing is the passkey one.
	PasskeyURL string
	CodeURL    string
	Passkey    *PasskeyCeremony
	// CancelURL leaves the step (step-up only).
	CancelURL string
}

// MFAEnrollPage is the data of "mfa_enroll.html": setting up a second
// factor, during a sign-in that needs one or from the account page.
type MFAEnrollPage struct {
	Action    string
	Flow      string
	CSRFToken string
	Username  string
	Error     string
	// Intro says why the page is shown.
	Intro string
	// TOTP is the authenticator-app setup; Passkey the passkey one.
	// PasskeyURL and TOTPURL switch between them where both are allowed.
	TOTP       *TOTPSetup
	Passkey    *PasskeyCeremony
	PasskeyURL string
	TOTPURL    string
	// CanSkip offers "Not now" (inside the grace period); SkipUntil says
	// until when, when known.
	CanSkip   bool
	SkipUntil string
	// CancelURL leaves the page (account page only).
	CancelURL string
}

// RecoveryCodesPage is the data of "mfa_recovery_codes.html": new recovery
// codes, shown once.
type RecoveryCodesPage struct {
	Intro       string
	Codes       []string
	ContinueURL string
}

// MFAFactorView is one factor on the account page.
type MFAFactorView struct {
	ID       string
	Kind     string // "Authenticator app", "Passkey"
	Name     string
	Created  string
	LastUsed string
}

// MFAAccountPage is the data of "mfa_account.html": the signed-in
// person's second factors.
type MFAAccountPage struct {
	Username      string
	CSRFToken     string
	Error         string
	Success       string
	Factors       []MFAFactorView
	RecoveryLeft  int
	Requirement   string // "off", "optional", "required"
	TOTPURL       string
	PasskeyURL    string
	RecoveryCodes bool // offer regenerating them (the account has a factor)
}

// DevicePage is the data of "device.html": the verification page of the
// device authorization grant. It asks for the code, then (Confirm) shows
// which application asks for what, then (Done) says what was decided.
type DevicePage struct {
	CSRFToken string
	Error     string
	UserCode  string
	Confirm   bool
	ClientID  string
	App       App
	Username  string
	Scopes    []ScopeInfo
	Done      bool
	Approved  bool
}
