// Package notify sends Portcullis's email: a Mailer that speaks SMTP
// (through github.com/wneessen/go-mail), and the notices built on it: the
// lockout notices (Lockouts), when an account locks, a mail to its owner
// saying what happened, until when and what to do if it was not them, and
// one to the administrators' address with the details they investigate
// with; and the account mails (AccountMails), the single-use links of
// email verification, activation and password reset, rendered from
// templates/mail in a text and an HTML part.
//
// Sending must never hold up a request, so Notify and Enqueue only queue;
// Run sends the queue (both share one queue type), retrying account mails
// that failed for a reason that may pass, and a mail that finds the queue
// full is dropped, logged and counted rather than waited for. A lockout
// stands whether or not its mail goes out, and no page says whether a link
// mail went: mail is never part of deciding anything. Links are never
// logged: they are credentials.
//
// The package imports only templates of the project. It has its own
// Config rather than config.SMTP, so that it can be built and tested
// without the configuration loader; the server maps [smtp] onto it. It
// serves no routes.
//
// Security: TLS certificates are always verified (Config.RootCAs replaces
// the system roots, for a private CA or a test, but nothing turns
// verification off); credentials go only over TLS or to a loopback relay;
// the password is never logged nor put in an error. Mails carry no link but
// ones under the issuer's own URL, so a phisher cannot pass one off as ours, and text
// that comes from a request (device id, IP) is cleaned of control
// characters and shortened before it goes into a mail.
package notify
