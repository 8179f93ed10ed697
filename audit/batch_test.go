package audit_test

import (
	"context"
	"testing"

	"github.com/portcullis/portcullis/audit"
)

// TestRecordBatched: without Run an event is written at once; with Run it
// is written by Run, and cancelling Run writes whatever is still queued.
func TestRecordBatched(t *testing.T) {
	ctx := context.Background()
	store := &fakeStore{}
	rec := audit.NewRecorder(store, nil, nil)

	if err := rec.RecordBatched(ctx, audit.Event{Type: audit.TypeTokenIssued}); err != nil {
		t.Fatal(err)
	}
	if len(store.rows) != 1 {
		t.Fatalf("without Run: %d rows written, want 1 at once", len(store.rows))
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	started := make(chan struct{})
	go func() {
		close(started)
		rec.Run(runCtx)
		close(done)
	}()
	<-started
	// Run marks itself running before it reads the queue; until then
	// RecordBatched writes directly, which is also correct. Either way
	// every event must be stored once Run has returned.
	for range 5 {
		if err := rec.RecordBatched(ctx, audit.Event{Type: audit.TypeTokenRefreshed}); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	<-done
	if len(store.rows) != 6 {
		t.Fatalf("%d rows written after Run stopped, want 6", len(store.rows))
	}
	if err := rec.RecordBatched(ctx, audit.Event{}); err == nil {
		t.Fatal("an event without a type was accepted")
	}
}
