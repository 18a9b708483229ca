package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uts-events/uts"
)

// The subscriptions' tests: a subscription is a cursor the store keeps by name, created once,
// moved forward only (unless reset) however many callers commit at once, and counted
// against the events of its topics.

func createOK(t *testing.T, s uts.Store, spec uts.SubscriptionSpec) (uts.Subscription, bool) {
	t.Helper()
	sub, created, err := s.CreateSubscription(t.Context(), spec)
	if err != nil {
		t.Fatalf("CreateSubscription(%+v): %v", spec, err)
	}
	return sub, created
}

func subscriptionOK(t *testing.T, s uts.Store, name string) uts.Subscription {
	t.Helper()
	sub, err := s.Subscription(t.Context(), name, true)
	if err != nil {
		t.Fatalf("Subscription(%q): %v", name, err)
	}
	return sub
}

func commitOK(t *testing.T, s uts.Store, name string, c uts.Cursor, reset bool) uts.Subscription {
	t.Helper()
	sub, err := s.CommitSubscription(t.Context(), name, c, reset)
	if err != nil {
		t.Fatalf("CommitSubscription(%q, %s, reset %v): %v", name, c, reset, err)
	}
	if sub.Cursor != c {
		t.Fatalf("CommitSubscription(%q, %s) returned cursor %s", name, c, sub.Cursor)
	}
	return sub
}

func wantKind(t *testing.T, what string, err error, kind uts.Kind) {
	t.Helper()
	if err == nil || uts.KindOf(err) != kind {
		t.Fatalf("%s: error %v (kind %d), want kind %d", what, err, uts.KindOf(err), kind)
	}
}

// appendTopics stores n events of each topic, interleaved, and returns every stored event
// in feed order once all of them are readable.
func appendTopics(t *testing.T, s uts.Store, n int, topics ...string) []uts.StoredEvent {
	t.Helper()
	var batch []uts.Event
	for i := range n {
		for _, topic := range topics {
			batch = append(batch, newEvent(topic, fmt.Sprint(i)))
		}
	}
	appendOK(t, s, batch...)
	return readableEvents(t, s, int(stats(t, s).UniqueProcessed))
}

// readableEvents returns the feed, which must hand out want events: allEvents waits for
// the events the feed holds back for a moment.
func readableEvents(t *testing.T, s uts.Store, want int) []uts.StoredEvent {
	t.Helper()
	all := allEvents(t, s, "")
	if len(all) < want {
		t.Fatalf("the feed hands out %d events, want %d", len(all), want)
	}
	return all
}

func testSubscriptionCreate(t *testing.T, opener Opener) {
	s := open(t, opener)
	appendTopics(t, s, 2, "a")
	spec := uts.SubscriptionSpec{Name: "billing", Topics: []string{"b", "a", "b"}, Start: uts.StartEarliest}
	sub, created := createOK(t, s, spec)
	if !created || sub.Name != "billing" || !slices.Equal(sub.Topics, []string{"a", "b"}) || sub.Start != uts.StartEarliest ||
		!sub.Cursor.IsZero() || sub.Lag != 2 || sub.CreatedAt.IsZero() || sub.UpdatedAt.Before(sub.CreatedAt) {
		t.Fatalf("created %+v (created %v), want billing on [a b] from earliest at the start, lag 2", sub, created)
	}
	// The same spec, its topics in another order, finds it.
	again, created := createOK(t, s, uts.SubscriptionSpec{Name: "billing", Topics: []string{"a", "b"}, Start: uts.StartEarliest})
	if created || !again.CreatedAt.Equal(sub.CreatedAt) || again.Cursor != sub.Cursor {
		t.Fatalf("the same spec again: %+v (created %v), want the existing %+v", again, created, sub)
	}
	// No start means earliest.
	if _, created := createOK(t, s, uts.SubscriptionSpec{Name: "billing", Topics: []string{"a", "b"}}); created {
		t.Fatal("the spec without a start is earliest, the same spec: created anew")
	}
	for _, other := range []uts.SubscriptionSpec{
		{Name: "billing", Topics: []string{"a"}, Start: uts.StartEarliest},
		{Name: "billing", Start: uts.StartEarliest},
		{Name: "billing", Topics: []string{"a", "b"}, Start: uts.StartLatest},
	} {
		_, _, err := s.CreateSubscription(t.Context(), other)
		wantKind(t, fmt.Sprintf("CreateSubscription(%+v) over another spec", other), err, uts.KindConflict)
	}
	for _, bad := range []uts.SubscriptionSpec{
		{Name: ""},
		{Name: "a b"},
		{Name: "x", Start: "now"},
		{Name: "x", Topics: []string{""}},
	} {
		_, _, err := s.CreateSubscription(t.Context(), bad)
		wantKind(t, fmt.Sprintf("CreateSubscription(%+v)", bad), err, uts.KindInvalid)
	}
	if got := subscriptionOK(t, s, "billing"); !slices.Equal(got.Topics, []string{"a", "b"}) || got.Start != uts.StartEarliest {
		t.Fatalf("refused creates changed it: %+v", got)
	}
	if subs, err := s.ListSubscriptions(t.Context()); err != nil || len(subs) != 1 {
		t.Fatalf("ListSubscriptions = %+v, %v; want billing alone", subs, err)
	}
}

func testSubscriptionStart(t *testing.T, opener Opener) {
	s := open(t, opener)
	// On an empty store, latest is the start too.
	empty, _ := createOK(t, s, uts.SubscriptionSpec{Name: "empty", Start: uts.StartLatest})
	if !empty.Cursor.IsZero() || empty.Lag != 0 {
		t.Fatalf("latest on an empty store: %+v, want the start", empty)
	}
	stored := appendTopics(t, s, 3, "a", "b")
	earliest, _ := createOK(t, s, uts.SubscriptionSpec{Name: "earliest", Start: uts.StartEarliest})
	latest, _ := createOK(t, s, uts.SubscriptionSpec{Name: "latest", Topics: []string{"a"}, Start: uts.StartLatest})
	if !earliest.Cursor.IsZero() || earliest.Lag != 6 {
		t.Fatalf("earliest: %+v, want the start with lag 6", earliest)
	}
	if last := stored[len(stored)-1].Cursor; latest.Cursor != last || latest.Lag != 0 {
		t.Fatalf("latest: %+v, want cursor %s (the last event) with lag 0", latest, last)
	}
	appendOK(t, s, newEvent("a", "new"), newEvent("b", "new"))
	readableEvents(t, s, len(stored)+2)
	page, err := s.Events(t.Context(), uts.EventQuery{Topics: latest.Topics, After: latest.Cursor, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].Key() != (uts.Key{Topic: "a", EventID: "new"}) {
		t.Fatalf("after the latest cursor: %d events, want a/new alone", len(page))
	}
	if got := subscriptionOK(t, s, "latest"); got.Lag != 1 {
		t.Fatalf("latest's lag = %d, want 1", got.Lag)
	}
}

func testSubscriptionCommit(t *testing.T, opener Opener) {
	s := open(t, opener)
	stored := appendTopics(t, s, 4, "a")
	createOK(t, s, uts.SubscriptionSpec{Name: "sub", Topics: []string{"a"}})
	mid, last := stored[1].Cursor, stored[3].Cursor

	committed := commitOK(t, s, "sub", mid, false)
	if committed.Name != "sub" || !slices.Equal(committed.Topics, []string{"a"}) {
		t.Fatalf("commit returned %+v", committed)
	}
	if got := subscriptionOK(t, s, "sub"); got.Cursor != mid || got.Lag != 2 || got.UpdatedAt.Before(got.CreatedAt) {
		t.Fatalf("after committing %s: %+v, want it with lag 2", mid, got)
	}
	commitOK(t, s, "sub", mid, false) // the cursor it has: a no-op
	commitOK(t, s, "sub", last, false)

	_, err := s.CommitSubscription(t.Context(), "sub", mid, false)
	wantKind(t, "a commit backwards", err, uts.KindConflict)
	_, err = s.CommitSubscription(t.Context(), "sub", uts.Cursor{}, false)
	wantKind(t, "a commit back to the start", err, uts.KindConflict)
	if got := subscriptionOK(t, s, "sub"); got.Cursor != last || got.Lag != 0 {
		t.Fatalf("a refused commit moved it: %+v, want %s", got, last)
	}

	commitOK(t, s, "sub", mid, true)
	if got := subscriptionOK(t, s, "sub"); got.Cursor != mid || got.Lag != 2 {
		t.Fatalf("after a reset to %s: %+v", mid, got)
	}
	commitOK(t, s, "sub", uts.Cursor{}, true)
	if got := subscriptionOK(t, s, "sub"); !got.Cursor.IsZero() || got.Lag != 4 {
		t.Fatalf("after a reset to the start: %+v", got)
	}

	_, err = s.CommitSubscription(t.Context(), "nobody", mid, false)
	wantKind(t, "a commit of an unknown subscription", err, uts.KindNotFound)
	_, err = s.Subscription(t.Context(), "nobody", false)
	wantKind(t, "Subscription of an unknown name", err, uts.KindNotFound)
}

// testSubscriptionForeignCursor: a cursor past every stored event was never handed out.
func testSubscriptionForeignCursor(t *testing.T, opener Opener) {
	s := open(t, opener)
	stored := appendTopics(t, s, 2, "a")
	createOK(t, s, uts.SubscriptionSpec{Name: "sub"})
	last := stored[len(stored)-1].Cursor
	commitOK(t, s, "sub", stored[0].Cursor, false)
	for _, c := range []uts.Cursor{
		{Tx: last.Tx, Seq: last.Seq + 1000},
		{Tx: last.Tx + 1<<40, Seq: 1},
		{Tx: 1<<64 - 1, Seq: 1},
	} {
		for _, reset := range []bool{false, true} {
			_, err := s.CommitSubscription(t.Context(), "sub", c, reset)
			wantKind(t, fmt.Sprintf("a commit of cursor %s (reset %v)", c, reset), err, uts.KindInvalid)
		}
	}
	if got := subscriptionOK(t, s, "sub"); got.Cursor != stored[0].Cursor {
		t.Fatalf("a foreign cursor moved it: %+v", got)
	}
}

func testSubscriptionLag(t *testing.T, opener Opener) {
	s := open(t, opener)
	stored := appendTopics(t, s, 5, "a", "b", "c") // a0 b0 c0 a1 b1 c1 ...
	for _, c := range []struct {
		topics []string
		lag    int64
	}{{nil, 15}, {[]string{"a"}, 5}, {[]string{"a", "b"}, 10}, {[]string{"c", "z"}, 5}, {[]string{"z"}, 0}} {
		name := fmt.Sprintf("sub-%d", len(c.topics))
		if len(c.topics) > 0 {
			name += "-" + c.topics[0]
		}
		sub, _ := createOK(t, s, uts.SubscriptionSpec{Name: name, Topics: c.topics})
		if sub.Lag != c.lag {
			t.Errorf("%v: lag %d, want %d", c.topics, sub.Lag, c.lag)
		}
		// Past the first six events (two of each topic), each topic has three left.
		commitOK(t, s, name, stored[5].Cursor, false)
		want := c.lag * 3 / 5
		if got := subscriptionOK(t, s, name); got.Lag != want {
			t.Errorf("%v past %s: lag %d, want %d", c.topics, stored[5].Cursor, got.Lag, want)
		}
		if got, err := s.Subscription(t.Context(), name, false); err != nil || got.Lag != 0 || got.Cursor != stored[5].Cursor {
			t.Errorf("%v without counting: %+v, %v; want the cursor and lag 0", c.topics, got, err)
		}
	}
}

func testSubscriptionList(t *testing.T, opener Opener) {
	s := open(t, opener)
	if subs, err := s.ListSubscriptions(t.Context()); err != nil || subs == nil || len(subs) != 0 {
		t.Fatalf("ListSubscriptions of none = %#v, %v; want an empty list", subs, err)
	}
	stored := appendTopics(t, s, 2, "a", "b")
	// Byte order: upper case before lower case, '-' before '.' before digits.
	names := []string{"b", "B", "a.1", "a-1", "a", "a_1", "Z9"}
	for _, name := range names {
		createOK(t, s, uts.SubscriptionSpec{Name: name, Topics: []string{"b"}})
	}
	commitOK(t, s, "a", stored[1].Cursor, false)
	subs, err := s.ListSubscriptions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var got []string
	for _, sub := range subs {
		got = append(got, sub.Name)
		want := int64(2)
		if sub.Name == "a" {
			want = 1
		}
		if sub.Lag != want {
			t.Errorf("%s: lag %d, want %d", sub.Name, sub.Lag, want)
		}
	}
	if !slices.Equal(got, names) {
		t.Fatalf("listed %v, want %v", got, names)
	}
}

func testSubscriptionDelete(t *testing.T, opener Opener) {
	s := open(t, opener)
	stored := appendTopics(t, s, 1, "a")
	createOK(t, s, uts.SubscriptionSpec{Name: "gone", Topics: []string{"a"}})
	createOK(t, s, uts.SubscriptionSpec{Name: "kept"})
	commitOK(t, s, "gone", stored[0].Cursor, false)
	if err := s.DeleteSubscription(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Subscription(t.Context(), "gone", true)
	wantKind(t, "Subscription after its deletion", err, uts.KindNotFound)
	wantKind(t, "a second delete", s.DeleteSubscription(t.Context(), "gone"), uts.KindNotFound)
	_, err = s.CommitSubscription(t.Context(), "gone", stored[0].Cursor, false)
	wantKind(t, "a commit after the deletion", err, uts.KindNotFound)
	if subs, err := s.ListSubscriptions(t.Context()); err != nil || len(subs) != 1 || subs[0].Name != "kept" {
		t.Fatalf("ListSubscriptions = %+v, %v; want kept alone", subs, err)
	}
	// The name is free again, from the start, for another spec.
	sub, created := createOK(t, s, uts.SubscriptionSpec{Name: "gone"})
	if !created || !sub.Cursor.IsZero() || len(sub.Topics) != 0 {
		t.Fatalf("recreated %+v (created %v), want a new subscription at the start", sub, created)
	}
}

func testSubscriptionsSurviveReopen(t *testing.T, opener Opener) {
	s := open(t, opener)
	stored := appendTopics(t, s, 3, "a", "b")
	createOK(t, s, uts.SubscriptionSpec{Name: "durable", Topics: []string{"b"}})
	want := commitOK(t, s, "durable", stored[3].Cursor, false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, opener)
	got := subscriptionOK(t, s2, "durable")
	if got.Cursor != want.Cursor || !slices.Equal(got.Topics, []string{"b"}) || !got.UpdatedAt.Equal(want.UpdatedAt) || got.Lag != 1 {
		t.Fatalf("after reopening: %+v, want %+v with lag 1", got, want)
	}
	commitOK(t, s2, "durable", stored[5].Cursor, false)
}

// testSubscriptionCap: past MaxSubscriptions a create is refused, however many race for the
// last places.
func testSubscriptionCap(t *testing.T, opener Opener) {
	s := open(t, opener)
	const workers = 8
	var created atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < uts.MaxSubscriptions+workers; i += workers {
				_, ok, err := s.CreateSubscription(t.Context(), uts.SubscriptionSpec{Name: fmt.Sprintf("s%04d", i)})
				switch {
				case err == nil && ok:
					created.Add(1)
				case uts.KindOf(err) != uts.KindConflict:
					errs <- fmt.Errorf("create s%04d: %v (created %v)", i, err, ok)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := created.Load(); n != uts.MaxSubscriptions {
		t.Fatalf("created %d subscriptions, want exactly %d", n, uts.MaxSubscriptions)
	}
	// An existing one is still found, and a deletion frees a place.
	if _, ok := createOK(t, s, uts.SubscriptionSpec{Name: "s0000"}); ok {
		t.Fatal("s0000 created twice")
	}
	subs, err := s.ListSubscriptions(t.Context())
	if err != nil || len(subs) != uts.MaxSubscriptions {
		t.Fatalf("ListSubscriptions: %d, %v", len(subs), err)
	}
	if err := s.DeleteSubscription(t.Context(), subs[0].Name); err != nil {
		t.Fatal(err)
	}
	createOK(t, s, uts.SubscriptionSpec{Name: "late"})
}

// testConcurrentCommits: callers committing at once, each in its own order, never move the
// cursor backwards; it ends at the furthest cursor committed.
func testConcurrentCommits(t *testing.T, opener Opener) {
	s := open(t, opener)
	stored := appendTopics(t, s, 20, "a", "b") // 40 cursors
	createOK(t, s, uts.SubscriptionSpec{Name: "race"})
	const workers = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	var furthest uts.Cursor // the furthest cursor a commit succeeded with
	stop := make(chan struct{})
	failures := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for range 25 {
				c := stored[rng.IntN(len(stored))].Cursor
				sub, err := s.CommitSubscription(t.Context(), "race", c, false)
				switch {
				case err == nil && sub.Cursor != c:
					failures <- fmt.Errorf("commit of %s returned %s", c, sub.Cursor)
					return
				case err != nil && uts.KindOf(err) != uts.KindConflict:
					failures <- fmt.Errorf("commit of %s: %v", c, err)
					return
				case err == nil:
					mu.Lock()
					if c.Compare(furthest) > 0 {
						furthest = c
					}
					mu.Unlock()
				}
			}
		})
	}
	watched := make(chan struct{})
	go func() { // a reader: the cursor it sees never goes back
		defer close(watched)
		var seen uts.Cursor
		for {
			select {
			case <-stop:
				return
			default:
			}
			sub, err := s.Subscription(t.Context(), "race", false)
			if err != nil {
				failures <- err
				return
			}
			if sub.Cursor.Compare(seen) < 0 {
				failures <- fmt.Errorf("the cursor went back from %s to %s", seen, sub.Cursor)
				return
			}
			seen = sub.Cursor
		}
	}()
	wg.Wait()
	close(stop)
	<-watched
	close(failures)
	for err := range failures {
		t.Fatal(err)
	}
	// Every worker's commits were forward or refused: the cursor is the furthest committed,
	// and committing it again is a no-op while anything before it is refused.
	final := subscriptionOK(t, s, "race")
	if final.Cursor != furthest {
		t.Fatalf("the cursor ended at %s, want the furthest committed, %s", final.Cursor, furthest)
	}
	_, err := s.CommitSubscription(t.Context(), "race", final.Cursor, false)
	if err != nil {
		t.Fatalf("recommitting %s: %v", final.Cursor, err)
	}
	for _, e := range stored {
		if e.Cursor.Compare(final.Cursor) < 0 {
			_, err := s.CommitSubscription(t.Context(), "race", e.Cursor, false)
			wantKind(t, fmt.Sprintf("commit of %s behind %s", e.Cursor, final.Cursor), err, uts.KindConflict)
			break
		}
	}
}
