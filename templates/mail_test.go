package templates

import (
	"html"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testMailIssuer = "https://id.example.com"
	// testMailLink has what a quoted-printable or HTML encoder changes:
	// "=", "&", and more than a mail line's 76 characters.
	testMailLink = "https://id.example.com/account/verify?token=Zm9vYmFyYmF6cXV4LXRoaXMtaXMtYS1sb25nLXRva2Vu&flow=f-1"
)

var testMailWhen = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

func newTestMailRenderer(t *testing.T) *MailRenderer {
	t.Helper()
	r, err := NewMailRenderer()
	if err != nil {
		t.Fatalf("NewMailRenderer: %v", err)
	}
	return r
}

func TestRenderMail(t *testing.T) {
	data := MailData{
		Issuer: testMailIssuer, Username: "alice", Link: testMailLink,
		ExpiresIn: time.Hour, When: testMailWhen,
	}
	tests := []struct {
		kind    string
		data    MailData
		subject string
		// text is what the plain-text part says, in order; html what the
		// HTML part's text says, in order, once tags are gone.
		text, html []string
		noLink     bool
	}{
		{
			kind: MailVerifyEmail, data: data,
			subject: "Confirm your email address for id.example.com",
			text: []string{
				"Hello alice,",
				`your account "alice" at id.example.com`,
				"\n\n    " + testMailLink + "\n\n",
				"This link works once and expires in 1 hour.",
				"You can ignore this message: the address stays unconfirmed.",
			},
			html: []string{"Hello alice,", "Confirm my email address", "expires in 1 hour", testMailLink},
		},
		{
			kind: MailActivation, data: func() MailData { d := data; d.ExpiresIn = 72 * time.Hour; return d }(),
			subject: "Set your password for your new account at id.example.com",
			text: []string{
				"An administrator of id.example.com has created an account for you.",
				"Your username is:\n\n    alice\n",
				"choose your password",
				"\n\n    " + testMailLink + "\n\n",
				"This link works once and expires in 3 days.",
			},
			html: []string{"created an account for you", "Set my password", "expires in 3 days", testMailLink},
		},
		{
			kind: MailReset, data: func() MailData { d := data; d.ExpiresIn = 30 * time.Minute; return d }(),
			subject: "Reset your password for id.example.com",
			text: []string{
				"Someone asked to reset the password",
				"\n\n    " + testMailLink + "\n\n",
				"This link works once and expires in 30 minutes.",
				"If you did not ask for this, you can ignore this message. Your password has not been changed and stays the same.",
			},
			html: []string{"Choose a new password", "expires in 30 minutes", testMailLink, "If you did not ask for this, you can ignore this message."},
		},
		{
			kind: MailPasswordChanged, data: data,
			subject: "Your password for id.example.com was changed",
			text: []string{
				`The password for your account "alice" at id.example.com was changed on Tuesday, 6 May 2031 at 07:08 UTC.`,
				"If you did not change it",
				"\n\n    " + testMailLink + "\n\n",
				"Tell your administrator",
			},
			html: []string{"was changed on Tuesday, 6 May 2031 at 07:08 UTC.", "If you did not change it", testMailLink, "Tell your administrator"},
		},
		{
			kind:    MailPasswordChanged,
			data:    MailData{Issuer: testMailIssuer, Username: "alice", When: testMailWhen},
			subject: "Your password for id.example.com was changed",
			text:    []string{"was changed on Tuesday, 6 May 2031 at 07:08 UTC.", "Contact your administrator straight away"},
			html:    []string{"Contact your administrator straight away"},
			noLink:  true,
		},
	}
	r := newTestMailRenderer(t)
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			subject, text, body, err := r.Render(tt.kind, tt.data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if subject != tt.subject {
				t.Errorf("subject %q, want %q", subject, tt.subject)
			}
			footer := "Enter your password only on pages whose address begins with\n\n    https://id.example.com/\n"
			containsInOrder(t, "text", text, append(tt.text, "sent automatically by id.example.com", footer))
			containsInOrder(t, "HTML", htmlText(body), append(tt.html, "sent automatically by id.example.com"))
			hrefs := links(body)
			if tt.noLink {
				if len(hrefs) != 0 || strings.Contains(text, "This link") {
					t.Errorf("mail without a link has links %v or speaks of one", hrefs)
				}
			} else if !slices.Equal(hrefs, []string{tt.data.Link, tt.data.Link}) {
				// Once as the button, once written out.
				t.Errorf("HTML links %q, want the link twice", hrefs)
			}
			checkSelfContained(t, body)
		})
	}
}

// containsInOrder asserts that s contains each of want, in order.
func containsInOrder(t *testing.T, which, s string, want []string) {
	t.Helper()
	rest := s
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%s lacks (or has out of order) %q:\n%s", which, w, s)
			continue
		}
		rest = rest[i+len(w):]
	}
}

// htmlText is body's text as a reader sees it, near enough: tags gone,
// entities decoded, white space collapsed.
func htmlText(body string) string {
	s := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

// links are the decoded targets of body's href attributes.
func links(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// checkSelfContained asserts that an HTML mail loads nothing: no images
// (the usual tracking pixel), scripts, style sheets or fonts.
func checkSelfContained(t *testing.T, body string) {
	t.Helper()
	lower := strings.ToLower(body)
	for _, bad := range []string{"<img", "<script", "<link", "<iframe", "<object", "<style", "src=", "url(", "@import", "background=\""} {
		if strings.Contains(lower, bad) {
			t.Errorf("HTML part has %q: it must load nothing", bad)
		}
	}
}

func TestRenderMailEscapes(t *testing.T) {
	const hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>\r\nSubject: forged"
	r := newTestMailRenderer(t)
	for kind := range mailKinds() {
		t.Run(kind, func(t *testing.T) {
			subject, text, body, err := r.Render(kind, MailData{
				Issuer: testMailIssuer, Username: hostile, Link: testMailLink, ExpiresIn: time.Hour, When: testMailWhen,
			})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if strings.ContainsAny(subject, "\r\n") {
				t.Errorf("subject %q is more than one line", subject)
			}
			for _, bad := range []string{"<script", "<img"} {
				if strings.Contains(body, bad) {
					t.Errorf("HTML part has %q unescaped:\n%s", bad, body)
				}
			}
			if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;") {
				t.Errorf("HTML part lacks the escaped username:\n%s", body)
			}
			// In the plain text the username is shown as typed, but on one
			// line: it cannot start a line of its own.
			for _, line := range strings.Split(text, "\n") {
				if strings.HasPrefix(line, "Subject:") {
					t.Errorf("username forged a line in the text part:\n%s", text)
				}
			}
			if !strings.Contains(text, "alert(1)</script>\"><img src=x onerror=alert(2)>\uFFFD\uFFFDSubject: forged") {
				t.Errorf("text part lacks the cleaned username:\n%s", text)
			}
		})
	}
}

func TestRenderMailRefuses(t *testing.T) {
	good := MailData{Issuer: testMailIssuer, Username: "bob", Link: testMailLink, ExpiresIn: time.Hour, When: testMailWhen}
	with := func(f func(*MailData)) MailData {
		d := good
		f(&d)
		return d
	}
	tests := []struct {
		name string
		kind string
		data MailData
		want string
	}{
		{"unknown kind", "welcome", good, `unknown kind "welcome"`},
		{"empty kind", "", good, `unknown kind ""`},
		{"layout is no kind", "layout", good, `unknown kind "layout"`},
		{"no link", MailReset, with(func(d *MailData) { d.Link = "" }), "no link"},
		{"script link", MailVerifyEmail, with(func(d *MailData) { d.Link = "javascript:alert(1)" }), "not an absolute http or https URL"},
		{"relative link", MailActivation, with(func(d *MailData) { d.Link = "/reset?token=x" }), "not an absolute http or https URL"},
		{"link with a line break", MailReset, with(func(d *MailData) { d.Link = testMailLink + "\nhttps://evil.example/" }), "control characters"},
		{"link with a space", MailReset, with(func(d *MailData) { d.Link = testMailLink + " x" }), "spaces"},
		{"no lifetime", MailVerifyEmail, with(func(d *MailData) { d.ExpiresIn = 0 }), "no link lifetime"},
		{"negative lifetime", MailPasswordChanged, with(func(d *MailData) { d.ExpiresIn = -time.Minute }), "negative link lifetime"},
		{"password change without a time", MailPasswordChanged, with(func(d *MailData) { d.When = time.Time{} }), "no time of the change"},
		{"issuer not a URL", MailReset, with(func(d *MailData) { d.Issuer = "id.example.com" }), "issuer is not an absolute URL"},
	}
	r := newTestMailRenderer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject, text, body, err := r.Render(tt.kind, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render = %v, want an error saying %q", err, tt.want)
			}
			if subject != "" || text != "" || body != "" {
				t.Error("Render returned a mail with its error")
			}
			// The link is a credential: errors end up in logs.
			if strings.Contains(err.Error(), "token=") {
				t.Errorf("error %q reveals the link", err)
			}
		})
	}
}

func TestRenderMailSite(t *testing.T) {
	tests := []struct {
		name         string
		site, issuer string
		want         string // the subject's end
	}{
		{"from the issuer", "", "https://login.example.net/realm/", "login.example.net"},
		{"given", "Example Login", "https://login.example.net", "Example Login"},
		{"cleaned", "evil\r\nBcc: x", "", "evil\uFFFD\uFFFDBcc: x"},
		{"neither", "", "", "Portcullis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject, text, _, err := RenderMail(MailReset, MailData{
				Site: tt.site, Issuer: tt.issuer, Link: testMailLink, ExpiresIn: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := "Reset your password for " + tt.want; subject != want {
				t.Errorf("subject %q, want %q", subject, want)
			}
			if tt.issuer != "" && !strings.Contains(text, "\n    "+strings.TrimSuffix(tt.issuer, "/")+"/\n") {
				t.Errorf("text does not give the issuer on a line of its own:\n%s", text)
			}
			if tt.issuer == "" && strings.Contains(text, "pages whose address begins with") {
				t.Errorf("text names an address without an issuer:\n%s", text)
			}
		})
	}
}

func TestMailTemplatesAreKinds(t *testing.T) {
	// Every file is a layout or one part of a kind, and every kind has
	// both parts: a file added without its kind would never be sent.
	names, err := fs.Glob(mailFS, "mail/*")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, name := range names {
		got = append(got, path.Base(name))
	}
	want := []string{"layout.html", "layout.txt"}
	for kind := range mailKinds() {
		want = append(want, kind+".html", kind+".txt")
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("mail templates %v, want %v", got, want)
	}
}

func TestInWords(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Hour, "1 hour"},
		{2 * time.Hour, "2 hours"},
		{30 * time.Minute, "30 minutes"},
		{time.Minute, "1 minute"},
		{90 * time.Minute, "1 hour and 30 minutes"},
		{61 * time.Minute, "1 hour and 1 minute"},
		{24 * time.Hour, "1 day"},
		{72 * time.Hour, "3 days"},
		{36 * time.Hour, "36 hours"},
		{10 * time.Second, "1 minute"},
		{59*time.Minute + 40*time.Second, "1 hour"},
	}
	for _, tt := range tests {
		if got := inWords(tt.in); got != tt.want {
			t.Errorf("inWords(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
