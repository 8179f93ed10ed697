package audit_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/storage/storagetest"
)

// flakyProxy forwards TCP connections to a database and can cut them:
// while down it closes every open connection and every new one at once,
// which is what a client sees while PostgreSQL restarts.
type flakyProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.setDown(true)
	})
	return p
}

func (p *flakyProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *flakyProxy) forward(c net.Conn) {
	if !p.track(c) {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(up) {
		p.untrack(c)
		return
	}
	var wg sync.WaitGroup
	for _, pair := range [][2]net.Conn{{up, c}, {c, up}} {
		wg.Go(func() {
			_, _ = io.Copy(pair[0], pair[1])
			// Either side ending ends both.
			p.untrack(pair[0])
			p.untrack(pair[1])
		})
	}
	wg.Wait()
}

// track registers c, or closes it when the proxy is down.
func (p *flakyProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *flakyProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *flakyProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			_ = c.Close()
			delete(p.conns, c)
		}
	}
}

// A real PostgreSQL that goes away and comes back, as in a restart: the
// batch Run could not write is retried until it can, and every event is
// stored exactly once, in order.
func TestRunRidesOutAPostgresRestart(t *testing.T) {
	dbURL := storagetest.RequirePostgres(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFlakyProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	store := storagetest.Open(t, u.String())
	rec := audit.NewRecorder(store, nil, nil, audit.WithRetry(audit.Retry{
		Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, GiveUpAfter: time.Minute,
	}))
	stop := startRun(t, rec)

	count := func() int {
		rows, err := store.ListAudit(t.Context(), storage.AuditFilter{})
		if err != nil {
			if errors.Is(err, storage.ErrUnavailable) {
				return -1
			}
			t.Fatal(err)
		}
		return len(rows)
	}
	recordBatched(t, rec, 0, 50)
	// Cut only once Run is idle: a connection cut mid-INSERT leaves it
	// unknown whether the rows were committed.
	waitFor(t, "the first events to be stored", func() bool { return count() == 50 })
	proxy.setDown(true)
	if failed := recordBatched(t, rec, 50, 100); failed != 0 {
		t.Fatalf("%d events refused while queueing", failed)
	}
	waitFor(t, "Run to retry", func() bool { return rec.Stats().Retries >= 3 })
	if got := rec.Stats().Queued; got != 50 {
		t.Errorf("during the outage Queued = %d, want 50", got)
	}
	proxy.setDown(false)
	recordBatched(t, rec, 100, 150)
	waitFor(t, "every event to be stored", func() bool { return count() >= 150 })
	stop()

	rows, err := store.ListAudit(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b storage.AuditEvent) int { return int(a.ID - b.ID) })
	if got := indexes(t, rows); !slices.Equal(got, upTo(150)) {
		t.Errorf("stored %d events %v, want 0 to 149 once each, in order", len(got), got)
	}
	if st := rec.Stats(); st.Dropped() != 0 || st.Queued != 0 {
		t.Errorf("Stats = %+v, want nothing dropped or left", st)
	}
}
