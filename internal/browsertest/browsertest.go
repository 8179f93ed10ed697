package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// StepTimeout bounds each step (a navigation, a wait, a click). A step that
// hangs fails the test with what it was doing instead of stalling the run
// until go test kills it with no word on where.
const StepTimeout = 30 * time.Second

// Browser is one headless Chromium with a fresh profile and one tab. Its
// methods fail the test on error; they are not safe for concurrent use,
// as they all drive the same tab. In a subtest, use For(t) so that a
// failure ends the subtest, not its parent.
type Browser struct {
	t   testing.TB
	tab *tab
}

// tab is what every Browser for one Chromium shares.
type tab struct {
	ctx context.Context

	mu sync.Mutex
	// webauthnOn records that WebAuthn.enable was sent, which the virtual
	// authenticator commands need once per tab.
	webauthnOn bool
	// jsErrors are uncaught exceptions, console.error calls and
	// non-network log errors (a CSP refusal is one), in arrival order.
	jsErrors []string
}

// Chromium finds the browser. Under CI=true a missing browser fails the
// test; otherwise the test is skipped.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("browsertest: no Chromium found; install it (apt-get install -y chromium)")
	}
	t.Skip("browsertest: no Chromium found; install it (apt-get install -y chromium) to run the browser tests")
	return ""
}

// New starts Chromium for t and stops it when t ends.
func New(t testing.TB) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 800),
		// The defaults already run headless with no first-run screens, no
		// background networking and no sync; these keep the browser from
		// fetching components or speaking QUIC behind the test's back.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	tb := &tab{}
	// No deadline on these contexts: the first run's context is the
	// browser's lifetime. Steps get their own timeout (see step).
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(tb.listen))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	tb.ctx = ctx
	// Start the browser now, so a launch failure reads as one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: start Chromium: %v", err)
	}
	// The Log domain carries what the console shows that no script wrote:
	// CSP refusals, mixed content, deprecated features.
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("browsertest: enable the Log domain: %v", err)
	}
	return &Browser{t: t, tab: tb}
}

// For returns the same browser reporting to t, for use in a subtest:
// testing forbids failing a parent test from its subtest.
func (b *Browser) For(t testing.TB) *Browser {
	return &Browser{t: t, tab: b.tab}
}

// listen runs on chromedp's event goroutine: it must be quick and must not
// send commands.
func (tb *tab) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + exceptionText(ev.ExceptionDetails)
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			parts = append(parts, remoteText(a))
		}
		msg = "console.error: " + strings.Join(parts, " ")
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		// Network errors (a missing favicon) are the server tests' business,
		// not the script's.
		if e == nil || e.Level != cdplog.EntryLevelError || e.Source == cdplog.EntrySourceNetwork {
			return
		}
		msg = fmt.Sprintf("%s: %s", e.Source, e.Text)
	default:
		return
	}
	tb.mu.Lock()
	tb.jsErrors = append(tb.jsErrors, msg)
	tb.mu.Unlock()
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	text := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		text += " " + d.Exception.Description
	}
	if d.URL != "" {
		text += fmt.Sprintf(" (%s:%d:%d)", d.URL, d.LineNumber+1, d.ColumnNumber+1)
	}
	return text
}

func remoteText(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if o.Description != "" {
		return o.Description
	}
	if len(o.Value) > 0 {
		var str string
		if o.Type == runtime.RemoteObjectTypeString && json.Unmarshal(o.Value, &str) == nil {
			return str
		}
		return string(o.Value)
	}
	return string(o.Type)
}

// JSErrors returns the uncaught exceptions, console.error calls and log
// errors (CSP refusals among them) the pages produced so far.
func (b *Browser) JSErrors() []string {
	b.tab.mu.Lock()
	defer b.tab.mu.Unlock()
	return append([]string(nil), b.tab.jsErrors...)
}

// Context is the tab's chromedp context, for actions the wrappers do not
// cover: chromedp.Run(b.Context(), chromedp.Evaluate[int]("1+1")). It has
// no deadline of its own.
func (b *Browser) Context() context.Context { return b.tab.ctx }

// step runs fn under StepTimeout and fails the test with what, where the
// tab was, and what the page's scripts complained about.
func (b *Browser) step(what string, fn func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab.ctx, StepTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no result within %v: %w", StepTimeout, err)
		}
		b.t.Fatalf("browsertest: %s: %v%s", what, err, b.where())
	}
}

// where describes the tab's state for a failure message. It uses a short
// timeout of its own: the step may have failed because the tab is stuck.
func (b *Browser) where() string {
	ctx, cancel := context.WithTimeout(b.tab.ctx, 2*time.Second)
	defer cancel()
	var sb strings.Builder
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		fmt.Fprintf(&sb, "\n\tat %s", loc)
	}
	for _, e := range b.JSErrors() {
		fmt.Fprintf(&sb, "\n\tpage: %s", e)
	}
	return sb.String()
}

// Do runs chromedp actions as one step; what names it in a failure.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.step(what, func(ctx context.Context) error { return chromedp.Do(ctx, actions...) })
}

// Navigate loads url and waits for its load event.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.Do("navigate to "+url, chromedp.Navigate(url))
}

// Location is the tab's current URL.
func (b *Browser) Location() string {
	b.t.Helper()
	var loc string
	b.step("read the location", func(ctx context.Context) (err error) {
		loc, err = chromedp.Run(ctx, chromedp.Location())
		return err
	})
	return loc
}

// WaitVisible waits until an element matching the CSS selector is shown.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.Do("wait for "+sel+" to show", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitNotPresent waits until no element matches the CSS selector, as after
// the form it is in was sent and the next page loaded.
func (b *Browser) WaitNotPresent(sel string) {
	b.t.Helper()
	b.Do("wait for "+sel+" to go", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// Click clicks the first visible element matching the CSS selector, as a
// mouse would.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.Do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// Fill types value into a field after clearing it, key by key, as a person
// would, so the page's input handlers run.
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.Do("fill "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Clear(chromedp.CSS(sel)),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	)
}

// SetValue sets a field's value directly, without key events; it works on
// hidden inputs too, for tests that play a tampering client.
func (b *Browser) SetValue(sel, value string) {
	b.t.Helper()
	b.Do("set the value of "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// Text is the visible text of the first element matching the selector.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	var s string
	b.step("read the text of "+sel, func(ctx context.Context) (err error) {
		s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		return err
	})
	return s
}

// Value is the current value of the first form field matching the selector.
func (b *Browser) Value(sel string) string {
	b.t.Helper()
	var s string
	b.step("read the value of "+sel, func(ctx context.Context) (err error) {
		s, err = chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
		return err
	})
	return s
}

// Attribute is an attribute of the first element matching the selector,
// and whether it is set.
func (b *Browser) Attribute(sel, name string) (string, bool) {
	b.t.Helper()
	var res chromedp.AttributeResult
	b.step("read "+name+" of "+sel, func(ctx context.Context) (err error) {
		res, err = chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		return err
	})
	return res.Value, res.Exists
}

// Eval runs a JavaScript expression in the page for its effect, failing the
// test if it throws. A promise is awaited.
func (b *Browser) Eval(js string) {
	b.t.Helper()
	b.Do("evaluate "+js, chromedp.Evaluate[chromedp.Void](js, chromedp.EvalAwaitPromise))
}

// Screenshot writes the page to $PORTCULLIS_SCREENSHOTS/name.png, for
// people to look at; without the variable it does nothing.
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("PORTCULLIS_SCREENSHOTS")
	if dir == "" {
		return
	}
	var png []byte
	b.step("screenshot "+name, func(ctx context.Context) (err error) {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
}

// AddVirtualAuthenticator attaches a CTAP2 authenticator built into the
// device (transport "internal", so a platform authenticator to the page,
// like Touch ID or Windows Hello) that approves every presence check at
// once. residentKey lets it store passkeys; userVerification gives it a
// user-verification method, which succeeds. It returns the
// authenticator's id for the other calls. Chromium allows one such
// authenticator per tab; add more with AddSecurityKey.
//
// While one is attached the tab uses virtual authenticators instead of
// any real device, and Chromium shows no WebAuthn dialog.
func (b *Browser) AddVirtualAuthenticator(residentKey, userVerification bool) string {
	b.t.Helper()
	return b.addAuthenticator("a virtual platform authenticator", webauthn.AuthenticatorTransportInternal, residentKey, userVerification)
}

// AddSecurityKey attaches a CTAP2 authenticator on USB, a roaming security
// key, otherwise as AddVirtualAuthenticator. A tab may have several.
func (b *Browser) AddSecurityKey(residentKey, userVerification bool) string {
	b.t.Helper()
	return b.addAuthenticator("a virtual security key", webauthn.AuthenticatorTransportUsb, residentKey, userVerification)
}

func (b *Browser) addAuthenticator(what string, transport webauthn.AuthenticatorTransport, residentKey, userVerification bool) string {
	b.t.Helper()
	b.tab.mu.Lock()
	enabled := b.tab.webauthnOn
	b.tab.mu.Unlock()
	if !enabled {
		b.step("enable the WebAuthn domain", func(ctx context.Context) error {
			_, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{EnableUI: new(false)})
			return err
		})
		b.tab.mu.Lock()
		b.tab.webauthnOn = true
		b.tab.mu.Unlock()
	}
	var id webauthn.AuthenticatorID
	b.step("add "+what, func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol:                    webauthn.AuthenticatorProtocolCtap2,
				Transport:                   transport,
				HasResidentKey:              residentKey,
				HasUserVerification:         userVerification,
				IsUserVerified:              true,
				AutomaticPresenceSimulation: true,
			},
		})
		id = res.AuthenticatorID
		return err
	})
	return string(id)
}

// RemoveVirtualAuthenticator detaches the authenticator and forgets its
// credentials.
func (b *Browser) RemoveVirtualAuthenticator(id string) {
	b.t.Helper()
	b.step("remove virtual authenticator "+id, func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{
			AuthenticatorID: webauthn.AuthenticatorID(id),
		})
		return err
	})
}

// SetUserPresence sets whether the authenticator answers presence checks
// at once (the default) or never, as if nobody touched it. A browser with
// several authenticators uses the one that answers.
func (b *Browser) SetUserPresence(id string, present bool) {
	b.t.Helper()
	b.step("set user presence of "+id, func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, webauthn.SetAutomaticPresenceSimulation, webauthn.SetAutomaticPresenceSimulationParams{
			AuthenticatorID: webauthn.AuthenticatorID(id),
			Enabled:         present,
		})
		return err
	})
}

// SetUserVerified sets whether the authenticator's user verification
// succeeds (the default) or fails.
func (b *Browser) SetUserVerified(id string, verified bool) {
	b.t.Helper()
	b.step("set user verification of "+id, func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{
			AuthenticatorID: webauthn.AuthenticatorID(id),
			IsUserVerified:  verified,
		})
		return err
	})
}

// ResponseOverrides makes an authenticator misbehave, to test that the
// server notices. The zero value restores honest responses.
type ResponseOverrides struct {
	// BogusSignature replaces assertion and attestation signatures with
	// zeros.
	BogusSignature bool
	// BadUV and BadUP clear the user-verified and user-present flags in
	// the authenticator data, after the checks were made.
	BadUV, BadUP bool
}

// OverrideResponses applies o to the authenticator's later responses.
func (b *Browser) OverrideResponses(id string, o ResponseOverrides) {
	b.t.Helper()
	b.step("override responses of "+id, func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{
			AuthenticatorID:  webauthn.AuthenticatorID(id),
			IsBogusSignature: new(o.BogusSignature),
			IsBadUV:          new(o.BadUV),
			IsBadUP:          new(o.BadUP),
		})
		return err
	})
}

// VirtualCredential is a credential held by a virtual authenticator, as
// the authenticator sees it.
type VirtualCredential struct {
	ID []byte
	// Resident is set for a discoverable credential (a passkey).
	Resident bool
	RPID     string
	// UserHandle is the user.id given at registration; only resident
	// credentials keep it.
	UserHandle []byte
	UserName   string
	// SignCount is the authenticator's counter, bumped by each assertion.
	SignCount uint32
}

// Credentials lists what the authenticator holds.
func (b *Browser) Credentials(id string) []VirtualCredential {
	b.t.Helper()
	var res webauthn.GetCredentialsResult
	b.step("list the credentials of "+id, func(ctx context.Context) (err error) {
		res, err = chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{
			AuthenticatorID: webauthn.AuthenticatorID(id),
		})
		return err
	})
	out := make([]VirtualCredential, 0, len(res.Credentials))
	for _, c := range res.Credentials {
		if c == nil {
			continue
		}
		vc := VirtualCredential{
			ID:         c.CredentialID,
			Resident:   c.IsResidentCredential,
			RPID:       c.RpID,
			UserHandle: c.UserHandle,
			UserName:   c.UserName,
		}
		// -1 means the credential has no counter.
		if c.SignCount > 0 {
			vc.SignCount = uint32(c.SignCount)
		}
		out = append(out, vc)
	}
	return out
}
