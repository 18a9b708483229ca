// Package storetest is the conformance suite for uts.Store. A backend is done when Run passes
// against it: the suite speaks only through uts.Store, so every backend is held to the same
// promises (each key stored once, each broker delivery counted once, counters that add up,
// exact round-trips, reopen, retention that keeps deduplication exact).
package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// Opener opens a store at one location; calling it again opens the same location again.
type Opener func() (uts.Store, error)

// NewStore allocates a fresh, empty location (a temp file, a new schema), registers its
// removal with t.Cleanup, and returns an Opener for it. When commitDelay is not nil, the
// stores it opens hold each Append's transaction open for commitDelay() before committing
// it, as a slow or large batch would: the feed's tests need transactions that commit out of
// the order in which they began.
type NewStore func(t *testing.T, commitDelay func() time.Duration) Opener

// Run runs the suite. Every subtest runs in parallel with the others, each on its own
// location.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, opener Opener)
	}{
		{"AppendNewRoundTrips", testAppendNewRoundTrips},
		{"DuplicateInSameBatch", testDuplicateInSameBatch},
		{"DuplicateAcrossBatches", testDuplicateAcrossBatches},
		{"ConflictingDuplicate", testConflictingDuplicate},
		{"StoredHash", testStoredHash},
		{"KeysAreDistinct", testKeysAreDistinct},
		{"ConcurrentAppends", testConcurrentAppends},
		{"LargeBatch", testLargeBatch},
		{"EmptyAppend", testEmptyAppend},
		{"CancelledAppend", testCancelledAppend},
		{"RedeliveredBatch", testRedeliveredBatch},
		{"RedeliveryMixedWithNew", testRedeliveryMixedWithNew},
		{"WithoutDelivery", testWithoutDelivery},
		{"EventsOfOneDelivery", testEventsOfOneDelivery},
		{"FailedAppendRecordsNoDelivery", testFailedAppendRecordsNoDelivery},
		{"DeliveriesSurviveReopen", testDeliveriesSurviveReopen},
		{"ConcurrentRedeliveries", testConcurrentRedeliveries},
		{"ConcurrentRedeliveriesOfUnits", testConcurrentRedeliveriesOfUnits},
		{"DeadLetterOncePerDelivery", testDeadLetterOncePerDelivery},
		{"Counters", testCounters},
		{"TopicStats", testTopicStats},
		{"EventsPaging", testEventsPaging},
		{"Reopen", testReopen},
		{"Ping", testPing},
		{"SubscriptionCreate", testSubscriptionCreate},
		{"SubscriptionStart", testSubscriptionStart},
		{"SubscriptionCommit", testSubscriptionCommit},
		{"SubscriptionForeignCursor", testSubscriptionForeignCursor},
		{"SubscriptionLag", testSubscriptionLag},
		{"SubscriptionList", testSubscriptionList},
		{"SubscriptionDelete", testSubscriptionDelete},
		{"SubscriptionsSurviveReopen", testSubscriptionsSurviveReopen},
		{"SubscriptionCap", testSubscriptionCap},
		{"ConcurrentCommits", testConcurrentCommits},
		{"Expiry", testExpiry},
		{"LateDuplicateAfterExpiry", testLateDuplicateAfterExpiry},
		{"TopicRetention", testTopicRetention},
		{"ExpiryIsChunked", testExpiryIsChunked},
		{"ExpiryWithConcurrentAppends", testExpiryWithConcurrentAppends},
		{"RetentionSurvivesReopen", testRetentionSurvivesReopen},
		{"NewestCursorIsNotReused", testNewestCursorIsNotReused},
		{"FingerprintRetention", testFingerprintRetention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, newStore(t, nil))
		})
	}
	// The feed's tests open their stores themselves, some with a commit delay.
	feedTests := []struct {
		name string
		run  func(t *testing.T, newStore NewStore)
	}{
		{"FeedNeverSkips", testFeedNeverSkips},
		{"FeedOfTopics", testFeedOfTopics},
		{"CommittedWakesReaders", testCommittedWakesReaders},
		{"ForeignCursor", testForeignCursor},
		{"NewestCursorNeverSkips", testNewestCursorNeverSkips},
	}
	for _, tt := range feedTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, newStore)
		})
	}
}

// open opens the store and closes it when the test ends, before the location is removed
// (cleanups run last-registered first).
func open(t *testing.T, opener Opener) uts.Store {
	t.Helper()
	s, err := opener()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// baseTime has nanoseconds so that a backend keeping only microseconds fails.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// newEvent builds a valid event whose content depends on its key only, so that publishing
// the same key twice through newEvent is a retry, not a conflict.
func newEvent(topic, eventID string) uts.Event {
	payload, err := json.Marshal(map[string]string{"id": eventID, "topic": topic})
	if err != nil {
		panic(err)
	}
	return uts.Event{
		Topic:     topic,
		EventID:   eventID,
		Timestamp: baseTime,
		Source:    "storetest",
		Payload:   payload,
	}
}

func appendOK(t *testing.T, s uts.Store, events ...uts.Event) []uts.Outcome {
	t.Helper()
	outcomes, err := s.Append(t.Context(), events)
	if err != nil {
		t.Fatalf("Append(%d events): %v", len(events), err)
	}
	if len(outcomes) != len(events) {
		t.Fatalf("Append(%d events) returned %d outcomes", len(events), len(outcomes))
	}
	return outcomes
}

func wantOutcomes(t *testing.T, got []uts.Outcome, want ...uts.Outcome) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
}

func stats(t *testing.T, s uts.Store) uts.Stats {
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	// What is held and what expired always make up what was ever stored, as a whole and
	// per topic.
	if st.Stored+st.Expired != st.UniqueProcessed {
		t.Fatalf("stored %d + expired %d != unique %d", st.Stored, st.Expired, st.UniqueProcessed)
	}
	var stored, expired int64
	for _, ts := range st.Topics {
		if ts.Stored+ts.Expired != ts.Unique {
			t.Fatalf("topic %+v: stored + expired != unique", ts)
		}
		stored += ts.Stored
		expired += ts.Expired
	}
	if stored != st.Stored || expired != st.Expired {
		t.Fatalf("topics hold %d stored, %d expired; the store says %d, %d", stored, expired, st.Stored, st.Expired)
	}
	if st.DiskBytes <= 0 {
		t.Fatalf("DiskBytes = %d, want the store's size on disk", st.DiskBytes)
	}
	return st
}

func wantCounters(t *testing.T, s uts.Store, want uts.Counters) uts.Stats {
	t.Helper()
	st := stats(t, s)
	if st.Counters != want {
		t.Fatalf("counters = %+v, want %+v", st.Counters, want)
	}
	if c := st.Counters; c.Received != c.UniqueProcessed+c.DuplicateDropped+c.DeadLettered {
		t.Fatalf("counters do not add up: %+v", c)
	}
	return st
}

// maxPages bounds every paging loop, so a store whose cursor never advances fails instead
// of hanging.
const maxPages = 10_000

// allEvents reads every stored event of topic ("" for all) in processing order, page by page.
func allEvents(t *testing.T, s uts.Store, topic string) []uts.StoredEvent {
	t.Helper()
	// The feed may hold committed events back for a moment (on PostgreSQL, behind any
	// transaction in flight on the server, another test's included): read again, woken by
	// Committed, until it hands out as many as the counters say are stored.
	deadline := time.After(30 * time.Second)
	for {
		committed := s.Committed()
		want := storedCount(t, s, topic)
		all := readAll(t, s, topic)
		if len(all) >= want {
			return all
		}
		select {
		case <-committed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the feed hands out %d events of topic %q, the counters say %d are stored", len(all), topic, want)
		}
	}
}

// storedCount is how many events of topic ("" for all) the counters say are stored.
func storedCount(t *testing.T, s uts.Store, topic string) int {
	t.Helper()
	st := stats(t, s)
	if topic == "" {
		return int(st.Stored)
	}
	for _, ts := range st.Topics {
		if ts.Topic == topic {
			return int(ts.Stored)
		}
	}
	return 0
}

// readAll reads the feed of topic ("" for all) once from the start, page by page.
func readAll(t *testing.T, s uts.Store, topic string) []uts.StoredEvent {
	t.Helper()
	var all []uts.StoredEvent
	q := uts.EventQuery{Limit: 1000}
	if topic != "" {
		q.Topics = []string{topic}
	}
	for range maxPages {
		page, err := s.Events(t.Context(), q)
		if err != nil {
			t.Fatalf("Events(%+v): %v", q, err)
		}
		if len(page) == 0 {
			return all
		}
		if len(page) > q.Limit {
			t.Fatalf("Events(%+v) returned %d events", q, len(page))
		}
		for _, e := range page {
			if e.Cursor.Compare(q.After) <= 0 {
				t.Fatalf("Events(%+v) returned cursor %s, not after %s", q, e.Cursor, q.After)
			}
			q.After = e.Cursor
		}
		all = append(all, page...)
	}
	t.Fatalf("Events did not end after %d pages", maxPages)
	return nil
}

// sameEvent checks that a stored event is exactly the event that was appended.
func sameEvent(t *testing.T, got uts.StoredEvent, want uts.Event) {
	t.Helper()
	if got.Topic != want.Topic || got.EventID != want.EventID || got.Source != want.Source {
		t.Errorf("stored (%q, %q, source %q), want (%q, %q, source %q)",
			got.Topic, got.EventID, got.Source, want.Topic, want.EventID, want.Source)
	}
	if !got.Timestamp.Equal(want.Timestamp) || got.Timestamp.Location() != time.UTC {
		t.Errorf("%s/%s: timestamp = %s (%s), want %s in UTC", want.Topic, want.EventID,
			got.Timestamp.Format(time.RFC3339Nano), got.Timestamp.Location(), want.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("%s/%s: payload = %q, want %q", want.Topic, want.EventID, got.Payload, want.Payload)
	}
	if got.ProcessedAt.IsZero() || got.ProcessedAt.Location() != time.UTC {
		t.Errorf("%s/%s: processed_at = %v (%s), want a UTC time", want.Topic, want.EventID, got.ProcessedAt, got.ProcessedAt.Location())
	}
	if got.Cursor.Compare(uts.Cursor{}) <= 0 {
		t.Errorf("%s/%s: cursor = %s, want one after the start", want.Topic, want.EventID, got.Cursor)
	}
}

// sameEvents checks the stored events, in processing order, against the appended ones.
func sameEvents(t *testing.T, got []uts.StoredEvent, want ...uts.Event) {
	t.Helper()
	if len(got) != len(want) {
		keys := make([]uts.Key, len(got))
		for i, e := range got {
			keys[i] = e.Key()
		}
		t.Fatalf("stored %d events %v, want %d", len(got), keys, len(want))
	}
	for i := range got {
		sameEvent(t, got[i], want[i])
	}
}
