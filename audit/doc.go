// Package audit is Portcullis's security event trail: every login, token,
// session, policy, key, client and user event that an operator may have to
// account for, stored in the database and echoed to the log.
//
// A Recorder writes events (Record) and reads them back newest first with
// filters and an opaque cursor (Query); the admin API serves Query as
// GET /admin/audit. Record joins the transaction carried by its context, so
// a change and the event recording it commit or roll back together. A nil
// *Recorder is valid and records nothing, so packages that record events can
// be built and tested without one.
//
// An event recorded while serving a request carries the request's client
// address and device (package reqinfo) unless it names its own.
//
// It may import storage, fielderr and reqinfo only; oauth, authn, admin and
// server import it to record their events.
package audit
