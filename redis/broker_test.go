package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/brokertest"
	"github.com/uts-events/uts/internal/testenv"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 15 * time.Second

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) uts.Broker {
		// Many deliveries, so the suite's failing commits are retried, never dead-lettered.
		return openTest(t, Options{ClaimIdle: 200 * time.Millisecond, Block: 100 * time.Millisecond, MaxDeliveries: 1000})
	})
}

// TestConformanceWorkers holds several consume loops in one broker to the same suite.
func TestConformanceWorkers(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) uts.Broker {
		return openTest(t, Options{ClaimIdle: 200 * time.Millisecond, Block: 100 * time.Millisecond, MaxDeliveries: 1000, Workers: 3})
	})
}

// openTest opens a broker on the shared Redis under a key prefix of its own, removed at
// the end of the test. A zero opts.KeyPrefix gets a fresh one.
func openTest(t testing.TB, opts Options) *Broker {
	t.Helper()
	return openAt(t, testenv.RedisURL(t), opts)
}

func openAt(t testing.TB, url string, opts Options) *Broker {
	t.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = testenv.RedisPrefix(t, url)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.ClaimIdle == 0 {
		opts.ClaimIdle = 200 * time.Millisecond
	}
	if opts.Block == 0 {
		opts.Block = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	b, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// newEvents returns n distinct events whose ids start with tag.
func newEvents(tag string, n int) []uts.Event {
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	events := make([]uts.Event, n)
	for i := range events {
		events[i] = uts.Event{
			Topic:     "redistest",
			EventID:   fmt.Sprintf("%s-%d", tag, i),
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			Source:    "redistest",
			Payload:   json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		}
	}
	return events
}

func publish(t *testing.T, b *Broker, events []uts.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	receipt, err := b.Publish(ctx, events)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if receipt.Committed {
		t.Fatalf("Publish receipt says Committed; the redis broker only queues")
	}
}

// store is the tests' commit func: it keeps each key once and records every batch.
type store struct {
	mu      sync.Mutex
	stored  map[uts.Key]bool
	batches [][]uts.Event
	// fail, when set, decides the error of a batch before anything of it is stored.
	fail func(events []uts.Event) error
}

func newStore() *store { return &store{stored: map[uts.Key]bool{}} }

func (s *store) commit(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, events)
	if s.fail != nil {
		if err := s.fail(events); err != nil {
			return nil, err
		}
	}
	outcomes := make([]uts.Outcome, len(events))
	for i, e := range events {
		outcomes[i] = uts.OutcomeDuplicate
		if !s.stored[e.Key()] {
			s.stored[e.Key()] = true
			outcomes[i] = uts.OutcomeNew
		}
	}
	return outcomes, nil
}

func (s *store) setFail(fail func([]uts.Event) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

func (s *store) missing(events []uts.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range events {
		if !s.stored[e.Key()] {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%d of %d events not stored", n, len(events))
	}
	return nil
}

func (s *store) firstBatch() []uts.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.batches) == 0 {
		return nil
	}
	return s.batches[0]
}

func (s *store) batchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// waitFor polls check until it returns nil, failing the test after waitLimit.
func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	testenv.Eventually(t, what, waitLimit, 10*time.Millisecond, check)
}

// waitIdle waits until the broker has nothing in flight and its stream is empty.
func waitIdle(t *testing.T, b *Broker) {
	t.Helper()
	waitFor(t, "the stream to empty", func() error {
		ctx := context.Background()
		depth, err := b.Depth(ctx)
		if err != nil {
			return err
		}
		n, err := b.client.XLen(ctx, b.stream).Result()
		if err != nil {
			return err
		}
		if depth != 0 || n != 0 {
			return fmt.Errorf("Depth %d, stream length %d", depth, n)
		}
		return nil
	})
}

// readAsDeadConsumer reads up to n new entries as consumer name and never acknowledges
// them, as a replica that crashes mid-batch does.
func readAsDeadConsumer(t *testing.T, b *Broker, name string, n int) {
	t.Helper()
	streams, err := b.client.XReadGroup(context.Background(), &goredis.XReadGroupArgs{
		Group: b.opts.Group, Consumer: name, Streams: []string{b.stream, ">"}, Count: int64(n), Block: -1,
	}).Result()
	if err != nil || len(streams) != 1 || len(streams[0].Messages) != n {
		t.Fatalf("read as %s: %v, %v", name, streams, err)
	}
}

// TestPublishIsAllOrNothingOnOneStream publishes a batch larger than an entry holds: it
// becomes entries of entryEvents events in batch order, each event delivered as its entry, and
// Depth counts events, not entries.
func TestPublishIsAllOrNothingOnOneStream(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{})
	events := newEvents("p", 2*entryEvents+7)
	publish(t, b, events)
	ctx := context.Background()
	entries, err := b.client.XRange(ctx, b.stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("stream has %d entries, want 3 for %d events", len(entries), len(events))
	}
	var got []uts.Event
	for i, m := range entries {
		e, err := b.decode(m)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		for j, ev := range e.events {
			if want := b.stream + "/" + m.ID; ev.Delivery != want {
				t.Errorf("entry %d event %d: delivery %q, want the stream and entry ID %q", i, j, ev.Delivery, want)
			}
		}
		got = append(got, e.events...)
	}
	if len(got) != len(events) {
		t.Fatalf("entries hold %d events, want %d", len(got), len(events))
	}
	for i := range events {
		if got[i].ContentHash() != events[i].ContentHash() {
			t.Errorf("event %d of the entries holds other content than event %d published", i, i)
		}
	}
	if depth, err := b.Depth(ctx); err != nil || depth != int64(len(events)) {
		t.Errorf("Depth = %d, %v; want %d", depth, err, len(events))
	}
	if _, err := b.Publish(ctx, nil); err != nil {
		t.Errorf("Publish of no events: %v", err)
	}
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{})
	p, err := b.Persistence(context.Background())
	if err != nil {
		t.Fatalf("Persistence: %v", err)
	}
	// The shared test server runs without appendonly; whatever it runs, the settings read
	// must be Redis's own words.
	if p.AppendFsync != "always" && p.AppendFsync != "everysec" && p.AppendFsync != "no" {
		t.Errorf("AppendFsync = %q", p.AppendFsync)
	}
}

func TestOwnPendingEntriesComeFirstAfterRestart(t *testing.T) {
	t.Parallel()
	prefix := testenv.RedisPrefix(t, testenv.RedisURL(t))
	// Nobody else claims anything during the test.
	opts := Options{KeyPrefix: prefix, Consumer: "replica-1", ClaimIdle: time.Hour}
	before := openTest(t, opts)
	old := newEvents("old", 3)
	publish(t, before, old)
	readAsDeadConsumer(t, before, "replica-1", 1) // the one entry that holds old
	fresh := newEvents("fresh", 4)
	publish(t, before, fresh)

	after := openTest(t, opts)
	s := newStore()
	brokertest.Consume(t, after, s.commit)
	waitFor(t, "every event to be stored", func() error { return s.missing(append(old, fresh...)) })
	first := s.firstBatch()
	if len(first) != len(old) {
		t.Fatalf("first batch has %d events, want the %d pending ones", len(first), len(old))
	}
	for i := range old {
		if first[i].Key() != old[i].Key() {
			t.Errorf("first batch event %d = %s, want %s", i, first[i].EventID, old[i].EventID)
		}
	}
	waitIdle(t, after)
}

func TestClaimsEntriesOfADeadConsumer(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{Consumer: "alive"})
	events := newEvents("orphan", 5)
	publish(t, b, events)
	readAsDeadConsumer(t, b, "dead", 1) // the one entry that holds events

	s := newStore()
	brokertest.Consume(t, b, s.commit)
	waitFor(t, "the dead consumer's events to be stored", func() error { return s.missing(events) })
	waitIdle(t, b)
	pending, err := b.client.XPending(context.Background(), b.stream, b.opts.Group).Result()
	if err != nil || pending.Count != 0 {
		t.Errorf("XPENDING = %+v, %v; want nothing pending", pending, err)
	}
}

var errRejected = errors.New("store rejects this event")

// TestPoisonEntryIsDeadLetteredAfterMaxDeliveries publishes three batches, the middle one
// holding an event the store rejects. The entries around it are stored; the poison entry is
// tried MaxDeliveries times on its own, then moved to the dead-letter stream whole, and all
// its events are counted dead-lettered: an entry is the unit of retry.
func TestPoisonEntryIsDeadLetteredAfterMaxDeliveries(t *testing.T) {
	t.Parallel()
	var counted struct {
		sync.Mutex
		n int
	}
	b := openTest(t, Options{
		MaxDeliveries: 3,
		DeadLetter: func(ctx context.Context, delivery string, n int) error {
			counted.Lock()
			defer counted.Unlock()
			counted.n += n
			return nil
		},
	})
	events := newEvents("batch", 6)
	poisonEntry := events[2:4]
	poison := events[2]
	s := newStore()
	poisonCommits := 0
	s.setFail(func(batch []uts.Event) error {
		for _, e := range batch {
			if e.Key() == poison.Key() {
				if len(batch) == len(poisonEntry) {
					poisonCommits++
				}
				return errRejected
			}
		}
		return nil
	})
	brokertest.Consume(t, b, s.commit)
	publish(t, b, events[:2])
	publish(t, b, poisonEntry)
	publish(t, b, events[4:])

	good := append(append([]uts.Event{}, events[:2]...), events[4:]...)
	waitFor(t, "the good events to be stored", func() error { return s.missing(good) })
	waitIdle(t, b)
	for _, e := range poisonEntry {
		if err := s.missing([]uts.Event{e}); err == nil {
			t.Errorf("event %s of the poison entry was stored", e.EventID)
		}
	}
	counted.Lock()
	if counted.n != len(poisonEntry) {
		t.Errorf("DeadLetter counted %d events, want the poison entry's %d", counted.n, len(poisonEntry))
	}
	counted.Unlock()
	s.mu.Lock()
	if poisonCommits != 3 {
		t.Errorf("the poison entry was committed alone %d times, want MaxDeliveries = 3", poisonCommits)
	}
	s.mu.Unlock()

	dead, err := b.client.XRange(context.Background(), b.dead, "-", "+").Result()
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead-letter stream = %v, %v; want one entry", dead, err)
	}
	if got := dead[0].Values["error"]; got != errRejected.Error() {
		t.Errorf("dead letter error = %q, want %q", got, errRejected)
	}
	e, err := b.decode(dead[0])
	if err != nil || len(e.events) != len(poisonEntry) || e.events[0].ContentHash() != poison.ContentHash() {
		t.Errorf("dead letter does not hold the original entry: %v", err)
	}
}

func TestUndecodableEntriesAreDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	counted := 0
	b := openTest(t, Options{DeadLetter: func(ctx context.Context, delivery string, n int) error {
		mu.Lock()
		defer mu.Unlock()
		counted += n
		return nil
	}})
	ctx := context.Background()
	for _, values := range [][]any{{fieldEvent, "{not json"}, {"other", "field"}, {fieldEvent, `{"payload":{}}`}, {fieldEvents, "[]"}} {
		if err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	events := newEvents("fine", 2)
	publish(t, b, events)
	s := newStore()
	brokertest.Consume(t, b, s.commit)
	waitFor(t, "the good events to be stored", func() error { return s.missing(events) })
	waitIdle(t, b)
	mu.Lock()
	defer mu.Unlock()
	if counted != 4 {
		t.Errorf("DeadLetter counted %d, want 4: one per entry", counted)
	}
	if n, err := b.client.XLen(ctx, b.dead).Result(); err != nil || n != 4 {
		t.Errorf("dead-letter stream length = %d, %v; want 4", n, err)
	}
}

func TestStoreOutageDoesNotDeadLetter(t *testing.T) {
	t.Parallel()
	prefix := testenv.RedisPrefix(t, testenv.RedisURL(t))
	var mu sync.Mutex
	counted := 0
	opts := Options{
		KeyPrefix:     prefix,
		MaxDeliveries: 2,
		ClaimIdle:     100 * time.Millisecond,
		DeadLetter: func(ctx context.Context, delivery string, n int) error {
			mu.Lock()
			defer mu.Unlock()
			counted += n
			return nil
		},
	}
	s := newStore()
	s.setFail(func([]uts.Event) error { return uts.Unavailable("store down", errors.New("connection refused")) })
	// Two replicas, so that one could claim what the other holds while it waits.
	opts.Consumer = "replica-1"
	one := openTest(t, opts)
	opts.Consumer = "replica-2"
	two := openTest(t, opts)
	brokertest.Consume(t, one, s.commit)
	brokertest.Consume(t, two, s.commit)
	events := newEvents("outage", 10)
	publish(t, one, events)

	// Long enough for several claim periods and more failed commits than MaxDeliveries.
	waitFor(t, "commits to fail repeatedly", func() error {
		if n := s.batchCount(); n < 6 {
			return fmt.Errorf("%d commits so far", n)
		}
		return nil
	})
	s.setFail(nil)
	waitFor(t, "every event to be stored once the store is back", func() error { return s.missing(events) })
	waitIdle(t, one)
	mu.Lock()
	defer mu.Unlock()
	if counted != 0 {
		t.Errorf("DeadLetter counted %d during a store outage, want 0", counted)
	}
	if n, err := one.client.XLen(context.Background(), one.dead).Result(); err != nil || n != 0 {
		t.Errorf("dead-letter stream length = %d, %v; want 0", n, err)
	}
}

func TestStreamIsTrimmedAfterAcknowledgement(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{BatchEvents: 16})
	s := newStore()
	brokertest.Consume(t, b, s.commit)
	var all []uts.Event
	for i := range 10 {
		events := newEvents(fmt.Sprintf("t%d", i), 10)
		publish(t, b, events)
		all = append(all, events...)
	}
	waitFor(t, "every event to be stored", func() error { return s.missing(all) })
	waitIdle(t, b)
}

// TestEntriesOfEarlierVersionsAreRead puts an entry in the stream as versions before batched
// entries wrote it, one event in an "event" field: a replica of this version, rolled out
// while it is still queued, stores it under the entry ID, the delivery that version recorded.
// Those versions did not count it in the queued counter, so its acknowledgement must take
// nothing off: Depth would otherwise read one short for good.
func TestEntriesOfEarlierVersionsAreRead(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{})
	ctx := context.Background()
	old := newEvents("legacy", 1)[0]
	data, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	id, err := b.client.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{fieldEvent, string(data)}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	s := newStore()
	stop := brokertest.Consume(t, b, s.commit)
	waitFor(t, "the old entry's event to be stored", func() error { return s.missing([]uts.Event{old}) })
	waitIdle(t, b)
	if got := s.firstBatch()[0].Delivery; got != id {
		t.Errorf("delivery %q, want the entry ID %q", got, id)
	}
	stop()
	publish(t, b, newEvents("queued", 3))
	if depth, err := b.Depth(ctx); err != nil || depth != 3 {
		t.Errorf("Depth = %d, %v; want the 3 events queued since", depth, err)
	}
}

// TestCommitsStayNearBatchEvents makes the read count guess wrong: after entries of one
// event, a read asks for BatchEvents entries and gets entries of 100 events. The consumer
// still commits no more than BatchEvents events at once, cutting only between entries.
func TestCommitsStayNearBatchEvents(t *testing.T) {
	t.Parallel()
	const batchEvents = 150
	b := openTest(t, Options{BatchEvents: batchEvents})
	var all []uts.Event
	for _, e := range newEvents("single", 20) {
		all = append(all, e)
		publish(t, b, []uts.Event{e})
	}
	for i := range 5 {
		big := newEvents(fmt.Sprintf("big%d", i), entryEvents)
		all = append(all, big...)
		publish(t, b, big)
	}
	s := newStore()
	brokertest.Consume(t, b, s.commit)
	waitFor(t, "every event to be stored", func() error { return s.missing(all) })
	s.mu.Lock()
	defer s.mu.Unlock()
	largest := 0
	for _, batch := range s.batches {
		largest = max(largest, len(batch))
	}
	if largest > batchEvents {
		t.Errorf("a commit of %d events, want at most BatchEvents = %d", largest, batchEvents)
	}
}

// TestFailedMoveLeavesTheEntryPending breaks the dead-letter stream (a key of another type)
// while an entry is given up on: the copy fails, so the entry is not acknowledged either, and
// stays pending. Once the stream is fixed the entry is moved, and every attempt asked the
// store to count the same delivery, which the store counts once.
func TestFailedMoveLeavesTheEntryPending(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	asked := map[string]int{}
	b := openTest(t, Options{MaxDeliveries: 1, DeadLetter: func(ctx context.Context, delivery string, n int) error {
		mu.Lock()
		defer mu.Unlock()
		asked[delivery]++
		return nil
	}})
	ctx := context.Background()
	if err := b.client.Set(ctx, b.dead, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	events := newEvents("doomed", 3)
	s := newStore()
	s.setFail(func([]uts.Event) error { return errRejected })
	brokertest.Consume(t, b, s.commit)
	publish(t, b, events)
	waitFor(t, "two attempts to give the entry up", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range asked {
			if n >= 2 {
				return nil
			}
		}
		return fmt.Errorf("asked %v", asked)
	})
	if n, err := pendingCount(ctx, b); err != nil || n != 1 {
		t.Fatalf("pending %d, %v; want the entry still pending after failed moves", n, err)
	}
	if err := b.client.Del(ctx, b.dead).Err(); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, b)
	dead, err := b.client.XRange(ctx, b.dead, "-", "+").Result()
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead-letter stream = %v, %v; want the entry once", dead, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 {
		t.Errorf("the store was asked to count deliveries %v, want one entry's, every time", asked)
	}
	if _, ok := asked[b.delivery(dead[0].Values["id"].(string))]; !ok {
		t.Errorf("the store was asked to count %v, not the dead entry %v", asked, dead[0].Values["id"])
	}
}
