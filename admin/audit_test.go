package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/hashing"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
)

// testRecorder is the audit trail of a test environment: on s itself when
// it can hold one, as *storage.Store and brokenStore can.
func testRecorder(s Store, logger *slog.Logger) *audit.Recorder {
	if as, ok := s.(audit.Store); ok {
		return audit.NewRecorder(as, logger, nil)
	}
	return nil
}

func (s brokenStore) InTx(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
func (s brokenStore) AppendAudit(context.Context, *storage.AuditEvent) error {
	return s.fail("append audit event")
}
func (s brokenStore) AppendAuditBatch(context.Context, []*storage.AuditEvent) error {
	return s.fail("append audit events")
}
func (s brokenStore) ListAudit(context.Context, storage.AuditFilter) ([]storage.AuditEvent, error) {
	return nil, s.fail("list audit events")
}

// auditEnv is an API whose audit trail runs on a clock the test moves.
type auditEnv struct {
	*testEnv
	trail *audit.Recorder
	now   time.Time
}

func auditEpoch() time.Time { return time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC) }

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	store, err := storage.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "admin.db"), storage.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return store
}

// newAuditEnv serves the API over store (a fresh one when nil) with an
// audit trail writing to trailStore (store when nil).
func newAuditEnv(t *testing.T, store *storage.Store, trailStore audit.Store, tokens fakeTokens, clientIP string) *auditEnv {
	t.Helper()
	if store == nil {
		store = openStore(t)
	}
	if trailStore == nil {
		trailStore = store
	}
	if tokens == nil {
		tokens = testTokens()
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &auditEnv{now: auditEpoch()}
	e.trail = audit.NewRecorder(trailStore, logger, func() time.Time { return e.now })
	cheap := hashing.Argon2{Memory: 64, Iterations: 1, Parallelism: 1}
	var h http.Handler = New(Config{
		Store: store, Tokens: tokens, Logger: logger, Audit: e.trail, Hasher: cheap,
		Accounts: authn.NewAccounts(authn.AccountsConfig{Store: store, Sessions: store, Hasher: cheap, Recorder: e.trail}),
	})
	if clientIP != "" {
		// As the server's middleware would resolve it behind a proxy.
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			info.IP = netip.MustParseAddr(clientIP)
			next.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
		})
	}
	e.testEnv = &testEnv{handler: h, store: store, logs: logs}
	return e
}

func (e *auditEnv) list(t *testing.T, query string) listPage[audit.Event] {
	t.Helper()
	rec := e.do(t, "GET", "/admin/audit"+query, adminToken, "")
	wantStatus(t, rec, http.StatusOK)
	return decode[listPage[audit.Event]](t, rec)
}

func reasons(events []audit.Event) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, e.Reason)
	}
	return out
}

func TestAuditRecordsAdminChanges(t *testing.T) {
	e := newAuditEnv(t, nil, nil, nil, "")
	rec := e.do(t, "POST", "/admin/users", adminToken, `{"username":"Carol","password":"correct horse"}`)
	wantStatus(t, rec, http.StatusCreated)
	userID := decode[UserView](t, rec).ID
	for _, call := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/admin/clients", `{"client_id":"app","grant_types":["client_credentials"]}`, 201},
		{"POST", "/admin/clients", `{"client_id":"app","grant_types":["client_credentials"]}`, 409}, // refused: no event
		{"DELETE", "/admin/clients/app", "", 204},
		{"DELETE", "/admin/clients/app", "", 404}, // refused: no event
		{"DELETE", "/admin/users/" + userID, "", 204},
	} {
		wantStatus(t, e.do(t, call.method, call.path, adminToken, call.body), call.status)
	}

	page := e.list(t, "")
	type seen struct{ typ, actor, user, client, ip, outcome, detail string }
	var got []seen
	for _, ev := range page.Items {
		s := seen{ev.Type, ev.Actor, ev.UserID, ev.ClientID, ev.IP, ev.Outcome, ""}
		for _, k := range []string{"admin_client_id", "username"} {
			if v, ok := ev.Details[k]; ok {
				s.detail += k + "=" + v.(string) + " "
			}
		}
		got = append(got, s)
		if !ev.Time.Equal(auditEpoch()) || ev.ID == 0 {
			t.Errorf("event %+v: want id and time %v", ev, auditEpoch())
		}
	}
	want := []seen{
		{"user.deleted", "root", userID, "", "192.0.2.1", "success", "admin_client_id=ops-cli "},
		{"client.deleted", "root", "", "app", "192.0.2.1", "success", "admin_client_id=ops-cli "},
		{"client.created", "root", "", "app", "192.0.2.1", "success", "admin_client_id=ops-cli "},
		{"user.created", "root", userID, "", "192.0.2.1", "success", "admin_client_id=ops-cli username=carol "},
	}
	if !slices.Equal(got, want) || page.Next != "" {
		t.Errorf("events:\n got %+v\nwant %+v (next %q)", got, want, page.Next)
	}
	// The recorder logs each event at info; the handler's own line drops to
	// debug so operators do not read every change twice.
	logs := e.logs.String()
	for _, line := range []string{`level=INFO msg="audit event"`, `level=DEBUG msg="admin: client created"`} {
		if !strings.Contains(logs, line) {
			t.Errorf("log lacks %q:\n%s", line, logs)
		}
	}
}

func TestAuditActorAndAddress(t *testing.T) {
	tokens := fakeTokens{
		"machine": {ClientID: "provisioner", Scopes: []string{"admin"}, ExpiresAt: time.Now().Add(time.Hour)},
	}
	e := newAuditEnv(t, nil, nil, tokens, "::ffff:203.0.113.9")
	wantStatus(t, e.do(t, "POST", "/admin/clients", "machine", `{"client_id":"x","grant_types":["client_credentials"]}`), http.StatusCreated)
	events, _, err := e.trail.Query(t.Context(), audit.Query{})
	if err != nil || len(events) != 1 {
		t.Fatalf("Query = %+v, %v", events, err)
	}
	// A token with no subject is a client acting for itself.
	if ev := events[0]; ev.Actor != "provisioner" || ev.IP != "203.0.113.9" {
		t.Errorf("actor, ip = %q, %q; want provisioner, 203.0.113.9", ev.Actor, ev.IP)
	}
}

// failingTrail stores everything but audit events.
type failingTrail struct{ *storage.Store }

func (failingTrail) AppendAudit(context.Context, *storage.AuditEvent) error {
	return errors.New("audit table is full")
}

func TestChangeNotMadeWhenAuditFails(t *testing.T) {
	store := openStore(t)
	e := newAuditEnv(t, store, failingTrail{store}, nil, "")
	before := snapshot(t, store)
	for _, call := range []struct{ method, path, body string }{
		{"POST", "/admin/clients", `{"client_id":"x","grant_types":["client_credentials"]}`},
		{"POST", "/admin/users", `{"username":"x","password":"correct horse"}`},
	} {
		rec := e.do(t, call.method, call.path, adminToken, call.body)
		wantStatus(t, rec, http.StatusInternalServerError)
	}
	if after := snapshot(t, store); after != before {
		t.Errorf("unaudited changes were kept:\nbefore %s\nafter  %s", before, after)
	}
	if !strings.Contains(e.logs.String(), "audit table is full") {
		t.Errorf("the cause was not logged:\n%s", e.logs)
	}
}

func TestAuditEndpoint(t *testing.T) {
	e := newAuditEnv(t, nil, nil, nil, "")
	// Events a minute apart, labelled in Reason, recorded in this order.
	for i, ev := range []audit.Event{
		{Reason: "a", Type: audit.TypeLoginSuccess, UserID: "u1", ClientID: "web", IP: "192.0.2.1"},
		{Reason: "b", Type: audit.TypeLoginFailed, UserID: "u2", ClientID: "web", IP: "2001:db8::1"},
		{Reason: "c", Type: audit.TypeTokenIssued, UserID: "u1", ClientID: "cli", IP: "192.0.2.1"},
		{Reason: "d", Type: audit.TypeLoginFailed, UserID: "u1", ClientID: "web", IP: "192.0.2.2", Details: map[string]any{"attempt": 2}},
		{Reason: "e", Type: audit.TypeTokenRevoked, UserID: "u3", ClientID: "cli", IP: "192.0.2.1"},
	} {
		ev.Time = auditEpoch().Add(time.Duration(i) * time.Minute)
		if err := e.trail.Record(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	at := func(minutes int) string {
		return url.QueryEscape(auditEpoch().Add(time.Duration(minutes) * time.Minute).Format(time.RFC3339))
	}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"everything, newest first", "", []string{"e", "d", "c", "b", "a"}},
		{"type", "?type=login.failed", []string{"d", "b"}},
		{"user_id", "?user_id=u1", []string{"d", "c", "a"}},
		{"client_id", "?client_id=cli", []string{"e", "c"}},
		{"ip", "?ip=192.0.2.1", []string{"e", "c", "a"}},
		{"ip, other spelling", "?ip=2001:0db8:0:0::1", []string{"b"}},
		{"from is inclusive", "?from=" + at(3), []string{"e", "d"}},
		{"to is exclusive", "?to=" + at(2), []string{"b", "a"}},
		{"window in another zone", "?from=" + url.QueryEscape(auditEpoch().Add(time.Minute).In(time.FixedZone("", -5*3600)).Format(time.RFC3339)) + "&to=" + at(3),
			[]string{"c", "b"}},
		{"combined", "?user_id=u1&client_id=web&type=login.failed&from=" + at(0) + "&to=" + at(10), []string{"d"}},
		{"empty filters are no filters", "?type=&user_id=&client_id=&ip=&cursor=", []string{"e", "d", "c", "b", "a"}},
		{"nothing matches", "?user_id=nobody", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := e.list(t, tt.query)
			if got := reasons(page.Items); !slices.Equal(got, tt.want) || page.Next != "" {
				t.Errorf("GET /admin/audit%s = %q next %q, want %q", tt.query, got, page.Next, tt.want)
			}
		})
	}

	t.Run("event shape", func(t *testing.T) {
		rec := e.do(t, "GET", "/admin/audit?limit=2", adminToken, "")
		wantStatus(t, rec, http.StatusOK)
		body := rec.Body.String()
		for _, want := range []string{`"time":"2031-03-04T05:10:07Z"`, `"type":"token.revoked"`, `"details":{"attempt":2}`, `"user_id":"u3"`, `"next":"`} {
			if !strings.Contains(body, want) {
				t.Errorf("body lacks %s: %s", want, body)
			}
		}
		if strings.Count(body, `"details"`) != 1 {
			t.Errorf("events without details should have no details key: %s", body)
		}
	})

	t.Run("pages", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			pages [][]string
		}{
			{"?limit=2", [][]string{{"e", "d"}, {"c", "b"}, {"a"}}},
			{"?limit=1&user_id=u1", [][]string{{"d"}, {"c"}, {"a"}}},
			{"?limit=5", [][]string{{"e", "d", "c", "b", "a"}}},
			{"?limit=2&type=login.failed", [][]string{{"d", "b"}}},
		} {
			var pages [][]string
			cursor := ""
			for range 10 {
				q := tc.query
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				page := e.list(t, q)
				pages = append(pages, reasons(page.Items))
				if cursor = page.Next; cursor == "" {
					break
				}
			}
			if !slices.EqualFunc(pages, tc.pages, slices.Equal) {
				t.Errorf("%s: pages %q, want %q", tc.query, pages, tc.pages)
			}
		}
	})

	t.Run("default page size", func(t *testing.T) {
		for i := range 60 {
			if err := e.trail.Record(t.Context(), audit.Event{Type: audit.TypeTokenIssued, Reason: "bulk-" + strconv.Itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
		page := e.list(t, "")
		if len(page.Items) != audit.DefaultLimit || page.Next == "" {
			t.Errorf("default page: %d events, next %q; want %d and a next page", len(page.Items), page.Next, audit.DefaultLimit)
		}
		if page := e.list(t, "?limit=500"); len(page.Items) != 65 || page.Next != "" {
			t.Errorf("limit=500: %d events, next %q; want all 65", len(page.Items), page.Next)
		}
	})
}

func TestAuditBadInput(t *testing.T) {
	e := newAuditEnv(t, nil, nil, nil, "")
	tests := []struct {
		name   string
		query  string
		fields []string
	}{
		{"from not RFC 3339", "?from=yesterday", []string{"from"}},
		{"to without zone", "?to=2031-03-04T05:06:07", []string{"to"}},
		{"from empty", "?from=", []string{"from"}},
		{"to before from", "?from=2031-03-04T05:06:07Z&to=2031-03-04T05:00:00Z", []string{"to"}},
		{"limit zero", "?limit=0", []string{"limit"}},
		{"limit too big", "?limit=501", []string{"limit"}},
		{"limit not a number", "?limit=ten", []string{"limit"}},
		{"limit empty", "?limit=", []string{"limit"}},
		{"cursor malformed", "?cursor=not-a-cursor", []string{"cursor"}},
		{"cursor padded", "?cursor=MTA%3D", []string{"cursor"}},
		{"ip not an address", "?ip=192.0.2.0/24", []string{"ip"}},
		{"unknown parameter", "?user=alice", []string{"user"}},
		{"pagination of other lists", "?after=x", []string{"after"}},
		{"repeated filter", "?type=a&type=b", []string{"type"}},
		{"every problem at once", "?zz=1&limit=0&from=x&to=y&type=a&type=b", []string{"zz", "type", "from", "to", "limit"}},
		{"and those found after parsing", "?cursor=x&ip=y&limit=10", []string{"cursor", "ip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, "GET", "/admin/audit"+tt.query, adminToken, "")
			wantStatus(t, rec, http.StatusBadRequest)
			body := decode[errorBody](t, rec)
			if body.Error != "invalid_request" || body.Description == "" {
				t.Errorf("body = %s", rec.Body)
			}
			if got := fieldNames(t, rec); !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q; body %s", got, tt.fields, rec.Body)
			}
		})
	}
}

func TestAuditAuthorization(t *testing.T) {
	e := newAuditEnv(t, nil, nil, nil, "")
	for _, tt := range []struct {
		name, authorization string
		status              int
		code                string
	}{
		{"no token", "", http.StatusUnauthorized, "invalid_token"},
		{"unknown token", "Bearer forged", http.StatusUnauthorized, "invalid_token"},
		{"expired token", "Bearer " + expiredToken, http.StatusUnauthorized, "invalid_token"},
		{"no admin scope", "Bearer " + plainToken, http.StatusForbidden, "insufficient_scope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest("GET", "/admin/audit", "", "")
			if tt.authorization != "" {
				r.Header.Set("Authorization", tt.authorization)
			}
			rec := e.serve(t, r)
			wantStatus(t, rec, tt.status)
			if got := decode[errorBody](t, rec).Error; got != tt.code {
				t.Errorf("error = %q, want %q", got, tt.code)
			}
			if strings.Contains(rec.Body.String(), "items") {
				t.Errorf("refused request got events: %s", rec.Body)
			}
		})
	}
}

func TestWithoutAuditTrail(t *testing.T) {
	store := openStore(t)
	logs := &lockedBuffer{}
	h := New(Config{
		Store: store, Tokens: testTokens(), Hasher: hashing.Argon2{Memory: 64, Iterations: 1, Parallelism: 1},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	e := &testEnv{handler: h, store: store, logs: logs}
	// Not served: the same answer as any unknown path, token or not.
	for _, token := range []string{adminToken, ""} {
		rec := e.do(t, "GET", "/admin/audit", token, "")
		wantStatus(t, rec, http.StatusNotFound)
		if got := decode[errorBody](t, rec).Error; got != "not_found" {
			t.Errorf("error = %q", got)
		}
	}
	// Changes still work, and the log is then the only trail: at info.
	wantStatus(t, e.do(t, "POST", "/admin/clients", adminToken, `{"client_id":"x","grant_types":["client_credentials"]}`), http.StatusCreated)
	if !strings.Contains(logs.String(), `level=INFO msg="admin: client created" actor_subject=root actor_client_id=ops-cli client_id=x`) {
		t.Errorf("no change line at info:\n%s", logs)
	}
}

// The routes list names the audit route whatever the configuration, so the
// OpenAPI test sees it even from a handler without a trail.
func TestAuditRouteListed(t *testing.T) {
	var patterns []string
	for _, rt := range (&handler{}).routes() {
		patterns = append(patterns, rt.pattern)
	}
	if !slices.Contains(patterns, "GET /admin/audit") {
		t.Errorf("routes = %q", patterns)
	}
}
