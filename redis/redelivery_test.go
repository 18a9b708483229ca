package redis

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/brokertest"
	"github.com/uts-events/uts/sqlite"
)

// TestCommitWithLostAnswerCountsOnce commits to a real store whose answers to the first
// commits are lost after they went through, as when PostgreSQL's connection drops while it
// commits. The consumer commits those batches again; since each event carries its entry as
// its delivery, the store counts each entry once: received is what was published.
func TestCommitWithLostAnswerCountsOnce(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{BatchEvents: 16, ClaimIdle: 200 * time.Millisecond})
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer store.Close()

	var (
		mu         sync.Mutex
		lost       int
		deliveries = map[string]uts.Key{}
	)
	commit := func(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
		outcomes, err := store.Append(ctx, events)
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if key, seen := deliveries[e.Delivery]; e.Delivery == "" || (seen && key != e.Key()) {
				t.Errorf("%v delivered as %q, which is empty or another event's", e.Key(), e.Delivery)
			}
			deliveries[e.Delivery] = e.Key()
		}
		if err == nil && lost < 3 {
			lost++
			return nil, uts.Unavailable("postgres: append", io.ErrUnexpectedEOF)
		}
		return outcomes, err
	}
	brokertest.Consume(t, b, commit)

	events := newEvents("lost", 40)
	publish(t, b, events)
	publish(t, b, events[:10]) // a publisher's retry: new entries, counted as duplicates
	waitIdle(t, b)

	st, err := store.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lost != 3 {
		t.Fatalf("%d answers lost, want 3", lost)
	}
	if len(deliveries) != 50 {
		t.Errorf("%d distinct deliveries, want one per event published: 50", len(deliveries))
	}
	if want := (uts.Counters{Received: 50, UniqueProcessed: 40, DuplicateDropped: 10}); st.Counters != want {
		t.Errorf("counters %+v, want %+v: every entry counted once", st.Counters, want)
	}
}
