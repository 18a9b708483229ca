package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

const (
	newEv     = uts.OutcomeNew
	duplicate = uts.OutcomeDuplicate
	conflict  = uts.OutcomeConflict
)

func testAppendNewRoundTrips(t *testing.T, opener Opener) {
	s := open(t, opener)
	kolkata := time.FixedZone("IST", 5*3600+1800)
	events := []uts.Event{
		{
			Topic: "orders", EventID: "o-1", Timestamp: baseTime, Source: "checkout",
			// Multi-byte UTF-8 and a JSON "\u0000" escape: a backend that stores payloads as a
			// type which rejects or rewrites them (PostgreSQL jsonb) fails here.
			Payload: []byte(`{"name":"Zoë Ångström 日本語 🎉","nul":"a\u0000b","n":-1.5e-7,"nested":{"list":[true,false,null]}}`),
		},
		{
			Topic: "orders", EventID: "o-2", Timestamp: baseTime.Add(time.Nanosecond), Source: "checkout",
			Payload: []byte(`[1,2,3]`),
		},
		{
			// The decoder hands over UTC, but a store must return UTC whatever it is given.
			Topic: "payments", EventID: "p-1", Timestamp: time.Date(2024, 2, 29, 23, 59, 59, 999999999, kolkata), Source: "bank",
			Payload: []byte(`"just a string with \"quotes\" and \\ backslash"`),
		},
		{
			Topic: "payments", EventID: "p-2", Timestamp: time.Date(1999, 12, 31, 0, 0, 0, 1, time.UTC), Source: "bank",
			Payload: []byte(`{}`),
		},
	}
	wantOutcomes(t, appendOK(t, s, events...), newEv, newEv, newEv, newEv)

	stored := allEvents(t, s, "")
	sameEvents(t, stored, events...)
	for i := 1; i < len(stored); i++ {
		if stored[i].Cursor.Compare(stored[i-1].Cursor) <= 0 {
			t.Errorf("cursors not increasing in processing order: %s then %s", stored[i-1].Cursor, stored[i].Cursor)
		}
	}
	// processed_at is the store's clock; the bound is loose because it only has to be "now".
	for _, e := range stored {
		if d := time.Since(e.ProcessedAt); d < -time.Hour || d > time.Hour {
			t.Errorf("%s/%s: processed_at = %v, not near now", e.Topic, e.EventID, e.ProcessedAt)
		}
	}
	wantCounters(t, s, uts.Counters{Received: 4, UniqueProcessed: 4})
}

func testDuplicateInSameBatch(t *testing.T, opener Opener) {
	s := open(t, opener)
	a, b := newEvent("t", "a"), newEvent("t", "b")
	aOther := a
	aOther.Payload = []byte(`{"other":true}`)

	wantOutcomes(t, appendOK(t, s, a, b, a, aOther, b), newEv, newEv, duplicate, conflict, duplicate)

	sameEvents(t, allEvents(t, s, ""), a, b)
	wantCounters(t, s, uts.Counters{Received: 5, UniqueProcessed: 2, DuplicateDropped: 3, DuplicateConflicts: 1})
}

func testDuplicateAcrossBatches(t *testing.T, opener Opener) {
	s := open(t, opener)
	a, b, c := newEvent("t", "a"), newEvent("t", "b"), newEvent("t", "c")

	wantOutcomes(t, appendOK(t, s, a, b), newEv, newEv)
	wantOutcomes(t, appendOK(t, s, b, c, a), duplicate, newEv, duplicate)
	wantOutcomes(t, appendOK(t, s, a), duplicate)

	sameEvents(t, allEvents(t, s, ""), a, b, c)
	wantCounters(t, s, uts.Counters{Received: 6, UniqueProcessed: 3, DuplicateDropped: 3})
}

func testConflictingDuplicate(t *testing.T, opener Opener) {
	s := open(t, opener)
	first := newEvent("t", "x")
	wantOutcomes(t, appendOK(t, s, first), newEv)

	otherPayload, otherSource, otherTime, sameInstant := first, first, first, first
	otherPayload.Payload = []byte(`{"id":"x","topic":"t","extra":1}`)
	otherSource.Source = "someone-else"
	otherTime.Timestamp = first.Timestamp.Add(time.Nanosecond)
	// The same instant seen from another zone is the same content: a retry, not a conflict.
	sameInstant.Timestamp = first.Timestamp.In(time.FixedZone("X", -7*3600))

	wantOutcomes(t, appendOK(t, s, otherPayload, otherSource), conflict, conflict)
	wantOutcomes(t, appendOK(t, s, otherTime, first, sameInstant), conflict, duplicate, duplicate)

	sameEvents(t, allEvents(t, s, ""), first) // the first stored wins
	st := wantCounters(t, s, uts.Counters{Received: 6, UniqueProcessed: 1, DuplicateDropped: 5, DuplicateConflicts: 3})
	wantTopics(t, st, uts.TopicStats{Topic: "t", Unique: 1, Stored: 1, Duplicates: 5, Conflicts: 3})
}

func testKeysAreDistinct(t *testing.T, opener Opener) {
	s := open(t, opener)
	events := []uts.Event{
		newEvent("t1", "x"),
		newEvent("t1", "y"), // same topic, other id
		newEvent("t2", "x"), // same id, other topic
		// A backend that joins topic and id without a separator would see these two as one.
		newEvent("ab", "c"),
		newEvent("a", "bc"),
	}
	wantOutcomes(t, appendOK(t, s, events...), newEv, newEv, newEv, newEv, newEv)
	sameEvents(t, allEvents(t, s, ""), events...)
	wantCounters(t, s, uts.Counters{Received: 5, UniqueProcessed: 5})
}

// testConcurrentAppends has writers race over overlapping keys, each in its own order, as
// consumers of several replicas would. A backend that deadlocks, double-stores or miscounts
// under contention fails here.
func testConcurrentAppends(t *testing.T, opener Opener) {
	s := open(t, opener)
	const (
		writers   = 8
		batches   = 4
		batchSize = 100
		keySpace  = 300
	)
	keys := make([]uts.Event, keySpace)
	for i := range keys {
		keys[i] = newEvent(fmt.Sprintf("topic-%d", i%3), fmt.Sprintf("id-%03d", i))
	}

	plans := make([][][]uts.Event, writers)
	covered := make(map[uts.Key]bool)
	for w := range plans {
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		for b := range batches {
			start := (w*37 + b*53) % keySpace
			batch := make([]uts.Event, batchSize)
			for i := range batch {
				batch[i] = keys[(start+i)%keySpace]
				covered[batch[i].Key()] = true
			}
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			plans[w] = append(plans[w], batch)
		}
	}

	var (
		mu     sync.Mutex
		newOf  = make(map[uts.Key]int)
		tally  uts.Tally
		wg     sync.WaitGroup
		failed = make(chan error, writers)
	)
	for _, plan := range plans {
		wg.Go(func() {
			for _, batch := range plan {
				outcomes, err := s.Append(t.Context(), batch)
				if err != nil {
					failed <- err
					return
				}
				if len(outcomes) != len(batch) {
					failed <- fmt.Errorf("%d outcomes for %d events", len(outcomes), len(batch))
					return
				}
				mu.Lock()
				for i, o := range outcomes {
					if o == newEv {
						newOf[batch[i].Key()]++
					}
				}
				batchTally := uts.TallyOf(outcomes)
				tally.Unique += batchTally.Unique
				tally.Duplicates += batchTally.Duplicates
				tally.Conflicts += batchTally.Conflicts
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatalf("concurrent Append: %v", err)
	}

	for key := range covered {
		if newOf[key] != 1 {
			t.Errorf("%v was new %d times, want once", key, newOf[key])
		}
	}
	received := writers * batches * batchSize
	if tally != (uts.Tally{Unique: len(covered), Duplicates: received - len(covered)}) {
		t.Errorf("outcomes tally = %+v, want %d unique and %d duplicates", tally, len(covered), received-len(covered))
	}
	wantCounters(t, s, uts.Counters{
		Received:         int64(received),
		UniqueProcessed:  int64(len(covered)),
		DuplicateDropped: int64(received - len(covered)),
	})
	stored := make(map[uts.Key]int)
	for _, e := range allEvents(t, s, "") {
		stored[e.Key()]++
	}
	if len(stored) != len(covered) {
		t.Errorf("stored %d keys, want %d", len(stored), len(covered))
	}
	for key, n := range stored {
		if n != 1 || !covered[key] {
			t.Errorf("%v stored %d times (appended: %v)", key, n, covered[key])
		}
	}
}

// testLargeBatch appends a batch as large as a request may carry, which trips backends that
// build one statement with more parameters than the database accepts.
func testLargeBatch(t *testing.T, opener Opener) {
	s := open(t, opener)
	n := uts.DefaultLimits().MaxBatchEvents
	batch := make([]uts.Event, n)
	var want []uts.Outcome
	var stored []uts.Event
	for i := range batch {
		if i%10 == 9 {
			batch[i] = batch[i-5] // a retry inside the batch
			want = append(want, duplicate)
			continue
		}
		batch[i] = newEvent(fmt.Sprintf("big-%d", i%4), fmt.Sprintf("e-%05d", i))
		want = append(want, newEv)
		stored = append(stored, batch[i])
	}
	wantOutcomes(t, appendOK(t, s, batch...), want...)
	sameEvents(t, allEvents(t, s, ""), stored...)
	dups := int64(n - len(stored))
	wantCounters(t, s, uts.Counters{Received: int64(n), UniqueProcessed: int64(len(stored)), DuplicateDropped: dups})
}

func testEmptyAppend(t *testing.T, opener Opener) {
	s := open(t, opener)
	for _, events := range [][]uts.Event{nil, {}} {
		outcomes, err := s.Append(t.Context(), events)
		if err != nil {
			t.Fatalf("Append(%v): %v", events, err)
		}
		if len(outcomes) != 0 {
			t.Fatalf("Append(%v) = %v, want no outcomes", events, outcomes)
		}
	}
	st := wantCounters(t, s, uts.Counters{})
	if len(st.Topics) != 0 {
		t.Fatalf("topics = %+v, want none", st.Topics)
	}
}

func testCancelledAppend(t *testing.T, opener Opener) {
	s := open(t, opener)
	batch := []uts.Event{newEvent("t", "a"), newEvent("t", "b")}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, batch); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}

	st := wantCounters(t, s, uts.Counters{})
	if len(st.Topics) != 0 {
		t.Fatalf("topics = %+v after a failed Append, want none", st.Topics)
	}
	sameEvents(t, allEvents(t, s, ""))
	// Nothing was remembered either: the same batch is new afterwards.
	wantOutcomes(t, appendOK(t, s, batch...), newEv, newEv)
}
