package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/oauth"
)

// auditParams are the query parameters of GET /admin/audit, in the order
// their problems are reported.
func auditParams() []string {
	return []string{"type", "user_id", "client_id", "ip", "from", "to", "cursor", "limit"}
}

// ifAudited leaves a route out when the server runs without an audit trail.
func (h *handler) ifAudited(f handleFunc) handleFunc {
	if h.trail == nil {
		return nil
	}
	return f
}

// listAudit serves GET /admin/audit: one page of events, newest first.
func (h *handler) listAudit(w http.ResponseWriter, r *http.Request, _ *oauth.TokenInfo) error {
	q, err := auditQuery(r.URL.Query())
	if err != nil {
		return err
	}
	events, next, err := h.trail.Query(r.Context(), q)
	if fe, ok := fielderr.As(err); ok {
		return badRequest(err, "invalid query: "+fe.Error(), fe.Fields...)
	}
	if err != nil {
		return fmt.Errorf("list audit events: %w", err)
	}
	if events == nil {
		events = []audit.Event{}
	}
	h.writeJSON(w, r, http.StatusOK, listPage[audit.Event]{Items: events, Next: next})
	return nil
}

// auditQuery reads the query parameters, reporting every problem at once.
// Unknown parameters are refused: a misspelt filter would otherwise widen
// the answer to events the operator did not ask about, silently.
func auditQuery(v url.Values) (audit.Query, error) {
	var (
		q        audit.Query
		problems fielderr.Error
		known    = auditParams()
		unknown  []string
	)
	for name := range v {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		problems.Add(name, "unknown query parameter; known: %s", strings.Join(known, ", "))
	}
	for _, name := range known {
		values, ok := v[name]
		if !ok {
			continue
		}
		if len(values) > 1 {
			problems.Add(name, "given more than once")
			continue
		}
		val := values[0]
		switch name {
		case "type":
			q.Type = val
		case "user_id":
			q.UserID = val
		case "client_id":
			q.ClientID = val
		case "ip":
			q.IP = val
		case "cursor":
			q.Cursor = val
		case "from", "to":
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				problems.Add(name, "must be an RFC 3339 time such as 2025-01-02T15:04:05Z")
				continue
			}
			if name == "from" {
				q.From = t
			} else {
				q.To = t
			}
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > audit.MaxLimit {
				problems.Add(name, "must be an integer from 1 to %d", audit.MaxLimit)
				continue
			}
			q.Limit = n
		}
	}
	if err := problems.Err(); err != nil {
		return audit.Query{}, badRequest(err, "invalid query: "+err.Error(), problems.Fields...)
	}
	return q, nil
}

// audited runs change and records e in one transaction: a change that
// cannot be audited is not made. e gets its actor and outcome from the
// request, and the recorder adds its address and device (reqinfo); the
// change's log line follows the commit, so it never reports what was
// rolled back.
func (h *handler) audited(r *http.Request, who *oauth.TokenInfo, e audit.Event, change func(ctx context.Context) error) error {
	return h.auditedAll(r, who, func(ctx context.Context) ([]audit.Event, error) {
		return []audit.Event{e}, change(ctx)
	})
}

// auditedAll is audited for a change whose events depend on what it found,
// such as one session.ended per session it ended. change returns them; they
// are recorded in its transaction.
func (h *handler) auditedAll(r *http.Request, who *oauth.TokenInfo, change func(ctx context.Context) ([]audit.Event, error)) error {
	var events []audit.Event
	err := h.store.InTx(r.Context(), func(ctx context.Context) error {
		var err error
		if events, err = change(ctx); err != nil {
			return err
		}
		for i := range events {
			e := &events[i]
			e.Actor = actor(who)
			e.Outcome = audit.OutcomeSuccess
			if e.Details == nil {
				e.Details = map[string]any{}
			}
			e.Details["admin_client_id"] = who.ClientID
			if err := h.trail.Record(ctx, *e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range events {
		h.logChange(r, who, e)
	}
	return nil
}

// logChange writes the log line of a committed change.
func (h *handler) logChange(r *http.Request, who *oauth.TokenInfo, e audit.Event) {
	// With a trail, the recorder has logged the event at info already.
	level := slog.LevelInfo
	if h.trail != nil {
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{slog.String("actor_subject", who.Subject), slog.String("actor_client_id", who.ClientID)}
	if e.ClientID != "" {
		attrs = append(attrs, slog.String("client_id", e.ClientID))
	}
	if e.UserID != "" {
		attrs = append(attrs, slog.String("user_id", e.UserID))
	}
	if name, ok := e.Details["username"].(string); ok {
		attrs = append(attrs, slog.String("username", name))
	}
	h.log.LogAttrs(r.Context(), level, "admin: "+strings.ReplaceAll(e.Type, ".", " "), attrs...)
}

// actor is who the audit trail says acted: the token's user, or the client
// when it acts for itself.
func actor(who *oauth.TokenInfo) string {
	if who.Subject != "" {
		return who.Subject
	}
	return who.ClientID
}
