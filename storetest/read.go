package storetest

import (
	"testing"

	"github.com/uts-events/uts"
)

func testCounters(t *testing.T, opener Opener) {
	s := open(t, opener)
	st := wantCounters(t, s, uts.Counters{})
	if len(st.Topics) != 0 {
		t.Fatalf("a new store has topics %+v", st.Topics)
	}

	appendOK(t, s, newEvent("t", "a"), newEvent("t", "b"), newEvent("t", "a"))
	if err := s.DeadLetter(t.Context(), "", 4); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	other := newEvent("t", "b")
	other.Source = "elsewhere"
	appendOK(t, s, other)
	if err := s.DeadLetter(t.Context(), "", 1); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}

	wantCounters(t, s, uts.Counters{
		Received:           4 + 4 + 1,
		UniqueProcessed:    2,
		DuplicateDropped:   2,
		DuplicateConflicts: 1,
		DeadLettered:       5,
	})
}

func wantTopics(t *testing.T, st uts.Stats, want ...uts.TopicStats) {
	t.Helper()
	if len(st.Topics) != len(want) {
		t.Fatalf("topics = %+v, want %+v", st.Topics, want)
	}
	for i, got := range st.Topics {
		// LastEventAt is the store's clock: checked against the stored events by the caller.
		got.LastEventAt = want[i].LastEventAt
		if got != want[i] {
			t.Fatalf("topic %d = %+v, want %+v", i, st.Topics[i], want[i])
		}
	}
}

func testTopicStats(t *testing.T, opener Opener) {
	s := open(t, opener)
	// Topics are sorted by byte order (as Go sorts strings), the same in every backend
	// whatever the database's collation: "Alpha" < "alpha" < "alpha.x" < "beta".
	a1, a2, b1 := newEvent("alpha", "1"), newEvent("alpha", "2"), newEvent("beta", "1")
	upper, dotted := newEvent("Alpha", "1"), newEvent("alpha.x", "1")
	a1Conflict := a1
	a1Conflict.Payload = []byte(`{"changed":true}`)

	appendOK(t, s, b1, a1, upper)
	appendOK(t, s, a2, a1, dotted, a1Conflict)
	appendOK(t, s, b1) // only a duplicate: beta's last event stays where it was

	st := stats(t, s)
	wantTopics(t, st,
		uts.TopicStats{Topic: "Alpha", Unique: 1, Stored: 1},
		uts.TopicStats{Topic: "alpha", Unique: 2, Stored: 2, Duplicates: 2, Conflicts: 1},
		uts.TopicStats{Topic: "alpha.x", Unique: 1, Stored: 1},
		uts.TopicStats{Topic: "beta", Unique: 1, Stored: 1, Duplicates: 1},
	)

	// LastEventAt is the processed_at of the topic's latest new event.
	for _, ts := range st.Topics {
		events := allEvents(t, s, ts.Topic)
		if len(events) == 0 {
			t.Fatalf("topic %q has stats but no events", ts.Topic)
		}
		last := events[len(events)-1].ProcessedAt
		if !ts.LastEventAt.Equal(last) {
			t.Errorf("topic %q: last_event_at = %v, want the latest processed_at %v", ts.Topic, ts.LastEventAt, last)
		}
	}

	var sum uts.Counters
	for _, ts := range st.Topics {
		sum.UniqueProcessed += ts.Unique
		sum.DuplicateDropped += ts.Duplicates
		sum.DuplicateConflicts += ts.Conflicts
	}
	sum.Received = sum.UniqueProcessed + sum.DuplicateDropped
	if sum != st.Counters {
		t.Errorf("topics add up to %+v, counters are %+v", sum, st.Counters)
	}
}

func testEventsPaging(t *testing.T, opener Opener) {
	s := open(t, opener)
	pa1, pa2, pa3 := newEvent("pa", "1"), newEvent("pa", "2"), newEvent("pa", "3")
	pb1, pb2 := newEvent("pb", "1"), newEvent("pb", "2")
	appendOK(t, s, pa1, pb1, pa2)
	appendOK(t, s, pa3, pa1, pb2)

	all := allEvents(t, s, "")
	sameEvents(t, all, pa1, pb1, pa2, pa3, pb2) // processing order, duplicates not stored

	page := func(q uts.EventQuery) []uts.StoredEvent {
		t.Helper()
		events, err := s.Events(t.Context(), q)
		if err != nil {
			t.Fatalf("Events(%+v): %v", q, err)
		}
		return events
	}
	cursor := func(e uts.StoredEvent) uts.Cursor { return e.Cursor }

	// Limit, and the last cursor of a page leading to the next one.
	p1 := page(uts.EventQuery{Limit: 2})
	sameEvents(t, p1, pa1, pb1)
	p2 := page(uts.EventQuery{After: cursor(p1[1]), Limit: 2})
	sameEvents(t, p2, pa2, pa3)
	p3 := page(uts.EventQuery{After: cursor(p2[1]), Limit: 2})
	sameEvents(t, p3, pb2)
	sameEvents(t, page(uts.EventQuery{After: cursor(p3[0]), Limit: 2}))

	// After alone.
	sameEvents(t, page(uts.EventQuery{After: cursor(all[1]), Limit: 10}), pa2, pa3, pb2)

	// The topic filter, paged.
	t1 := page(uts.EventQuery{Topics: []string{"pa"}, Limit: 2})
	sameEvents(t, t1, pa1, pa2)
	t2 := page(uts.EventQuery{Topics: []string{"pa"}, After: cursor(t1[1]), Limit: 2})
	sameEvents(t, t2, pa3)
	sameEvents(t, page(uts.EventQuery{Topics: []string{"pa"}, After: cursor(t2[0]), Limit: 2}))
	sameEvents(t, page(uts.EventQuery{Topics: []string{"pb"}, After: cursor(all[0]), Limit: 10}), pb1, pb2)

	sameEvents(t, page(uts.EventQuery{Topics: []string{"no-such-topic"}, Limit: 10}))

	// Newest first, paged down by Before, across topics and within one.
	n1 := page(uts.EventQuery{Newest: true, Limit: 2})
	sameEvents(t, n1, pb2, pa3)
	n2 := page(uts.EventQuery{Newest: true, Before: cursor(n1[1]), Limit: 2})
	sameEvents(t, n2, pa2, pb1)
	n3 := page(uts.EventQuery{Newest: true, Before: cursor(n2[1]), Limit: 2})
	sameEvents(t, n3, pa1)
	sameEvents(t, page(uts.EventQuery{Newest: true, Before: cursor(n3[0]), Limit: 2}))
	sameEvents(t, page(uts.EventQuery{Newest: true, Topics: []string{"pa"}, Limit: 2}), pa3, pa2)
	sameEvents(t, page(uts.EventQuery{Newest: true, Topics: []string{"pa"}, Before: cursor(all[2]), Limit: 10}), pa1)
	sameEvents(t, page(uts.EventQuery{Newest: true, Topics: []string{"no-such-topic"}, Limit: 10}))

	// Offset skips events in the chosen order, past the cursor and within the topics.
	sameEvents(t, page(uts.EventQuery{Offset: 1, Limit: 2}), pb1, pa2)
	sameEvents(t, page(uts.EventQuery{Offset: 3, Limit: 10}), pa3, pb2)
	sameEvents(t, page(uts.EventQuery{Offset: 5, Limit: 10}))
	sameEvents(t, page(uts.EventQuery{Offset: 1, After: cursor(all[1]), Limit: 1}), pa3)
	sameEvents(t, page(uts.EventQuery{Offset: 1, Topics: []string{"pa"}, Limit: 10}), pa2, pa3)
	sameEvents(t, page(uts.EventQuery{Offset: 1, Topics: []string{"pa", "pb"}, Limit: 2}), pb1, pa2)
	sameEvents(t, page(uts.EventQuery{Offset: 2, Newest: true, Limit: 2}), pa2, pb1)
	sameEvents(t, page(uts.EventQuery{Offset: 1, Newest: true, Before: cursor(all[3]), Topics: []string{"pa"}, Limit: 10}), pa1)
}

func testReopen(t *testing.T, opener Opener) {
	first, err := opener()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	a, b := newEvent("t", "a"), newEvent("u", "b")
	appendOK(t, first, a, b, a)
	if err := first.DeadLetter(t.Context(), "", 2); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	before := stats(t, first)
	eventsBefore := allEvents(t, first, "")
	if err := first.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}

	s := open(t, opener)
	after := stats(t, s)
	if !sameStats(after, before) {
		t.Fatalf("stats after reopen = %+v, before = %+v", after, before)
	}
	eventsAfter := allEvents(t, s, "")
	if len(eventsAfter) != len(eventsBefore) {
		t.Fatalf("%d events after reopen, %d before", len(eventsAfter), len(eventsBefore))
	}
	for i, e := range eventsAfter {
		sameEvent(t, e, eventsBefore[i].Event)
		if e.Cursor != eventsBefore[i].Cursor || !e.ProcessedAt.Equal(eventsBefore[i].ProcessedAt) {
			t.Errorf("%v after reopen: cursor %s, processed_at %v; before: %s, %v", e.Key(),
				e.Cursor, e.ProcessedAt, eventsBefore[i].Cursor, eventsBefore[i].ProcessedAt)
		}
	}

	// Dedup outlives the process: old keys are duplicates, and new events sort after old ones.
	c := newEvent("t", "c")
	wantOutcomes(t, appendOK(t, s, b, c, a), duplicate, newEv, duplicate)
	sameEvents(t, allEvents(t, s, ""), a, b, c)
	wantCounters(t, s, uts.Counters{Received: 3 + 2 + 3, UniqueProcessed: 3, DuplicateDropped: 3, DeadLettered: 2})
}

func sameStats(a, b uts.Stats) bool {
	if a.Counters != b.Counters || a.Stored != b.Stored || a.Expired != b.Expired || len(a.Topics) != len(b.Topics) {
		return false
	}
	for i := range a.Topics {
		x, y := a.Topics[i], b.Topics[i]
		if !x.LastEventAt.Equal(y.LastEventAt) {
			return false
		}
		x.LastEventAt = y.LastEventAt
		if x != y {
			return false
		}
	}
	return true
}

func testPing(t *testing.T, opener Opener) {
	s := open(t, opener)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
