package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// The account mails: for each kind, mail/KIND.txt (the subject and the
// plain-text part) and mail/KIND.html (the HTML part), each executed
// through its layout. Unlike the pages, mails style inline: mail programs
// drop <style> elements, and no Content-Security-Policy applies to them.
//
//go:embed mail
var mailFS embed.FS

// Mail kinds, the names RenderMail takes.
const (
	// MailVerifyEmail asks a person to confirm their address, after they
	// register or when an unconfirmed account signs in.
	MailVerifyEmail = "verify_email"
	// MailActivation tells a person that an administrator made them an
	// account, with the link to choose its password.
	MailActivation = "activation"
	// MailReset carries the link to choose a new password after someone
	// asked for a reset.
	MailReset = "reset"
	// MailPasswordChanged is the security notice after a password change.
	// Its link, optional, is one to choose a new password.
	MailPasswordChanged = "password_changed"
)

// mailKinds lists the kinds and whether each one's mail is pointless
// without a link. A function rather than a variable so that nothing can
// change it.
func mailKinds() map[string]bool {
	return map[string]bool{
		MailVerifyEmail:     true,
		MailActivation:      true,
		MailReset:           true,
		MailPasswordChanged: false,
	}
}

// MailData is what an account mail says.
type MailData struct {
	// Site is how the mail names the service, as its reader knows it from
	// the address bar: the issuer's host. "" means the Issuer's host.
	Site string
	// Issuer is the server's issuer URL. The mail gives it as the one
	// address where a password may be typed; "" leaves that out.
	Issuer string
	// Username is the account's name; "" leaves it out.
	Username string
	// Link is the address to open: required for every kind but
	// MailPasswordChanged. It must be an absolute http or https URL.
	Link string
	// ExpiresIn is the link's lifetime, said in words ("1 hour"). Required
	// with a link for every kind but MailPasswordChanged, where a zero
	// leaves it unsaid.
	ExpiresIn time.Duration
	// When is when the password changed, for MailPasswordChanged.
	When time.Time
}

// mailView is what the templates see: MailData cleaned, and the lifetime
// and time already in words, so that the text and HTML parts say them
// alike.
type mailView struct {
	MailData
	Subject  string
	Lifetime string
	At       string
}

// mailKind is one kind's two parts, each already combined with its layout.
type mailKind struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// MailRenderer executes the embedded account mails. Make one with
// NewMailRenderer at start-up; it is safe for concurrent use.
type MailRenderer struct {
	kinds map[string]mailKind
}

// NewMailRenderer parses every mail once, so that a broken template fails
// start-up rather than a mail nobody notices is missing.
func NewMailRenderer() (*MailRenderer, error) {
	kinds := make(map[string]mailKind)
	for kind := range mailKinds() {
		text, err := texttemplate.New(kind).ParseFS(mailFS, "mail/layout.txt", "mail/"+kind+".txt")
		if err != nil {
			return nil, fmt.Errorf("parse %s mail text: %w", kind, err)
		}
		html, err := htmltemplate.New(kind).ParseFS(mailFS, "mail/layout.html", "mail/"+kind+".html")
		if err != nil {
			return nil, fmt.Errorf("parse %s mail HTML: %w", kind, err)
		}
		for _, name := range []string{"subject", "body"} {
			if text.Lookup(name) == nil {
				return nil, fmt.Errorf("parse %s mail text: no %q template", kind, name)
			}
		}
		if html.Lookup("body") == nil {
			return nil, fmt.Errorf("parse %s mail HTML: no \"body\" template", kind)
		}
		kinds[kind] = mailKind{text: text, html: html}
	}
	return &MailRenderer{kinds: kinds}, nil
}

// RenderMail renders one mail with a renderer made for the purpose. It
// parses every template on each call; a server renders through one
// MailRenderer instead.
func RenderMail(kind string, data MailData) (subject, text, html string, err error) {
	r, err := NewMailRenderer()
	if err != nil {
		return "", "", "", err
	}
	return r.Render(kind, data)
}

// Render returns the subject (one line), the plain-text part and the HTML
// part of mail kind. Errors name what is wrong, never the link, which is a
// credential.
func (r *MailRenderer) Render(kind string, data MailData) (subject, text, html string, err error) {
	k, ok := r.kinds[kind]
	if !ok {
		return "", "", "", fmt.Errorf("render mail: unknown kind %q", kind)
	}
	v, err := newMailView(kind, data)
	if err != nil {
		return "", "", "", fmt.Errorf("render %s mail: %w", kind, err)
	}
	var b bytes.Buffer
	if err := k.text.ExecuteTemplate(&b, "subject", v); err != nil {
		return "", "", "", fmt.Errorf("render %s mail subject: %w", kind, err)
	}
	// A line break in a subject would end the header; the parts that go
	// into it are already cleaned, so this only tidies the template's own
	// whitespace.
	v.Subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := k.text.ExecuteTemplate(&b, "layout", v); err != nil {
		return "", "", "", fmt.Errorf("render %s mail text: %w", kind, err)
	}
	text = b.String()
	b.Reset()
	if err := k.html.ExecuteTemplate(&b, "layout", v); err != nil {
		return "", "", "", fmt.Errorf("render %s mail HTML: %w", kind, err)
	}
	return v.Subject, text, b.String(), nil
}

// newMailView checks data for kind and prepares it for the templates.
func newMailView(kind string, data MailData) (mailView, error) {
	needsLink := mailKinds()[kind]
	var problems []string
	if data.Link == "" {
		if needsLink {
			problems = append(problems, "no link")
		}
	} else if err := checkLink(data.Link); err != nil {
		problems = append(problems, err.Error())
	}
	if needsLink && data.ExpiresIn <= 0 {
		problems = append(problems, "no link lifetime")
	}
	if data.ExpiresIn < 0 {
		problems = append(problems, "negative link lifetime")
	}
	if kind == MailPasswordChanged && data.When.IsZero() {
		problems = append(problems, "no time of the change")
	}
	if data.Issuer != "" {
		u, err := url.Parse(data.Issuer)
		if err != nil || u.Host == "" || hasUnsafe(data.Issuer) {
			problems = append(problems, "issuer is not an absolute URL")
		} else if data.Site == "" {
			data.Site = u.Host
		}
	}
	if len(problems) > 0 {
		return mailView{}, errors.New(strings.Join(problems, "; "))
	}
	// The issuer is written with a "/" after it.
	data.Issuer = strings.TrimSuffix(data.Issuer, "/")
	data.Site = cleanLine(data.Site, 100)
	if data.Site == "" {
		data.Site = "Portcullis"
	}
	// A username comes from whoever registered: a line break in it could
	// forge lines of the text part or of the subject.
	data.Username = cleanLine(data.Username, 100)
	v := mailView{MailData: data}
	if data.Link != "" && data.ExpiresIn > 0 {
		v.Lifetime = inWords(data.ExpiresIn)
	}
	if !data.When.IsZero() {
		v.At = data.When.UTC().Format("Monday, 2 January 2006 at 15:04 MST")
	}
	return v, nil
}

// checkLink refuses a link that is not an absolute web address, or that
// has characters that would break it apart in the plain text.
func checkLink(link string) error {
	if hasUnsafe(link) || strings.ContainsRune(link, ' ') {
		return errors.New("link has spaces or control characters")
	}
	u, err := url.Parse(link)
	if err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("link is not an absolute http or https URL")
	}
	return nil
}

// hasUnsafe reports whether s has a control, format or invalid character.
func hasUnsafe(s string) bool {
	return strings.IndexFunc(s, unsafeRune) >= 0 || !utf8.ValidString(s)
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) && r != ' '
}

// cleanLine makes s one line of text safe to show: control and format
// characters (line breaks, bidirectional overrides) become U+FFFD, and
// anything beyond max runes is cut off with an ellipsis.
func cleanLine(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || unsafeRune(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// inWords says d as a person would: "1 hour", "30 minutes", "3 days",
// "1 hour and 30 minutes". It is to the minute, and never says less than
// a minute.
func inWords(d time.Duration) string {
	minutes := int64(d.Round(time.Minute) / time.Minute)
	if minutes < 1 {
		minutes = 1
	}
	unit := func(n int64, one string) string {
		s := strconv.FormatInt(n, 10) + " " + one
		if n != 1 {
			s += "s"
		}
		return s
	}
	const day = 24 * 60
	if minutes%day == 0 {
		return unit(minutes/day, "day")
	}
	hours, rest := minutes/60, minutes%60
	switch {
	case hours == 0:
		return unit(rest, "minute")
	case rest == 0:
		return unit(hours, "hour")
	default:
		return unit(hours, "hour") + " and " + unit(rest, "minute")
	}
}
