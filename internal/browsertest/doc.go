// Package browsertest drives a real headless Chromium from tests, the way a
// person's browser uses the pages: real cookies, redirects, Sec-Fetch-*
// headers, CSP, and WebAuthn through the DevTools virtual authenticator.
//
// It is for _test.go files only: every entry point takes a testing.TB and
// fails the test on error, saying what was being done. No production
// package may import it (internal/layering lists it with no project
// imports, and nothing outside tests depends on it).
//
//	b := browsertest.New(t)
//	auth := b.AddVirtualAuthenticator(true, true)
//	b.Navigate(srv.URL + "/login")
//	b.Click(`button[type="submit"]`)
//	b.WaitVisible("#done")
//
// Chromium is found on $PATH as chromium (Debian's package), then
// chromium-browser and google-chrome. Without one the test is skipped, but
// under CI=true it fails: a browser test that silently skips proves
// nothing. Set PORTCULLIS_SCREENSHOTS to a directory to keep the PNGs that
// Screenshot takes.
//
// Imports: chromedp and cdproto only; nothing from the project.
package browsertest
