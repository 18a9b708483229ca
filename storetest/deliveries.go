package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/uts-events/uts"
)

// delivered is e as a broker delivery named d carries it.
func delivered(e uts.Event, d string) uts.Event {
	e.Delivery = d
	return e
}

// testRedeliveredBatch commits a batch again with the same deliveries, as a consumer does
// when it lost the answer to a commit that went through: every event answers duplicate and
// nothing is stored or counted again, topics included.
func testRedeliveredBatch(t *testing.T, opener Opener) {
	s := open(t, opener)
	a, b := newEvent("t", "a"), newEvent("u", "b")
	aOther := a
	aOther.Payload = []byte(`{"other":true}`)
	batch := []uts.Event{delivered(a, "1-0"), delivered(b, "1-1"), delivered(a, "1-2"), delivered(aOther, "1-3")}

	wantOutcomes(t, appendOK(t, s, batch...), newEv, newEv, duplicate, conflict)
	before := stats(t, s)
	for range 2 {
		wantOutcomes(t, appendOK(t, s, batch...), duplicate, duplicate, duplicate, duplicate)
	}
	// Half of it again, as a consumer that split the batch would send it.
	wantOutcomes(t, appendOK(t, s, batch[2:]...), duplicate, duplicate)

	if after := stats(t, s); !sameStats(after, before) {
		t.Fatalf("stats after redeliveries = %+v, want them as after the first commit %+v", after, before)
	}
	wantCounters(t, s, uts.Counters{Received: 4, UniqueProcessed: 2, DuplicateDropped: 2, DuplicateConflicts: 1})
	sameEvents(t, allEvents(t, s, ""), a, b)
}

// testRedeliveryMixedWithNew commits a batch in which some deliveries were committed before
// and others are new: only the new ones count, whatever their keys, and events without a
// delivery count as they always do.
func testRedeliveryMixedWithNew(t *testing.T, opener Opener) {
	s := open(t, opener)
	a, b, c, d := newEvent("t", "a"), newEvent("t", "b"), newEvent("t", "c"), newEvent("t", "d")
	aOther := a
	aOther.Payload = []byte(`{"other":true}`)

	wantOutcomes(t, appendOK(t, s, delivered(a, "1-0"), delivered(b, "1-1")), newEv, newEv)
	outcomes := appendOK(t, s,
		delivered(a, "1-0"),      // redelivered, and the first occurrence of a in the batch
		delivered(c, "2-0"),      // new key
		delivered(a, "2-1"),      // a new delivery of a stored key: a retry, counted
		delivered(aOther, "2-2"), // a new delivery conflicting with the stored a
		delivered(b, "1-1"),      // redelivered
		delivered(c, "2-3"),      // a retry of the key new in this batch
		d,                        // no delivery: counted as always
		a,                        // no delivery: a retry, counted as always
	)
	wantOutcomes(t, outcomes, duplicate, newEv, duplicate, conflict, duplicate, duplicate, newEv, duplicate)

	sameEvents(t, allEvents(t, s, ""), a, b, c, d)
	// First batch 2 new; second batch 6 counted: c, d new; a, aOther, c, a dropped.
	st := wantCounters(t, s, uts.Counters{Received: 8, UniqueProcessed: 4, DuplicateDropped: 4, DuplicateConflicts: 1})
	wantTopics(t, st, uts.TopicStats{Topic: "t", Unique: 4, Stored: 4, Duplicates: 4, Conflicts: 1})

	// A delivery is remembered with its event: the same entry ID carrying another event (a
	// second broker numbering alike) is no redelivery.
	wantOutcomes(t, appendOK(t, s, delivered(newEvent("t", "e"), "1-0")), newEv)
}

// testWithoutDelivery: events without a delivery are counted every time, even when the same
// event was committed before under a delivery.
func testWithoutDelivery(t *testing.T, opener Opener) {
	s := open(t, opener)
	a := newEvent("t", "a")
	wantOutcomes(t, appendOK(t, s, delivered(a, "1-0")), newEv)
	wantOutcomes(t, appendOK(t, s, a, a), duplicate, duplicate)
	wantOutcomes(t, appendOK(t, s, a), duplicate)
	wantCounters(t, s, uts.Counters{Received: 4, UniqueProcessed: 1, DuplicateDropped: 3})
}

// testEventsOfOneDelivery commits units of several events under one delivery, as a Redis
// entry carries a chunk of a publish: all of a unit is counted the first time and none of it
// on a redelivery, including a key the unit holds twice (a publish that repeated an event).
// The delivery is recorded with its first event's key, so a unit of another stream that
// happens to share its name is no redelivery.
func testEventsOfOneDelivery(t *testing.T, opener Opener) {
	s := open(t, opener)
	a, b, c, d, k := newEvent("t", "a"), newEvent("t", "b"), newEvent("u", "c"), newEvent("t", "d"), newEvent("t", "k")
	first := []uts.Event{delivered(a, "1-0"), b, delivered(c, "1-0"), delivered(k, "2-0"), delivered(k, "2-0")}
	wantOutcomes(t, appendOK(t, s, first...), newEv, newEv, newEv, newEv, duplicate)
	wantCounters(t, s, uts.Counters{Received: 5, UniqueProcessed: 4, DuplicateDropped: 1})

	wantOutcomes(t, appendOK(t, s, delivered(a, "1-0"), delivered(c, "1-0")), duplicate, duplicate)
	wantOutcomes(t, appendOK(t, s, delivered(k, "2-0"), delivered(d, "3-0"), delivered(k, "2-0")), duplicate, newEv, duplicate)
	wantCounters(t, s, uts.Counters{Received: 6, UniqueProcessed: 5, DuplicateDropped: 1}) // d alone

	// The name 1-0 again, on a unit that starts with another event.
	x, y := newEvent("t", "x"), newEvent("t", "y")
	wantOutcomes(t, appendOK(t, s, delivered(x, "1-0"), delivered(y, "1-0")), newEv, newEv)
	sameEvents(t, allEvents(t, s, ""), a, b, c, k, d, x, y)
}

// testFailedAppendRecordsNoDelivery: a batch that failed recorded none of its deliveries,
// so its redelivery counts.
func testFailedAppendRecordsNoDelivery(t *testing.T, opener Opener) {
	s := open(t, opener)
	batch := []uts.Event{delivered(newEvent("t", "a"), "1-0"), delivered(newEvent("t", "b"), "1-1")}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, batch); err == nil {
		t.Fatal("Append with a cancelled context succeeded")
	}
	wantOutcomes(t, appendOK(t, s, batch...), newEv, newEv)
	wantCounters(t, s, uts.Counters{Received: 2, UniqueProcessed: 2})
}

// testDeliveriesSurviveReopen: a consumer restarted with its pending entries redelivers
// them to a store that was restarted too.
func testDeliveriesSurviveReopen(t *testing.T, opener Opener) {
	first, err := opener()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	batch := []uts.Event{delivered(newEvent("t", "a"), "1-0"), delivered(newEvent("t", "b"), "1-1")}
	appendOK(t, first, batch...)
	if err := first.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	s := open(t, opener)
	wantOutcomes(t, appendOK(t, s, batch...), duplicate, duplicate)
	wantCounters(t, s, uts.Counters{Received: 2, UniqueProcessed: 2})
}

// testConcurrentRedeliveries has writers commit the same deliveries at once, each in its own
// order and its own grouping, as replicas do when one claims entries another is still
// committing. Each delivered event must be counted once: received is the number of events
// delivered, however many writers committed them.
func testConcurrentRedeliveries(t *testing.T, opener Opener) {
	concurrentRedeliveries(t, opener, 1)
}

// testConcurrentRedeliveriesOfUnits is testConcurrentRedeliveries with four events to a
// delivery, each batch holding whole units, as Redis entries are committed.
func testConcurrentRedeliveriesOfUnits(t *testing.T, opener Opener) {
	concurrentRedeliveries(t, opener, 4)
}

func concurrentRedeliveries(t *testing.T, opener Opener, unitSize int) {
	s := open(t, opener)
	const (
		writers    = 8
		deliveries = 400 // events delivered
		keySpace   = 250 // fewer keys than events: some are publisher retries
		batchSize  = 100
	)
	all := make([]uts.Event, deliveries)
	for i := range all {
		k := i % keySpace
		all[i] = delivered(newEvent(fmt.Sprintf("topic-%d", k%3), fmt.Sprintf("id-%03d", k)), fmt.Sprintf("%d-0", 1000+i/unitSize))
	}

	var (
		mu     sync.Mutex
		newOf  = make(map[uts.Key]int)
		wg     sync.WaitGroup
		failed = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			// Units in a random order of the writer's own, each unit whole and in order.
			units := rand.New(rand.NewPCG(uint64(w), 9)).Perm(deliveries / unitSize)
			perBatch := batchSize / unitSize
			for start := 0; start < len(units); start += perBatch {
				batch := make([]uts.Event, 0, batchSize)
				for _, u := range units[start:min(start+perBatch, len(units))] {
					batch = append(batch, all[u*unitSize:(u+1)*unitSize]...)
				}
				outcomes, err := s.Append(t.Context(), batch)
				if err != nil {
					failed <- err
					return
				}
				mu.Lock()
				for i, o := range outcomes {
					if o == newEv {
						newOf[batch[i].Key()]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatalf("concurrent Append: %v", err)
	}
	for i := range keySpace {
		if key := all[i].Key(); newOf[key] != 1 {
			t.Errorf("%v was new %d times, want once", key, newOf[key])
		}
	}
	wantCounters(t, s, uts.Counters{Received: deliveries, UniqueProcessed: keySpace, DuplicateDropped: deliveries - keySpace})
	if stored := allEvents(t, s, ""); len(stored) != keySpace {
		t.Errorf("stored %d events, want %d", len(stored), keySpace)
	}
}

// testDeadLetterOncePerDelivery gives up on the same entry again and again, as a broker does
// when moving it aside failed after it was counted, and from several writers at once: its
// events are counted once. Without a delivery every call counts. The record cannot pass for
// an Append's: a unit under the same name is new.
func testDeadLetterOncePerDelivery(t *testing.T, opener Opener) {
	s := open(t, opener)
	var wg sync.WaitGroup
	failed := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if err := s.DeadLetter(t.Context(), "9-0", 3); err != nil {
				failed <- err
			}
		})
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatalf("DeadLetter: %v", err)
	}
	if err := s.DeadLetter(t.Context(), "9-0", 3); err != nil {
		t.Fatalf("DeadLetter again: %v", err)
	}
	wantCounters(t, s, uts.Counters{Received: 3, DeadLettered: 3})
	for range 2 {
		if err := s.DeadLetter(t.Context(), "", 2); err != nil {
			t.Fatalf("DeadLetter without a delivery: %v", err)
		}
	}
	wantCounters(t, s, uts.Counters{Received: 7, DeadLettered: 7})
	wantOutcomes(t, appendOK(t, s, delivered(newEvent("t", "a"), "9-0"), delivered(newEvent("t", "b"), "9-0")), newEv, newEv)
	wantCounters(t, s, uts.Counters{Received: 9, UniqueProcessed: 2, DeadLettered: 7})
}
