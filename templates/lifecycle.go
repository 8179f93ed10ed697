package templates

// The data of the self-service account pages: registration, email
// confirmation, forgotten password, and the new-password form a reset or
// activation link opens. Field problems are keyed by the form field's
// name, so each is shown beside its field and tied to it.

// FieldErrors holds, by form field name ("username", "password", …), the
// sentence saying what is wrong with that field. A nil map means none.
type FieldErrors map[string]string

// RegisterPage is the data of "register.html". Flow, when set, is the
// sign-in in progress the person came from, carried through the form so
// that the page can send them back to it.
type RegisterPage struct {
	CSRFToken string
	Flow      string
	// Username and Email are what was typed, shown again after a problem;
	// passwords never are.
	Username string
	Email    string
	Errors   FieldErrors
	// MinLength is the shortest password accepted, for the hint and the
	// browser's own check.
	MinLength int
	// SignInURL is the sign-in page, for people who already have an
	// account.
	SignInURL string
	Captcha   *CaptchaWidget
}

// VerifyEmailPage is the data of "verify_email.html": the link was found
// and the page asks for a click before using it, since mail scanners open
// every link in a mail and must not confirm an address by doing so.
type VerifyEmailPage struct {
	CSRFToken string
	Token     string
	// Email is the address the link confirms.
	Email string
}

// ForgotPasswordPage is the data of "forgot_password.html".
type ForgotPasswordPage struct {
	CSRFToken string
	Flow      string
	// Identifier is what was typed, shown again after a refused captcha.
	Identifier string
	SignInURL  string
	Captcha    *CaptchaWidget
}

// ResetPasswordPage is the data of "reset_password.html", the form a
// reset or activation link opens. Action is the path the form posts to
// (the link's own), Token the link's token, carried in the form so that
// the link is used only when the form is sent.
type ResetPasswordPage struct {
	Action    string
	Token     string
	CSRFToken string
	// Activation is set for an account an administrator created: its
	// owner sets a first password rather than a new one.
	Activation bool
	Username   string
	Errors     FieldErrors
	MinLength  int
}

// NoticePage is the data of "notice.html": the end of a step, or why it
// cannot be taken. Success marks good news. LinkURL and LinkText, when
// set, are the one way on.
type NoticePage struct {
	Title    string
	Message  string
	Advice   string
	Success  bool
	LinkURL  string
	LinkText string
}
