package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/reqinfo"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

func epoch() time.Time { return time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC) }

// logBuffer collects log output; slog handlers may write from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func textLogger(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeStore keeps rows in memory and counts calls; err fails every call.
type fakeStore struct {
	mu      sync.Mutex // Run writes from its own goroutine
	rows    []storage.AuditEvent
	calls   int
	filters []storage.AuditFilter
	err     error
}

func (f *fakeStore) AppendAudit(_ context.Context, e *storage.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return f.err
	}
	e.ID = int64(len(f.rows) + 1)
	f.rows = append(f.rows, *e)
	return nil
}

func (f *fakeStore) AppendAuditBatch(ctx context.Context, events []*storage.AuditEvent) error {
	for _, e := range events {
		if err := f.AppendAudit(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) ListAudit(_ context.Context, filter storage.AuditFilter) ([]storage.AuditEvent, error) {
	f.calls++
	f.filters = append(f.filters, filter)
	if f.err != nil {
		return nil, f.err
	}
	var out []storage.AuditEvent
	for _, r := range slices.Backward(f.rows) {
		if (filter.BeforeID == 0 || r.ID < filter.BeforeID) && (filter.Limit <= 0 || len(out) < filter.Limit) {
			out = append(out, r)
		}
	}
	return out, nil
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRecordQueryRoundTrip(t *testing.T) {
	for _, b := range storagetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			clk := storagetest.NewClock(epoch())
			store := storagetest.OpenWithClock(t, b.URL, clk.Now)
			logs := &logBuffer{}
			r := audit.NewRecorder(store, textLogger(logs), clk.Now)
			ctx := t.Context()

			given := []audit.Event{
				{Type: audit.TypeLoginFailed, Actor: "alice", UserID: "u1", ClientID: "web", IP: "::ffff:192.0.2.7",
					Device: "Mozilla/5.0", Outcome: audit.OutcomeFailure, Reason: "bad_password",
					Details: map[string]any{"attempt": 3, "username": "Alice", "big": int64(1) << 60,
						"nested": map[string]any{"list": []any{"a", 1.5, true, nil}}}},
				{Type: audit.TypeTokenIssued, UserID: "u1", ClientID: "web", Outcome: audit.OutcomeSuccess,
					Time: epoch().Add(-time.Hour).Add(1500 * time.Nanosecond)},
				{Type: audit.TypeKeyRotated, Actor: "ops", IP: "fe80::1%eth0", Details: map[string]any{}},
			}
			for _, e := range given {
				if err := r.Record(ctx, e); err != nil {
					t.Fatalf("Record(%s): %v", e.Type, err)
				}
				clk.Advance(time.Second)
			}

			got, next, err := r.Query(ctx, audit.Query{})
			if err != nil || next != "" || len(got) != 3 {
				t.Fatalf("Query = %d events, next %q, %v; want 3, \"\", nil", len(got), next, err)
			}
			// Newest first by the events' own times: the backdated one last.
			want := []audit.Event{given[2], given[0], given[1]}
			want[0].Time, want[0].IP, want[0].Details = epoch().Add(2*time.Second), "fe80::1", nil
			want[1].Time, want[1].IP = epoch(), "192.0.2.7"
			want[2].Time = epoch().Add(-time.Hour).Add(time.Microsecond) // microsecond precision
			for i := range want {
				want[i].ID = got[i].ID
				if got, want := asJSON(t, got[i]), asJSON(t, want[i]); got != want {
					t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
				}
			}
			// Ids follow recording order, whatever the times.
			if !(got[1].ID < got[2].ID && got[2].ID < got[0].ID) {
				t.Errorf("ids %d, %d, %d: want the recording order 2nd, 3rd, 1st", got[0].ID, got[1].ID, got[2].ID)
			}
			if !strings.Contains(asJSON(t, got[1]), `"time":"2031-03-04T05:06:07Z"`) {
				t.Errorf("time is not RFC 3339 UTC: %s", asJSON(t, got[1]))
			}

			// Filters reach the store; ip is matched in its normal spelling.
			for _, q := range []audit.Query{
				{IP: "::ffff:192.0.2.7"}, {Type: audit.TypeLoginFailed}, {UserID: "u1", ClientID: "web", From: epoch()},
			} {
				events, _, err := r.Query(ctx, q)
				if err != nil || len(events) != 1 || events[0].Type != audit.TypeLoginFailed {
					t.Errorf("Query(%+v) = %+v, %v; want the login.failed event", q, events, err)
				}
			}

			// Each event is logged once, at info, with its fields.
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("%d log lines, want 3:\n%s", len(lines), logs)
			}
			for _, want := range []string{"level=INFO", `msg="audit event"`, "type=login.failed", "actor=alice",
				"user_id=u1", "client_id=web", "ip=192.0.2.7", "outcome=failure", "reason=bad_password", `details="{\"attempt\":3,`} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("log line %q lacks %q", lines[0], want)
				}
			}
		})
	}
}

func TestQueryPagination(t *testing.T) {
	store := storagetest.OpenWithClock(t, storagetest.SQLiteURL(t), storagetest.NewClock(epoch()).Now)
	r := audit.NewRecorder(store, nil, nil)
	const n = 123
	for i := range n {
		if err := r.Record(t.Context(), audit.Event{Type: audit.TypeTokenIssued, Details: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		limit int
		pages []int // page sizes
	}{
		{0, []int{50, 50, 23}}, // the default
		{10, []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3}},
		{123, []int{123}},
		{500, []int{123}},
	} {
		var (
			sizes  []int
			seen   []string
			cursor string
		)
		for range 20 {
			events, next, err := r.Query(t.Context(), audit.Query{Limit: tc.limit, Cursor: cursor})
			if err != nil {
				t.Fatalf("limit %d: %v", tc.limit, err)
			}
			sizes = append(sizes, len(events))
			for _, e := range events {
				seen = append(seen, string(e.Details["i"].(json.Number)))
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if !slices.Equal(sizes, tc.pages) {
			t.Errorf("limit %d: page sizes %v, want %v", tc.limit, sizes, tc.pages)
		}
		if len(seen) != n || seen[0] != "122" || seen[n-1] != "0" {
			t.Errorf("limit %d: walked %d events from %s to %s, want %d from 122 to 0", tc.limit, len(seen), seen[0], seen[len(seen)-1], n)
		}
	}
}

func TestNilRecorderIsANoOp(t *testing.T) {
	var r *audit.Recorder
	if err := r.Record(t.Context(), audit.Event{Type: audit.TypeLoginSuccess}); err != nil {
		t.Errorf("Record = %v", err)
	}
	if events, next, err := r.Query(t.Context(), audit.Query{Cursor: "garbage"}); events != nil || next != "" || err != nil {
		t.Errorf("Query = %v, %q, %v; want nothing", events, next, err)
	}
}

func TestQueryRefusesBadInput(t *testing.T) {
	tests := []struct {
		name   string
		query  audit.Query
		fields []string
	}{
		{"cursor not base64url", audit.Query{Cursor: "!!"}, []string{"cursor"}},
		{"cursor padded", audit.Query{Cursor: "MTA="}, []string{"cursor"}},
		{"cursor not a number", audit.Query{Cursor: "YWJj"}, []string{"cursor"}},  // "abc"
		{"cursor zero", audit.Query{Cursor: "MA"}, []string{"cursor"}},            // "0"
		{"cursor negative", audit.Query{Cursor: "LTU"}, []string{"cursor"}},       // "-5"
		{"cursor not canonical", audit.Query{Cursor: "MDEw"}, []string{"cursor"}}, // "010"
		{"cursor overflows", audit.Query{Cursor: "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, []string{"cursor"}},
		{"limit negative", audit.Query{Limit: -1}, []string{"limit"}},
		{"limit too big", audit.Query{Limit: audit.MaxLimit + 1}, []string{"limit"}},
		{"ip not an address", audit.Query{IP: "192.0.2.0/24"}, []string{"ip"}},
		{"window ends before it starts", audit.Query{From: epoch(), To: epoch().Add(-time.Second)}, []string{"to"}},
		{"empty window", audit.Query{From: epoch(), To: epoch()}, []string{"to"}},
		{"everything at once", audit.Query{Limit: 1000, Cursor: "x", IP: "x", From: epoch(), To: epoch()},
			[]string{"limit", "cursor", "ip", "to"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{}
			_, _, err := audit.NewRecorder(store, nil, nil).Query(t.Context(), tt.query)
			fe, ok := fielderr.As(err)
			if !ok {
				t.Fatalf("Query error = %v, want field errors", err)
			}
			var fields []string
			for _, f := range fe.Fields {
				fields = append(fields, f.Field)
			}
			if !slices.Equal(fields, tt.fields) {
				t.Errorf("fields = %q, want %q (%v)", fields, tt.fields, err)
			}
			if store.calls != 0 {
				t.Errorf("a refused query reached the store %d times", store.calls)
			}
		})
	}

	t.Run("cursor from a page is accepted", func(t *testing.T) {
		store := &fakeStore{}
		r := audit.NewRecorder(store, nil, nil)
		for range 3 {
			if err := r.Record(t.Context(), audit.Event{Type: audit.TypeLoginSuccess}); err != nil {
				t.Fatal(err)
			}
		}
		_, next, err := r.Query(t.Context(), audit.Query{Limit: 2})
		if err != nil || next == "" {
			t.Fatalf("Query = %q, %v", next, err)
		}
		if strings.ContainsAny(next, "+/=") {
			t.Errorf("cursor %q is not base64url without padding", next)
		}
		events, next, err := r.Query(t.Context(), audit.Query{Limit: 2, Cursor: next})
		if err != nil || next != "" || len(events) != 1 || events[0].ID != 1 {
			t.Errorf("second page = %+v, %q, %v; want event 1 alone", events, next, err)
		}
		if got := store.filters[1]; got.BeforeID != 2 || got.Limit != 3 {
			t.Errorf("store filter = %+v, want BeforeID 2, Limit 3 (one extra to see a next page)", got)
		}
	})
}

func TestRecordFailures(t *testing.T) {
	t.Run("store fails", func(t *testing.T) {
		cause := errors.New("disk full")
		logs := &logBuffer{}
		r := audit.NewRecorder(&fakeStore{err: cause}, textLogger(logs), func() time.Time { return epoch() })
		err := r.Record(t.Context(), audit.Event{Type: audit.TypeUserDeleted, Actor: "root", UserID: "u9"})
		if !errors.Is(err, cause) || !strings.Contains(err.Error(), "user.deleted") {
			t.Errorf("Record = %v, want %v wrapped with the event type", err, cause)
		}
		// The event still reaches the log, loudly.
		for _, want := range []string{"level=ERROR", "type=user.deleted", "actor=root", "user_id=u9", "disk full"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log %q lacks %q", logs, want)
			}
		}
		if _, _, err := r.Query(t.Context(), audit.Query{}); !errors.Is(err, cause) {
			t.Errorf("Query = %v, want %v", err, cause)
		}
	})
	t.Run("no type", func(t *testing.T) {
		store := &fakeStore{}
		if err := audit.NewRecorder(store, nil, nil).Record(t.Context(), audit.Event{Actor: "x"}); err == nil || store.calls != 0 {
			t.Errorf("Record without a type = %v after %d store calls, want an error before any", err, store.calls)
		}
	})
	t.Run("details that cannot be encoded", func(t *testing.T) {
		store := &fakeStore{}
		err := audit.NewRecorder(store, nil, nil).Record(t.Context(), audit.Event{Type: audit.TypeLoginFailed, Details: map[string]any{"f": func() {}}})
		if err == nil || store.calls != 0 {
			t.Errorf("Record = %v after %d store calls, want an error before any", err, store.calls)
		}
	})
	t.Run("recorder without a store", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("NewRecorder(nil, …) did not panic")
			}
		}()
		audit.NewRecorder(nil, nil, nil)
	})
}

func TestRecordJoinsTransaction(t *testing.T) {
	store := storagetest.Open(t, storagetest.SQLiteURL(t))
	r := audit.NewRecorder(store, nil, nil)
	errAbort := errors.New("abort")
	err := store.InTx(t.Context(), func(ctx context.Context) error {
		if err := r.Record(ctx, audit.Event{Type: audit.TypeClientCreated, ClientID: "gone"}); err != nil {
			t.Fatal(err)
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatal(err)
	}
	if events, _, err := r.Query(t.Context(), audit.Query{}); err != nil || len(events) != 0 {
		t.Errorf("after rollback Query = %+v, %v; want nothing", events, err)
	}
}

// Events recorded while serving a request carry its address and device
// unless they name their own, whether written at once or batched.
func TestRecordTakesIdentityFromTheRequest(t *testing.T) {
	req := reqinfo.Info{IP: netip.MustParseAddr("::ffff:198.51.100.7"), RequestID: "req-1", DeviceID: "dev-browser"}
	tests := []struct {
		name       string
		ctx        func(context.Context) context.Context
		event      audit.Event
		wantIP     string
		wantDevice string
	}{
		{name: "filled from the request", ctx: func(c context.Context) context.Context { return reqinfo.With(c, req) },
			event: audit.Event{Type: audit.TypeLoginSuccess}, wantIP: "198.51.100.7", wantDevice: "dev-browser"},
		{name: "explicit values kept", ctx: func(c context.Context) context.Context { return reqinfo.With(c, req) },
			event:  audit.Event{Type: audit.TypeSessionEnded, IP: "192.0.2.9", Device: "dev-other"},
			wantIP: "192.0.2.9", wantDevice: "dev-other"},
		{name: "each field on its own", ctx: func(c context.Context) context.Context { return reqinfo.With(c, req) },
			event:  audit.Event{Type: audit.TypeSessionEnded, IP: "192.0.2.9"},
			wantIP: "192.0.2.9", wantDevice: "dev-browser"},
		{name: "device from a form parameter", ctx: func(c context.Context) context.Context {
			return reqinfo.WithDevice(reqinfo.With(c, req), "app-install-1")
		}, event: audit.Event{Type: audit.TypeTokenIssued}, wantIP: "198.51.100.7", wantDevice: "app-install-1"},
		{name: "no request", ctx: func(c context.Context) context.Context { return c },
			event: audit.Event{Type: audit.TypeKeyRotated}},
	}
	for _, batched := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/batched=%v", tt.name, batched), func(t *testing.T) {
				store := &fakeStore{}
				r := audit.NewRecorder(store, nil, epoch)
				record := r.Record
				if batched {
					record = r.RecordBatched // Run is not running: written at once
				}
				if err := record(tt.ctx(t.Context()), tt.event); err != nil {
					t.Fatal(err)
				}
				if len(store.rows) != 1 {
					t.Fatalf("%d rows stored, want 1", len(store.rows))
				}
				if row := store.rows[0]; row.IP != tt.wantIP || row.Device != tt.wantDevice {
					t.Fatalf("ip, device = %q, %q; want %q, %q", row.IP, row.Device, tt.wantIP, tt.wantDevice)
				}
			})
		}
	}
}
