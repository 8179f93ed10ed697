// Package notify sends Portcullis's email: a Mailer that speaks SMTP
// (through github.com/wneessen/go-mail), and the notices built on it. The
// first are the lockout notices (Lockouts): when an account locks, a mail to
// its owner saying what happened, until when and what to do if it was not
// them, and one to the administrators' address with the details they
// investigate with.
//
// Sending must never hold up a sign-in, so Lockouts.Notify only queues a
// notice; Run sends the queue, and a notice that finds the queue full is
// dropped, logged and counted rather than waited for. A lockout stands
// whether or not its mail goes out: mail is a courtesy on top of the lock,
// never part of deciding it.
//
// The package is a leaf: it imports nothing of the project. It has its own
// Config rather than config.SMTP, so that it can be built and tested
// without the configuration loader; the server maps [smtp] onto it. It
// serves no routes.
//
// Security: TLS certificates are always verified (Config.RootCAs replaces
// the system roots, for a private CA or a test, but nothing turns
// verification off); credentials go only over TLS or to a loopback relay;
// the password is never logged nor put in an error. Mails carry no link but
// the issuer's own URL, so a phisher cannot pass one off as ours, and text
// that comes from a request (device id, IP) is cleaned of control
// characters and shortened before it goes into a mail.
package notify
