package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// testFeedNeverSkips is the feed's promise under load: writers whose transactions stay open
// for random times, so that they commit out of the order in which they drew their sequence
// numbers, and one reader tailing the feed with After, waking only on Committed. The reader
// must see every stored event exactly once, in the order a full read gives afterwards.
func testFeedNeverSkips(t *testing.T, newStore NewStore) {
	const (
		writers = 8
		batches = 25 // per writer
		keys    = 40 // per topic: later batches repeat keys, which must not show up twice
	)
	maxDelay := 15 * time.Millisecond
	s := open(t, newStore(t, func() time.Duration { return rand.N(maxDelay) }))

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored = map[uts.Key]bool{} // what the writers were told is new
		failed = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range batches {
				batch := make([]uts.Event, 1+rng.IntN(12))
				for i := range batch {
					batch[i] = newEvent(fmt.Sprintf("feed-%d", rng.IntN(3)), fmt.Sprint(rng.IntN(keys*writers)))
				}
				outcomes, err := s.Append(t.Context(), batch)
				if err != nil {
					failed <- err
					return
				}
				mu.Lock()
				for i, o := range outcomes {
					if o == uts.OutcomeNew {
						stored[batch[i].Key()] = true
					}
				}
				mu.Unlock()
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	// The reader: small pages of random size, so that it often reads right behind the
	// writers, and no timer but the test's deadline.
	deadline := time.After(time.Minute)
	var caughtUp <-chan time.Time // once the writers are done: how long the last reads may take
	var got []uts.StoredEvent
	var after uts.Cursor
	done := false
	for pages := 0; pages < maxPages; pages++ {
		committed := s.Committed()
		page, err := s.Events(t.Context(), uts.EventQuery{After: after, Limit: 1 + rand.IntN(20)})
		if err != nil {
			t.Fatalf("Events(after %s): %v", after, err)
		}
		got = append(got, page...)
		if len(page) > 0 {
			after = page[len(page)-1].Cursor
			continue
		}
		if done {
			mu.Lock()
			all := len(got) >= len(stored)
			mu.Unlock()
			if all {
				break
			}
		}
		select {
		case <-committed:
		case <-writersDone:
			writersDone = nil // read once more after the last commit
			done = true
			caughtUp = time.After(5 * time.Second)
		case <-caughtUp:
			t.Errorf("the reader found no more events 5 s after the last commit")
			pages = maxPages
		case err := <-failed:
			t.Fatalf("Append: %v", err)
		case <-deadline:
			t.Fatalf("the reader has %d of %d events after a minute: a commit did not wake it, or it skipped some", len(got), len(stored))
		}
	}
	select {
	case err := <-failed:
		t.Fatalf("Append: %v", err)
	default:
	}

	seen := map[uts.Key]int{}
	for _, e := range got {
		seen[e.Key()]++
		if seen[e.Key()] == 2 {
			t.Errorf("the reader saw %v twice", e.Key())
		}
	}
	for k := range stored {
		if seen[k] == 0 {
			t.Errorf("the reader never saw %v", k)
		}
	}
	if len(seen) != len(stored) {
		t.Errorf("the reader saw %d keys, the writers stored %d", len(seen), len(stored))
	}
	// The order is stable: a full read afterwards gives the same sequence.
	full := allEvents(t, s, "")
	if len(full) != len(got) {
		t.Fatalf("a full read gives %d events, the tailing reader got %d", len(full), len(got))
	}
	for i := range full {
		if full[i].Key() != got[i].Key() || full[i].Cursor != got[i].Cursor {
			t.Fatalf("event %d: the tailing reader got %v at %s, a full read %v at %s",
				i, got[i].Key(), got[i].Cursor, full[i].Key(), full[i].Cursor)
		}
	}
}

// testFeedOfTopics reads the feed of several topics at once, and of one.
func testFeedOfTopics(t *testing.T, newStore NewStore) {
	s := open(t, newStore(t, nil))
	a1, b1, c1, a2, c2 := newEvent("a", "1"), newEvent("b", "1"), newEvent("c", "1"), newEvent("a", "2"), newEvent("c", "2")
	appendOK(t, s, a1, b1)
	appendOK(t, s, c1, a2)
	appendOK(t, s, c2)
	page := func(q uts.EventQuery) []uts.StoredEvent {
		t.Helper()
		events, err := s.Events(t.Context(), q)
		if err != nil {
			t.Fatalf("Events(%+v): %v", q, err)
		}
		return events
	}
	ac := page(uts.EventQuery{Topics: []string{"c", "a"}, Limit: 10})
	sameEvents(t, ac, a1, c1, a2, c2)
	sameEvents(t, page(uts.EventQuery{Topics: []string{"a", "c"}, After: ac[1].Cursor, Limit: 1}), a2)
	sameEvents(t, page(uts.EventQuery{Topics: []string{"b", "zz"}, Limit: 10}), b1)
}

// testCommittedWakesReaders: a reader that took Committed before reading is woken by the
// next Append that stores something, and not by one that stores nothing new.
func testCommittedWakesReaders(t *testing.T, newStore NewStore) {
	s := open(t, newStore(t, nil))
	a := newEvent("wake", "a")
	appendOK(t, s, a)
	idle := s.Committed()
	appendOK(t, s, a) // a duplicate: nothing new to read
	select {
	case <-idle:
		t.Error("an Append of only a duplicate woke the readers")
	case <-time.After(50 * time.Millisecond):
	}
	appendOK(t, s, newEvent("wake", "b"))
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("an Append of a new event did not wake the readers")
	}
}

// testForeignCursor: a cursor that is not a position of this store is refused with
// KindInvalid, never read as some other position.
func testForeignCursor(t *testing.T, newStore NewStore) {
	s := open(t, newStore(t, nil))
	appendOK(t, s, newEvent("foreign", "1"))
	foreign, err := uts.ParseCursor("18446744073709551615-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Events(t.Context(), uts.EventQuery{After: foreign, Limit: 10})
	if uts.KindOf(err) != uts.KindInvalid {
		t.Fatalf("Events(after %s) = %v, want an error of KindInvalid", foreign, err)
	}
}

// testNewestCursorNeverSkips: the cursor of a newest-first page is a place to follow the feed
// from, as a reader that starts at the latest event does. An event whose transaction was in
// flight when the page was read must come after that cursor, not behind it.
func testNewestCursorNeverSkips(t *testing.T, newStore NewStore) {
	var appends atomic.Int32
	s := open(t, newStore(t, func() time.Duration {
		if appends.Add(1) == 1 {
			// The first append stays in flight while the page is read. Shorter than the
			// feed's settle on PostgreSQL (250 ms), which the tests reading beside this one
			// wait out: the held transaction holds back every reader of the server.
			return 150 * time.Millisecond
		}
		return 0
	}))
	slow, fast := newEvent("newest", "slow"), newEvent("newest", "fast")
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(context.WithoutCancel(t.Context()), []uts.Event{slow})
		done <- err
	}()
	// Until the slow append has run its statement; an append that fails instead ends the
	// test, and so does a store that never gets there.
	for deadline := time.Now().Add(30 * time.Second); appends.Load() == 0; time.Sleep(time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("the slow Append ended before its statement ran: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow Append did not run its statement within 30 s")
		}
	}
	time.Sleep(50 * time.Millisecond)
	appendOK(t, s, fast)
	// The newest-first page: the events at and before its first cursor; the feed after
	// that cursor must hold every other one.
	newest, err := s.Events(t.Context(), uts.EventQuery{Newest: true, Limit: 10})
	if err != nil {
		t.Fatalf("Events(newest): %v", err)
	}
	var from uts.Cursor
	var seen []string
	if len(newest) > 0 {
		from = newest[0].Cursor
	}
	for _, e := range newest {
		seen = append(seen, e.EventID)
	}
	if err := <-done; err != nil {
		t.Fatalf("slow Append: %v", err)
	}
	for deadline := time.Now().Add(3 * time.Second); len(seen) < 2 && time.Now().Before(deadline); {
		events, err := s.Events(t.Context(), uts.EventQuery{After: from, Limit: 10})
		if err != nil {
			t.Fatalf("Events(after %s): %v", from, err)
		}
		for _, e := range events {
			seen = append(seen, e.EventID)
			from = e.Cursor
		}
		if len(events) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !slices.Contains(seen, "slow") {
		t.Errorf("the newest-first page and the feed after its first cursor %s hold %q: the event in flight was skipped", from, seen)
	}
}
