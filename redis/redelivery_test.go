package redis

import (
	"context"
	"io"
	"path/filepath"
	"slices"
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
// its delivery, and an entry is redelivered whole and in order, the store counts each entry
// once: received is what was published.
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
		deliveries = map[string][]uts.Key{} // each delivery's events, in order, as first seen
	)
	commit := func(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
		outcomes, err := store.Append(ctx, events)
		mu.Lock()
		defer mu.Unlock()
		this := map[string][]uts.Key{}
		for _, e := range events {
			if e.Delivery == "" {
				t.Errorf("%v delivered without a delivery", e.Key())
			}
			this[e.Delivery] = append(this[e.Delivery], e.Key())
		}
		for d, keys := range this {
			if before, seen := deliveries[d]; seen && !slices.Equal(before, keys) {
				t.Errorf("delivery %q carried %v, and now %v", d, before, keys)
			}
			deliveries[d] = keys
		}
		if err == nil && lost < 3 {
			lost++
			return nil, uts.Unavailable("postgres: append", io.ErrUnexpectedEOF)
		}
		return outcomes, err
	}
	brokertest.Consume(t, b, commit)

	events := newEvents("lost", 40)
	for i := 0; i < len(events); i += 10 {
		publish(t, b, events[i:i+10])
	}
	publish(t, b, events[:10]) // a publisher's retry: a new entry, counted as duplicates
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
	if len(deliveries) != 5 {
		t.Errorf("%d distinct deliveries, want one per entry: 5", len(deliveries))
	}
	if want := (uts.Counters{Received: 50, UniqueProcessed: 40, DuplicateDropped: 10}); st.Counters != want {
		t.Errorf("counters %+v, want %+v: every entry counted once", st.Counters, want)
	}
}
