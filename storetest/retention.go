package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// The retention tests expire with a "now" ahead of the clock rather than by waiting: an
// event processed a moment ago is two hours old at inAWhile, so a retention of an hour
// expires it and one of three hours does not.
const hour = time.Hour

func inAWhile() time.Time { return time.Now().Add(2 * hour) }

// ExpireAll calls Expire until it says nothing more is due, and returns the sum; tests of
// other packages expire with it too.
func ExpireAll(t testing.TB, s uts.Store, r uts.Retention, now time.Time, limit int) uts.Expiry {
	t.Helper()
	var sum uts.Expiry
	for range maxPages {
		e, err := s.Expire(t.Context(), r, now, limit)
		if err != nil {
			t.Fatalf("Expire(%s, limit %d): %v", r, limit, err)
		}
		sum.Events += e.Events
		sum.Fingerprints += e.Fingerprints
		if !e.More {
			return sum
		}
	}
	t.Fatalf("Expire still had more after %d calls", maxPages)
	return sum
}

func expiredThrough(t *testing.T, s uts.Store, topics ...string) uts.Cursor {
	t.Helper()
	c, err := s.ExpiredThrough(t.Context(), topics)
	if err != nil {
		t.Fatalf("ExpiredThrough(%q): %v", topics, err)
	}
	return c
}

func testExpiry(t *testing.T, opener Opener) {
	s := open(t, opener)
	r := uts.Retention{Events: hour}
	if got := expiredThrough(t, s); !got.IsZero() {
		t.Fatalf("ExpiredThrough of a new store = %s, want the zero cursor", got)
	}
	if e := ExpireAll(t, s, r, inAWhile(), 100); e != (uts.Expiry{}) {
		t.Fatalf("Expire of an empty store = %+v", e)
	}

	old := []uts.Event{newEvent("t", "1"), newEvent("t", "2"), newEvent("u", "1")}
	appendOK(t, s, old...)
	stored := allEvents(t, s, "")
	// Nothing is due yet: an hour has not passed.
	if e := ExpireAll(t, s, r, time.Now(), 100); e.Events != 0 {
		t.Fatalf("Expire before the retention passed deleted %d events", e.Events)
	}
	if e := ExpireAll(t, s, uts.Retention{}, inAWhile(), 100); e.Events != 0 {
		t.Fatalf("Expire with retention for ever deleted %d events", e.Events)
	}

	if e := ExpireAll(t, s, r, inAWhile(), 100); e.Events != 3 || e.Fingerprints != 0 {
		t.Fatalf("Expire = %+v, want 3 events and no fingerprint", e)
	}
	if got := readAll(t, s, ""); len(got) != 0 {
		t.Fatalf("the feed still hands out %d expired events", len(got))
	}
	newest, err := s.Events(t.Context(), uts.EventQuery{Newest: true, Limit: 10})
	if err != nil || len(newest) != 0 {
		t.Fatalf("newest first after expiry: %d events, %v; want none", len(newest), err)
	}
	st := wantCounters(t, s, uts.Counters{Received: 3, UniqueProcessed: 3})
	if st.Stored != 0 || st.Expired != 3 {
		t.Fatalf("stored %d, expired %d; want 0 and 3", st.Stored, st.Expired)
	}
	wantTopics(t, st,
		uts.TopicStats{Topic: "t", Unique: 2, Expired: 2},
		uts.TopicStats{Topic: "u", Unique: 1, Expired: 1})

	// A reader's cursor below the expired events learns that it lost them.
	last := stored[len(stored)-1].Cursor
	if got := expiredThrough(t, s); got != last {
		t.Fatalf("ExpiredThrough() = %s, want the last expired cursor %s", got, last)
	}
	for _, topic := range []string{"t", "u"} {
		var want uts.Cursor
		for _, e := range stored {
			if e.Topic == topic {
				want = e.Cursor
			}
		}
		if got := expiredThrough(t, s, topic); got != want {
			t.Fatalf("ExpiredThrough(%q) = %s, want %s", topic, got, want)
		}
	}
	if got := expiredThrough(t, s, "other"); !got.IsZero() {
		t.Fatalf("ExpiredThrough of a topic with nothing expired = %s", got)
	}

	// A new event is held, after every expired one, and the next page from an old cursor
	// starts at it.
	fresh := newEvent("t", "3")
	wantOutcomes(t, appendOK(t, s, fresh), newEv)
	if e := ExpireAll(t, s, r, time.Now(), 100); e.Events != 0 {
		t.Fatalf("Expire deleted %d events younger than the retention", e.Events)
	}
	page, err := s.Events(t.Context(), uts.EventQuery{After: stored[0].Cursor, Limit: 10})
	if err != nil {
		t.Fatalf("Events after an expired cursor: %v", err)
	}
	sameEvents(t, page, fresh)
	if page[0].Cursor.Compare(last) <= 0 {
		t.Fatalf("a new event's cursor %s is not after the expired %s", page[0].Cursor, last)
	}
	sameEvents(t, allEvents(t, s, ""), fresh)
}

func testLateDuplicateAfterExpiry(t *testing.T, opener Opener) {
	s := open(t, opener)
	a, b := newEvent("t", "a"), newEvent("t", "b")
	appendOK(t, s, a, b)
	ExpireAll(t, s, uts.Retention{Events: hour}, inAWhile(), 100)

	changed := a
	changed.Payload = []byte(`{"changed":true}`)
	c := newEvent("t", "c")
	// The payloads are gone, the identities are not: a retry is a duplicate, a changed
	// event a conflict, and neither is stored again.
	wantOutcomes(t, appendOK(t, s, a, changed, c, b, c), duplicate, conflict, newEv, duplicate, duplicate)
	sameEvents(t, allEvents(t, s, ""), c)
	st := wantCounters(t, s, uts.Counters{Received: 2 + 5, UniqueProcessed: 3, DuplicateDropped: 4, DuplicateConflicts: 1})
	wantTopics(t, st, uts.TopicStats{Topic: "t", Unique: 3, Stored: 1, Expired: 2, Duplicates: 4, Conflicts: 1})
	if hash, err := s.StoredHash(t.Context(), a.Key()); err != nil || hash != "" {
		t.Fatalf("StoredHash of an expired event = %q, %v; want \"\": nothing is stored", hash, err)
	}
}

func testTopicRetention(t *testing.T, opener Opener) {
	s := open(t, opener)
	short, long, other := newEvent("short", "1"), newEvent("long", "1"), newEvent("other", "1")
	appendOK(t, s, short, long, other)

	// Only "short" expires: every other topic is kept for ever.
	r := uts.Retention{Topics: map[string]time.Duration{"short": hour}}
	if e := ExpireAll(t, s, r, inAWhile(), 100); e.Events != 1 {
		t.Fatalf("Expire = %+v, want 1 event", e)
	}
	sameEvents(t, allEvents(t, s, ""), long, other)

	// A topic's own retention can be longer than the rest's, or for ever.
	r = uts.Retention{Events: hour, Topics: map[string]time.Duration{"long": 3 * hour, "forever": 0}}
	kept := newEvent("forever", "1")
	appendOK(t, s, kept)
	if e := ExpireAll(t, s, r, inAWhile(), 100); e.Events != 1 {
		t.Fatalf("Expire = %+v, want 1 event (other)", e)
	}
	sameEvents(t, allEvents(t, s, ""), long, kept)
	if e := ExpireAll(t, s, r, time.Now().Add(4*hour), 100); e.Events != 1 {
		t.Fatalf("Expire four hours on = %+v, want 1 event (long)", e)
	}
	sameEvents(t, allEvents(t, s, ""), kept)
	st := stats(t, s)
	wantTopics(t, st,
		uts.TopicStats{Topic: "forever", Unique: 1, Stored: 1},
		uts.TopicStats{Topic: "long", Unique: 1, Expired: 1},
		uts.TopicStats{Topic: "other", Unique: 1, Expired: 1},
		uts.TopicStats{Topic: "short", Unique: 1, Expired: 1})
	if got, want := expiredThrough(t, s, "forever"), (uts.Cursor{}); got != want {
		t.Fatalf("ExpiredThrough(forever) = %s, want none", got)
	}
}

func testExpiryIsChunked(t *testing.T, opener Opener) {
	s := open(t, opener)
	const n, limit = 30, 10
	events := make([]uts.Event, n)
	for i := range events {
		events[i] = newEvent("t", fmt.Sprint(i))
	}
	appendOK(t, s, events...)
	r := uts.Retention{Events: hour}
	first, err := s.Expire(t.Context(), r, inAWhile(), limit)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if first.Events < 1 || (first.Events < n && !first.More) {
		t.Fatalf("first Expire(limit %d) = %+v: it must delete some and say when more is due", limit, first)
	}
	rest := ExpireAll(t, s, r, inAWhile(), limit)
	if first.Events+rest.Events != n {
		t.Fatalf("Expire deleted %d + %d events, want %d", first.Events, rest.Events, n)
	}
	if st := stats(t, s); st.Stored != 0 || st.Expired != n {
		t.Fatalf("stored %d, expired %d; want 0 and %d", st.Stored, st.Expired, n)
	}
}

// testExpiryWithConcurrentAppends expires while writers append new keys and retries of old
// ones and a reader follows the feed: every key is stored once, the reader sees no event
// twice and none out of order, the counts add up, and after it all every key is still a
// duplicate.
func testExpiryWithConcurrentAppends(t *testing.T, opener Opener) {
	s := open(t, opener)
	const writers, batches, batch = 4, 15, 20
	r := uts.Retention{Events: hour}
	var (
		wg      sync.WaitGroup
		done    = make(chan struct{})
		errs    = make(chan error, writers+2)
		allKeys []uts.Event
	)
	for w := range writers {
		for b := range batches {
			for i := range batch {
				allKeys = append(allKeys, newEvent(fmt.Sprintf("t%d", w%2), fmt.Sprintf("w%d-b%d-%d", w, b, i)))
			}
		}
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				start := (w*batches + b) * batch
				events := allKeys[start : start+batch]
				if b > 0 { // a retry of the previous batch's first half, which may have expired already
					events = append(events[:batch:batch], allKeys[start-batch:start-batch/2]...)
				}
				if _, err := s.Append(t.Context(), events); err != nil {
					errs <- fmt.Errorf("append: %w", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the expirer, in small chunks
		defer wg.Done()
		for range 1000 {
			if _, err := s.Expire(t.Context(), r, inAWhile(), 7); err != nil {
				errs <- fmt.Errorf("expire: %w", err)
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	seen := make(chan map[uts.Key]int, 1)
	go func() { // the reader
		counts := make(map[uts.Key]int)
		defer func() { seen <- counts }()
		var after uts.Cursor
		for range 100_000 {
			page, err := s.Events(t.Context(), uts.EventQuery{After: after, Limit: 13})
			if err != nil {
				errs <- fmt.Errorf("read: %w", err)
				return
			}
			for _, e := range page {
				if e.Cursor.Compare(after) <= 0 {
					errs <- fmt.Errorf("the feed went back from %s to %s", after, e.Cursor)
					return
				}
				after = e.Cursor
				counts[e.Key()]++
			}
			if len(page) == 0 {
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}
	}()
	waitWriters := make(chan struct{})
	go func() { wg.Wait(); close(waitWriters) }()
	// The writers end on their own; the expirer and the reader when told.
	deadline := time.After(60 * time.Second)
	func() {
		for {
			select {
			case err := <-errs:
				close(done)
				t.Fatal(err)
			case <-time.After(50 * time.Millisecond):
				st := stats(t, s)
				if st.UniqueProcessed == int64(len(allKeys)) {
					close(done)
					return
				}
			case <-deadline:
				close(done)
				t.Fatal("the writers did not finish within a minute")
			}
		}
	}()
	<-waitWriters
	counts := <-seen
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for key, n := range counts {
		if n > 1 {
			t.Fatalf("the reader saw %v %d times", key, n)
		}
	}

	ExpireAll(t, s, r, inAWhile(), 1000)
	st := stats(t, s)
	if st.UniqueProcessed != int64(len(allKeys)) || st.Stored != 0 || st.Expired != int64(len(allKeys)) {
		t.Fatalf("unique %d, stored %d, expired %d; want %d, 0, %d", st.UniqueProcessed, st.Stored, st.Expired, len(allKeys), len(allKeys))
	}
	if c := st.Counters; c.Received != c.UniqueProcessed+c.DuplicateDropped || c.DuplicateConflicts != 0 {
		t.Fatalf("counters do not add up: %+v", c)
	}
	// Every identity outlived its payload.
	outcomes := appendOK(t, s, allKeys...)
	for i, o := range outcomes {
		if o != duplicate {
			t.Fatalf("%v after expiry: %s, want duplicate", allKeys[i].Key(), o)
		}
	}
}

func testRetentionSurvivesReopen(t *testing.T, opener Opener) {
	first, err := opener()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	a, b := newEvent("t", "a"), newEvent("u", "b")
	appendOK(t, first, a, b)
	ExpireAll(t, first, uts.Retention{Topics: map[string]time.Duration{"t": hour}}, inAWhile(), 100)
	before := stats(t, first)
	through := expiredThrough(t, first)
	if err := first.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}

	s := open(t, opener)
	if after := stats(t, s); !sameStats(after, before) {
		t.Fatalf("stats after reopen = %+v, before = %+v", after, before)
	}
	if got := expiredThrough(t, s); got != through || got.IsZero() {
		t.Fatalf("ExpiredThrough after reopen = %s, before = %s", got, through)
	}
	c := newEvent("t", "c")
	wantOutcomes(t, appendOK(t, s, a, c), duplicate, newEv)
	sameEvents(t, allEvents(t, s, ""), b, c)
	// A cursor is never handed out twice: the new event sorts after the expired one even
	// though the store was reopened with nothing newer than b held.
	if got := allEvents(t, s, "t"); got[0].Cursor.Compare(through) <= 0 {
		t.Fatalf("new event's cursor %s is not after the expired %s", got[0].Cursor, through)
	}
}

// testNewestCursorIsNotReused expires the newest event, reopens, and appends: the new
// event's cursor must come after the expired one, or a reader that had read up to the
// expired event would skip it.
func testNewestCursorIsNotReused(t *testing.T, opener Opener) {
	first, err := opener()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	appendOK(t, first, newEvent("t", "a"), newEvent("t", "b"))
	read := allEvents(t, first, "")
	ExpireAll(t, first, uts.Retention{Events: hour}, inAWhile(), 100)
	if err := first.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	s := open(t, opener)
	appendOK(t, s, newEvent("t", "c"))
	page, err := s.Events(t.Context(), uts.EventQuery{After: read[1].Cursor, Limit: 10})
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	if len(page) != 1 || page[0].EventID != "c" {
		t.Fatalf("after the expired newest cursor %s: %d events, want c", read[1].Cursor, len(page))
	}
}

func testFingerprintRetention(t *testing.T, opener Opener) {
	s := open(t, opener)
	r := uts.Retention{Events: hour, Fingerprints: 3 * hour}
	a := newEvent("t", "a")
	appendOK(t, s, a)
	if e := ExpireAll(t, s, r, inAWhile(), 100); e.Events != 1 || e.Fingerprints != 0 {
		t.Fatalf("Expire two hours on = %+v, want the event and no fingerprint", e)
	}
	wantOutcomes(t, appendOK(t, s, a), duplicate)
	if e := ExpireAll(t, s, r, time.Now().Add(4*hour), 100); e.Fingerprints != 1 {
		t.Fatalf("Expire four hours on = %+v, want the fingerprint", e)
	}
	// Past the deduplication window the key is new again.
	wantOutcomes(t, appendOK(t, s, a), newEv)
	sameEvents(t, allEvents(t, s, ""), a)
	wantCounters(t, s, uts.Counters{Received: 3, UniqueProcessed: 2, DuplicateDropped: 1})
}
