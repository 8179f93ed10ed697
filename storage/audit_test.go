package storage_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// The audit trail must stay fast with millions of rows. These run on
// PostgreSQL only: it is the backend for that size, and its planner is the
// one whose choice can go wrong as the table grows.

// seedStart is the occurred_at of the seeded row with id 0; row g occurred
// g*30s later, so a million rows span about a year.
func seedStart() time.Time { return time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC) }

const seedStep = 30 * time.Second

// seedAudit fills the empty audit_events table with n rows in one statement
// and analyses it. Row g (= its id, the table being new) has user
// "user-<g mod users>", type number g mod 15, client "client-<g mod 50>" and
// one of 20,000 addresses, so every filter value recurs evenly through time.
func seedAudit(tb testing.TB, db *sql.DB, n, users int) {
	tb.Helper()
	ctx := context.Background()
	started := time.Now()
	_, err := db.ExecContext(ctx, `
INSERT INTO audit_events (occurred_at, type, actor, user_id, client_id, ip, device, outcome, reason, details)
SELECT $1::timestamptz + g * interval '30 seconds',
       (ARRAY['login.success','login.failed','token.issued','token.refreshed','token.reuse_detected',
              'token.revoked','session.started','session.ended','policy.changed','key.rotated',
              'client.created','client.deleted','user.created','user.deleted','password.changed'])[1 + g % 15],
       'user-' || (g % $3::int),
       'user-' || (g % $3::int),
       'client-' || (g % 50),
       '198.51.' || (g % 20000 / 256) || '.' || (g % 256),
       'Mozilla/5.0 (X11; Linux x86_64)',
       CASE WHEN g % 15 = 1 THEN 'failure' ELSE 'success' END,
       CASE WHEN g % 15 = 1 THEN 'bad_password' ELSE '' END,
       '{"seq":' || g || '}'
FROM generate_series(1, $2::int) AS g`, seedStart(), n, users)
	if err != nil {
		tb.Fatalf("seed %d audit events: %v", n, err)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE audit_events"); err != nil {
		tb.Fatalf("analyze: %v", err)
	}
	tb.Logf("seeded %d audit events in %v", n, time.Since(started).Round(time.Millisecond))
}

// rawDB is a second connection to the store's schema, for what the store
// does not offer: bulk seeding, ANALYZE, EXPLAIN.
func rawDB(tb testing.TB, url string) *sql.DB {
	tb.Helper()
	gdb, err := gorm.Open(postgres.Open(url), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		tb.Fatalf("open %s: %v", "postgres", err)
	}
	db, err := gdb.DB()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// listSQL is the statement ListAudit sends for f, written out so EXPLAIN can
// be run on it; TestAuditQueryPlan checks both return the same rows.
func listSQL(f storage.AuditFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	order := "occurred_at DESC, id DESC"
	driven := false
	for _, eq := range []struct{ column, value string }{
		{"user_id", f.UserID}, {"ip", f.IP}, {"client_id", f.ClientID}, {"type", f.Type},
	} {
		switch {
		case eq.value == "":
		case !driven:
			add(eq.column+" >= $%[1]d AND "+eq.column+" <= $%[1]d", eq.value)
			order = eq.column + " DESC, " + order
			driven = true
		default:
			add(eq.column+" = $%d", eq.value)
		}
	}
	if !f.From.IsZero() {
		add("occurred_at >= $%d", f.From)
	}
	if !f.To.IsZero() {
		add("occurred_at < $%d", f.To)
	}
	if f.BeforeID > 0 {
		add("(occurred_at, id) < ((SELECT c.occurred_at FROM audit_events c WHERE c.id = $%[1]d), $%[1]d)", f.BeforeID)
	}
	q := "SELECT id FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + order
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return q, args
}

// explain returns the plan of f's statement: the custom plan PostgreSQL
// makes for these values, or with generic the plan a statement prepared
// and run many times may settle on, the same for every value.
func explain(tb testing.TB, db *sql.DB, generic, analyze bool, f storage.AuditFilter) string {
	tb.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	q, args := listSQL(f)
	prefix := "EXPLAIN "
	if analyze {
		prefix = "EXPLAIN (ANALYZE, BUFFERS) "
	}
	if generic {
		// PREPARE infers each parameter's type from its use; EXECUTE then
		// passes the values as literals.
		literals := make([]string, len(args))
		for i, a := range args {
			switch v := a.(type) {
			case string:
				literals[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
			case time.Time:
				literals[i] = "'" + v.UTC().Format(time.RFC3339Nano) + "'"
			default:
				literals[i] = fmt.Sprint(v)
			}
		}
		for _, stmt := range []string{"SET plan_cache_mode = force_generic_plan", "PREPARE audit_page AS " + q} {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				tb.Fatalf("%s: %v", stmt, err)
			}
		}
		// The connection goes back to the pool: leave it as found.
		defer conn.ExecContext(ctx, "DEALLOCATE audit_page; RESET plan_cache_mode")
		q, args = "EXECUTE audit_page", nil
		if len(literals) > 0 {
			q += "(" + strings.Join(literals, ", ") + ")"
		}
	}
	rows, err := conn.QueryContext(ctx, prefix+q, args...)
	if err != nil {
		tb.Fatalf("%s%s: %v", prefix, q, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, line)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestAuditQueryPlan checks that on a table big enough for the planner's
// choice to be real (20,000 rows, analysed), each filtered page is read
// through that filter's index, never by scanning the table nor by walking
// the time index past rows of other values, and that a generic plan, which
// cannot know whether a value is rare, makes the same choice.
func TestAuditQueryPlan(t *testing.T) {
	url := storagetest.RequirePostgres(t)
	s := storagetest.Open(t, url)
	db := rawDB(t, url)
	seedAudit(t, db, 20_000, 1_000)
	// A rare type: read through the time index, a page of it would be a
	// walk through the whole table.
	if _, err := db.ExecContext(t.Context(), `INSERT INTO audit_events (occurred_at, type) VALUES ($1, 'key.rare'), ($2, 'key.rare')`,
		seedStart(), seedStart().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), "ANALYZE audit_events"); err != nil {
		t.Fatal(err)
	}

	window := func(f storage.AuditFilter) storage.AuditFilter {
		f.From, f.To = seedStart().Add(2_000*seedStep), seedStart().Add(4_000*seedStep)
		return f
	}
	for _, tc := range []struct {
		name      string
		filter    storage.AuditFilter
		wantIndex string
	}{
		{"user_id", storage.AuditFilter{UserID: "user-7", Limit: 51}, "audit_events_user_id"},
		{"user_id, next page", storage.AuditFilter{UserID: "user-7", BeforeID: 10_007, Limit: 51}, "audit_events_user_id"},
		{"ip", storage.AuditFilter{IP: "198.51.3.7", Limit: 51}, "audit_events_ip"},
		{"client_id", storage.AuditFilter{ClientID: "client-7", Limit: 51}, "audit_events_client_id"},
		{"type", storage.AuditFilter{Type: "token.revoked", Limit: 51}, "audit_events_type"},
		{"rare type", storage.AuditFilter{Type: "key.rare", Limit: 51}, "audit_events_type"},
		{"type, window", window(storage.AuditFilter{Type: "login.failed", Limit: 51}), "audit_events_type"},
		{"type, window, next page", window(storage.AuditFilter{Type: "login.failed", BeforeID: 3_001, Limit: 51}), "audit_events_type"},
		{"user_id and type", storage.AuditFilter{UserID: "user-7", Type: "token.issued", Limit: 51}, "audit_events_user_id"},
		{"window", window(storage.AuditFilter{Limit: 51}), "audit_events_occurred_at"},
		{"everything", storage.AuditFilter{Limit: 51}, "audit_events_occurred_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, generic := range []bool{false, true} {
				plan := explain(t, db, generic, false, tc.filter)
				if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, " "+tc.wantIndex+" ") {
					t.Errorf("generic %v: plan does not read %s:\n%s", generic, tc.wantIndex, plan)
				}
			}

			// The statement explained is the one ListAudit runs.
			events, err := s.ListAudit(t.Context(), tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			q, args := listSQL(tc.filter)
			rows, err := db.QueryContext(t.Context(), q, args...)
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				want = append(want, id)
			}
			rows.Close()
			var got []int64
			for _, e := range events {
				got = append(got, e.ID)
			}
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("ListAudit ids = %v\nexplained SQL ids = %v", got, want)
			}
		})
	}
}

// BenchmarkAuditQueryMillion times the admin API's audit queries on a
// million events: filtered first pages and pages deep in history.
//
//	go test -run '^$' -bench AuditQueryMillion -benchtime 200x ./storage/
func BenchmarkAuditQueryMillion(b *testing.B) {
	url := storagetest.RequirePostgres(b)
	s := storagetest.Open(b, url)
	db := rawDB(b, url)
	const rows = 1_000_000
	seedAudit(b, db, rows, 10_000)

	day := func(d int) time.Time { return seedStart().Add(time.Duration(d) * 24 * time.Hour) }
	// Day 100 holds ids 288,000 to 290,879.
	for _, bc := range []struct {
		name   string
		filter storage.AuditFilter
	}{
		{"user/first", storage.AuditFilter{UserID: "user-4242", Limit: 51}},
		{"user/deep", storage.AuditFilter{UserID: "user-4242", BeforeID: 50_000, Limit: 51}},
		{"type/first", storage.AuditFilter{Type: "login.failed", Limit: 51}},
		{"type/deep", storage.AuditFilter{Type: "login.failed", BeforeID: 50_000, Limit: 51}},
		{"type+day/first", storage.AuditFilter{Type: "login.failed", From: day(100), To: day(101), Limit: 51}},
		{"type+day/deep", storage.AuditFilter{Type: "login.failed", From: day(100), To: day(101), BeforeID: 289_500, Limit: 51}},
		{"type+month/first", storage.AuditFilter{Type: "token.revoked", From: day(30), To: day(60), Limit: 51}},
		{"client/first", storage.AuditFilter{ClientID: "client-7", Limit: 51}},
		{"ip/first", storage.AuditFilter{IP: "198.51.3.7", Limit: 51}},
		{"user+type/first", storage.AuditFilter{UserID: "user-4242", Type: "token.issued", Limit: 51}},
		{"day/first", storage.AuditFilter{From: day(200), To: day(201), Limit: 51}},
	} {
		plan := explain(b, db, false, true, bc.filter)
		b.Run(bc.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				events, err := s.ListAudit(context.Background(), bc.filter)
				if err != nil {
					b.Fatal(err)
				}
				n = len(events)
			}
			perQuery := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(perQuery.Microseconds())/1000, "ms/query")
			b.Logf("%s: %d rows, %v per query; plan:\n%s", bc.name, n, perQuery, plan)
		})
	}
}
