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
// RecordBatched is for routine, high-volume events (token.issued and
// token.refreshed from the token endpoint): it logs the event and queues it
// for Run, which writes queued events in multi-row batches. A batch the
// database cannot take for an outage (storage.ErrUnavailable) is kept and
// retried with jittered exponential backoff for Retry.GiveUpAfter while new
// events queue behind it, so memory stays bounded by the queue plus one
// batch; rows the database refuses for what they hold are written one by
// one and only those dropped. When the queue is full an event is written
// directly. When Run's context ends it writes what is left within
// Retry.ShutdownWait. Whatever is finally not stored is counted in Stats,
// which the server exports as Prometheus metrics, and logged at error once
// per loss with its count; a crash loses what is still queued, which is why
// security decisions use Record instead.
//
// An event recorded while serving a request carries the request's client
// address and device (package reqinfo) unless it names its own.
//
// It may import storage, fielderr and reqinfo only; oauth, authn, admin and
// server import it to record their events.
package audit
