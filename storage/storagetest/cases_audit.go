package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/storage"
)

// auditFixture is one event of the filter and pagination cases; its label
// travels in Reason so a failure names events, not ids.
type auditFixture struct {
	label, typ, user, client, ip string
	at                           time.Duration // after the case's epoch
}

// auditFixtures are in insertion order, which is time order except for
// "late", stamped earlier than it was appended (as by a slow instance), and
// "tie", stamped the same instant as "d": newest first follows occurred_at,
// then id.
func auditFixtures() []auditFixture {
	return []auditFixture{
		{"a", "login.success", "u1", "app", "192.0.2.1", 0},
		{"b", "login.failed", "u2", "app", "192.0.2.2", time.Minute},
		{"c", "token.issued", "u1", "cli", "192.0.2.1", 2 * time.Minute},
		{"d", "login.failed", "u1", "app", "2001:db8::1", 3 * time.Minute},
		{"e", "token.revoked", "u3", "cli", "192.0.2.2", 4 * time.Minute},
		{"late", "login.failed", "u2", "cli", "192.0.2.1", 90 * time.Second},
		{"f", "login.success", "u2", "app", "192.0.2.1", 5 * time.Minute},
		{"tie", "token.issued", "u3", "app", "192.0.2.2", 3 * time.Minute},
	}
}

func seedAudit(t *testing.T, s *storage.Store, clk *Clock) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	for _, f := range auditFixtures() {
		e := &storage.AuditEvent{
			OccurredAt: clk.Now().Add(f.at), Type: f.typ, UserID: f.user, ClientID: f.client, IP: f.ip,
			Outcome: "success", Reason: f.label,
		}
		must(t, "AppendAudit "+f.label, s.AppendAudit(t.Context(), e))
		ids[f.label] = e.ID
	}
	return ids
}

func auditLabels(events []storage.AuditEvent) []string {
	labels := make([]string, 0, len(events))
	for _, e := range events {
		labels = append(labels, e.Reason)
	}
	return labels
}

func listAudit(t *testing.T, s *storage.Store, f storage.AuditFilter) []string {
	t.Helper()
	events, err := s.ListAudit(t.Context(), f)
	must(t, "ListAudit", err)
	return auditLabels(events)
}

func auditCases() []suiteCase {
	return []suiteCase{
		{"Audit/AppendRoundTrip", func(t *testing.T, s *storage.Store, clk *Clock) {
			want := storage.AuditEvent{
				ID: 999, Type: "login.failed", Actor: "alice", UserID: "u1", ClientID: "app",
				IP: "2001:db8::1", Device: "Mozilla/5.0", Outcome: "failure", Reason: "bad_password",
				Details: `{"attempt":3,"username":"alice"}`,
			}
			got := want
			must(t, "AppendAudit", s.AppendAudit(t.Context(), &got))
			if got.ID <= 0 || got.ID == 999 {
				t.Errorf("ID = %d, want one assigned by the database", got.ID)
			}
			if !got.OccurredAt.Equal(clk.Now()) {
				t.Errorf("OccurredAt = %v, want the store clock %v", got.OccurredAt, clk.Now())
			}
			want.ID, want.OccurredAt = got.ID, clk.Now()
			events, err := s.ListAudit(t.Context(), storage.AuditFilter{})
			must(t, "ListAudit", err)
			if len(events) != 1 || !sameAuditEvent(events[0], want) {
				t.Fatalf("ListAudit = %+v, want [%+v]", events, want)
			}

			// A given time is kept, to the microsecond both backends store.
			at := clk.Now().Add(-time.Hour).Add(1234567 * time.Nanosecond)
			second := storage.AuditEvent{OccurredAt: at.In(time.FixedZone("X", 3600)), Type: "token.issued"}
			must(t, "AppendAudit", s.AppendAudit(t.Context(), &second))
			wantAt := at.UTC().Truncate(time.Microsecond)
			if second.ID <= got.ID || !second.OccurredAt.Equal(wantAt) || second.OccurredAt.Location() != time.UTC {
				t.Errorf("second event = id %d at %v, want id > %d at %v UTC", second.ID, second.OccurredAt, got.ID, wantAt)
			}
			events, err = s.ListAudit(t.Context(), storage.AuditFilter{Type: "token.issued"})
			must(t, "ListAudit", err)
			if len(events) != 1 || !events[0].OccurredAt.Equal(wantAt) || events[0].Details != "" {
				t.Errorf("ListAudit = %+v, want the second event at %v with no details", events, wantAt)
			}
		}},
		{"Audit/HostileText", func(t *testing.T, s *storage.Store, _ *Clock) {
			// What a client sent is stored, made safe, rather than refused.
			e := &storage.AuditEvent{Type: "login.failed", Device: "bad\xff\x00agent", Reason: "x\x00"}
			must(t, "AppendAudit", s.AppendAudit(t.Context(), e))
			events, err := s.ListAudit(t.Context(), storage.AuditFilter{})
			must(t, "ListAudit", err)
			if len(events) != 1 || events[0].Device != "bad\uFFFD\uFFFDagent" || events[0].Reason != "x\uFFFD" {
				t.Errorf("ListAudit = %+v", events)
			}
		}},
		{"Audit/NewestFirst", func(t *testing.T, s *storage.Store, clk *Clock) {
			ids := seedAudit(t, s, clk)
			events, err := s.ListAudit(t.Context(), storage.AuditFilter{})
			must(t, "ListAudit", err)
			want := []string{"f", "e", "tie", "d", "c", "late", "b", "a"}
			if got := auditLabels(events); !slices.Equal(got, want) {
				t.Errorf("ListAudit = %q, want %q (by time, then id)", got, want)
			}
			if ids["a"] >= ids["b"] || ids["d"] >= ids["tie"] {
				t.Errorf("ids not increasing with insertion: %v", ids)
			}
		}},
		{"Audit/Filters", func(t *testing.T, s *storage.Store, clk *Clock) {
			seedAudit(t, s, clk)
			t0 := clk.Now()
			for _, tc := range []struct {
				name   string
				filter storage.AuditFilter
				want   []string
			}{
				{"type", storage.AuditFilter{Type: "login.failed"}, []string{"d", "late", "b"}},
				{"user", storage.AuditFilter{UserID: "u1"}, []string{"d", "c", "a"}},
				{"client", storage.AuditFilter{ClientID: "cli"}, []string{"e", "c", "late"}},
				{"ip v4", storage.AuditFilter{IP: "192.0.2.1"}, []string{"f", "c", "late", "a"}},
				{"ip v6", storage.AuditFilter{IP: "2001:db8::1"}, []string{"d"}},
				{"no match", storage.AuditFilter{UserID: "nobody"}, nil},
				{"from is inclusive", storage.AuditFilter{From: t0.Add(4 * time.Minute)}, []string{"f", "e"}},
				{"to is exclusive", storage.AuditFilter{To: t0.Add(2 * time.Minute)}, []string{"late", "b", "a"}},
				{"window", storage.AuditFilter{From: t0.Add(time.Minute), To: t0.Add(3 * time.Minute)}, []string{"c", "late", "b"}},
				{"window in another zone", storage.AuditFilter{
					From: t0.Add(time.Minute).In(time.FixedZone("UTC-5", -5*3600)),
					To:   t0.Add(3 * time.Minute).In(time.FixedZone("UTC+9", 9*3600)),
				}, []string{"c", "late", "b"}},
				{"sub-second bounds", storage.AuditFilter{From: t0.Add(89500 * time.Millisecond), To: t0.Add(90500 * time.Millisecond)}, []string{"late"}},
				{"empty window", storage.AuditFilter{From: t0.Add(time.Minute), To: t0.Add(time.Minute)}, nil},
				{"same instant, id breaks the tie", storage.AuditFilter{From: t0.Add(3 * time.Minute), To: t0.Add(3*time.Minute + time.Second)}, []string{"tie", "d"}},
				{"type and window", storage.AuditFilter{Type: "login.failed", From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute)}, []string{"late", "b"}},
				{"user and client", storage.AuditFilter{UserID: "u2", ClientID: "app"}, []string{"f", "b"}},
				{"every filter", storage.AuditFilter{
					Type: "login.failed", UserID: "u2", ClientID: "cli", IP: "192.0.2.1", From: t0, To: t0.Add(time.Hour),
				}, []string{"late"}},
				{"limit", storage.AuditFilter{Limit: 2}, []string{"f", "e"}},
				{"limit with filter", storage.AuditFilter{IP: "192.0.2.1", Limit: 3}, []string{"f", "c", "late"}},
				{"limit above the count", storage.AuditFilter{UserID: "u3", Limit: 10}, []string{"e", "tie"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if got := listAudit(t, s, tc.filter); !slices.Equal(got, tc.want) {
						t.Errorf("ListAudit(%+v) = %q, want %q", tc.filter, got, tc.want)
					}
				})
			}
		}},
		{"Audit/CursorPagination", func(t *testing.T, s *storage.Store, clk *Clock) {
			seedAudit(t, s, clk)
			for _, tc := range []struct {
				name   string
				filter storage.AuditFilter
				want   [][]string
			}{
				// The first page ends inside the tie, so the cursor must
				// order by id among events of one instant.
				{"all, pages of 3", storage.AuditFilter{Limit: 3}, [][]string{{"f", "e", "tie"}, {"d", "c", "late"}, {"b", "a"}}},
				{"all, exact pages", storage.AuditFilter{Limit: 8}, [][]string{{"f", "e", "tie", "d", "c", "late", "b", "a"}}},
				{"filtered, pages of 1", storage.AuditFilter{UserID: "u1", Limit: 1}, [][]string{{"d"}, {"c"}, {"a"}}},
				{"window, pages of 2", storage.AuditFilter{From: clk.Now().Add(time.Minute), Limit: 2},
					[][]string{{"f", "e"}, {"tie", "d"}, {"c", "late"}, {"b"}}},
				{"type, pages of 2", storage.AuditFilter{Type: "login.failed", Limit: 2}, [][]string{{"d", "late"}, {"b"}}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					f := tc.filter
					var pages [][]string
					for range 10 {
						events, err := s.ListAudit(t.Context(), f)
						must(t, "ListAudit", err)
						if len(events) == 0 {
							break
						}
						pages = append(pages, auditLabels(events))
						f.BeforeID = events[len(events)-1].ID
					}
					if !slices.EqualFunc(pages, tc.want, slices.Equal) {
						t.Errorf("pages = %q, want %q", pages, tc.want)
					}
				})
			}
		}},
		{"Audit/DeleteBefore", func(t *testing.T, s *storage.Store, clk *Clock) {
			ids := seedAudit(t, s, clk)
			t0 := clk.Now()
			n, err := s.DeleteAuditBefore(t.Context(), t0.Add(2*time.Minute))
			must(t, "DeleteAuditBefore", err)
			if n != 3 {
				t.Errorf("DeleteAuditBefore deleted %d, want 3 (a, b, late)", n)
			}
			// A cursor at a deleted event yields nothing: whatever followed
			// it was older, so deleted too.
			if got := listAudit(t, s, storage.AuditFilter{BeforeID: ids["late"]}); len(got) != 0 {
				t.Errorf("page after a deleted event = %q, want none", got)
			}
			if got, want := listAudit(t, s, storage.AuditFilter{}), []string{"f", "e", "tie", "d", "c"}; !slices.Equal(got, want) {
				t.Errorf("after delete: %q, want %q", got, want)
			}
			n, err = s.DeleteAuditBefore(t.Context(), t0.Add(2*time.Minute))
			must(t, "DeleteAuditBefore again", err)
			if n != 0 {
				t.Errorf("second DeleteAuditBefore deleted %d, want 0", n)
			}
			n, err = s.DeleteAuditBefore(t.Context(), t0.Add(time.Hour))
			must(t, "DeleteAuditBefore all", err)
			if n != 5 {
				t.Errorf("DeleteAuditBefore all deleted %d, want 5", n)
			}
			// An emptied table must not hand out old ids again: a cursor an
			// operator kept would silently skip new events.
			e := &storage.AuditEvent{Type: "login.success"}
			must(t, "AppendAudit", s.AppendAudit(t.Context(), e))
			if e.ID <= ids["tie"] {
				t.Errorf("id after emptying the table = %d, want > %d", e.ID, ids["tie"])
			}
		}},
		{"Audit/DeleteBeforeInBatches", func(t *testing.T, s *storage.Store, clk *Clock) {
			// More rows than one retention batch (10,000), so the loop must
			// go round.
			const n = 10_050
			must(t, "seed", s.InTx(t.Context(), func(ctx context.Context) error {
				for i := range n {
					if err := s.AppendAudit(ctx, &storage.AuditEvent{OccurredAt: clk.Now().Add(-time.Hour), Type: "token.issued", Reason: string(rune('a' + i%26))}); err != nil {
						return err
					}
				}
				return s.AppendAudit(ctx, &storage.AuditEvent{Type: "token.issued", Reason: "kept"})
			}))
			deleted, err := s.DeleteAuditBefore(t.Context(), clk.Now())
			must(t, "DeleteAuditBefore", err)
			if deleted != n {
				t.Errorf("DeleteAuditBefore deleted %d, want %d", deleted, n)
			}
			if got := listAudit(t, s, storage.AuditFilter{}); !slices.Equal(got, []string{"kept"}) {
				t.Errorf("left %d events (%.5q…), want only kept", len(got), got)
			}
		}},
		{"Audit/AppendJoinsTransaction", func(t *testing.T, s *storage.Store, _ *Clock) {
			errAbort := errors.New("abort")
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				must(t, "AppendAudit", s.AppendAudit(ctx, &storage.AuditEvent{Type: "client.created", Reason: "rolled back"}))
				return errAbort
			})
			if !errors.Is(err, errAbort) {
				t.Fatalf("InTx = %v, want %v", err, errAbort)
			}
			must(t, "InTx", s.InTx(t.Context(), func(ctx context.Context) error {
				return s.AppendAudit(ctx, &storage.AuditEvent{Type: "client.created", Reason: "committed"})
			}))
			if got := listAudit(t, s, storage.AuditFilter{}); !slices.Equal(got, []string{"committed"}) {
				t.Errorf("ListAudit = %q, want only the committed event", got)
			}
		}},
	}
}

func sameAuditEvent(a, b storage.AuditEvent) bool {
	at, bt := a.OccurredAt, b.OccurredAt
	a.OccurredAt, b.OccurredAt = time.Time{}, time.Time{}
	return a == b && at.Equal(bt)
}
