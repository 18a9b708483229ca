package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
)

// TestRedisOutage kills the aggregator's Redis (a private one, with the append-only file
// always synced) and starts it again on the same port: meanwhile /publish answers 503 with a
// JSON error and takes nothing, /readyz answers 503, and afterwards publishing and consuming
// resume in the same aggregator process.
func TestRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs the binary")
	}
	t.Parallel()
	server := testenv.StartRedisServer(t, "--appendonly", "yes", "--appendfsync", "always")
	bin, _ := binaries(t)
	agg := startAggregator(t, bin, "-db", "sqlite:"+filepath.Join(t.TempDir(), "uts.db"),
		"-broker", server.URL(), "-claim-idle", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}

	batch := func(name string, n int) []testEvent {
		events := make([]testEvent, n)
		for i := range events {
			events[i] = newTestEvent("outage", fmt.Sprintf("%s-%d", name, i))
		}
		return events
	}
	before, during, after := batch("before", 50), batch("during", 20), batch("after", 30)
	if a, err := postEvents(ctx, client, agg.URL, before); err != nil || a.Status != http.StatusAccepted {
		t.Fatalf("publish before the outage: %+v, %v; want 202", a, err)
	}
	waitDrained(t, agg.URL)

	server.Kill()
	start := time.Now()
	a, err := postEvents(ctx, client, agg.URL, during)
	t.Logf("publish answered %d after %v with Redis down", a.Status, time.Since(start).Round(time.Millisecond))
	if err != nil || a.Status != http.StatusServiceUnavailable || !a.JSON || !strings.Contains(a.Error, "redis") {
		t.Errorf("publish while Redis is down: %+v, %v; want 503 with a JSON error naming redis", a, err)
	}
	if status, body, err := getStatus(ctx, agg.URL, "/readyz"); err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "broker") {
		t.Errorf("/readyz while Redis is down: %d %s %v; want 503 naming the broker", status, body, err)
	}

	server.Start()
	start = time.Now()
	eventually(t, "publishing to resume", 30*time.Second, func() error {
		a, err := postEvents(ctx, client, agg.URL, after)
		if err == nil && a.Status != http.StatusAccepted {
			err = fmt.Errorf("status %d: %s", a.Status, a.Error)
		}
		return err
	})
	t.Logf("publishing resumed %v after Redis", time.Since(start).Round(time.Millisecond))
	s := waitDrained(t, agg.URL)
	t.Logf("drained %v after Redis", time.Since(start).Round(time.Millisecond))
	// A retried "after" that Redis took but whose answer was lost would be a duplicate.
	if want := int64(len(before) + len(after)); s.UniqueProcessed != want {
		t.Errorf("stats %+v; want %d unique: the ones before and after the outage", s, want)
	}
	stored := allEvents(t, agg.URL)
	for _, k := range append(keysOf(before), keysOf(after)...) {
		if stored[k] != 1 {
			t.Errorf("%v stored %d times, want once", k, stored[k])
		}
	}
	for _, k := range keysOf(during) {
		if stored[k] != 0 {
			t.Errorf("%v was answered 503 and still stored", k)
		}
	}
	if status, body, err := getStatus(ctx, agg.URL, "/readyz"); err != nil || status != http.StatusOK {
		t.Errorf("/readyz after the outage: %d %s %v; want 200", status, body, err)
	}
	agg.Stop(t)
}

// TestRedisPersistenceIsCheckedAtStart: an aggregator on a Redis without the append-only
// file warns that a 202 would not survive a Redis restart; with it, it logs the setting.
func TestRedisPersistenceIsCheckedAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs the binary")
	}
	t.Parallel()
	server := testenv.StartRedisServer(t, "--appendonly", "no")
	bin, _ := binaries(t)
	args := []string{"-db", "sqlite:" + filepath.Join(t.TempDir(), "uts.db"), "-broker", server.URL()}

	agg := startAggregator(t, bin, args...)
	agg.Stop(t)
	if logs := agg.Logs(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "redis runs without appendonly") {
		t.Errorf("no warning about appendonly off:\n%s", logs)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := testenv.RedisClient(t, server.URL())
	if err := client.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.ConfigSet(ctx, "appendfsync", "always").Err(); err != nil {
		t.Fatal(err)
	}
	agg = startAggregator(t, bin, args...)
	agg.Stop(t)
	logs := agg.Logs()
	if strings.Contains(logs, "redis runs without appendonly") || !strings.Contains(logs, `msg="redis persistence" component=redis appendonly=yes appendfsync=always`) {
		t.Errorf("want the persistence settings logged, no warning:\n%s", logs)
	}
}

// batchSize is the number of fresh keys in each batch a sender sends.
const batchSize = 50

// sender publishes batches in a loop until stopped, and keeps every answer.
type sender struct {
	base   string
	client *http.Client

	mu      sync.Mutex
	batches []sentBatch
}

type sentBatch struct {
	events []testEvent
	answer publishAnswer
	err    error
}

// start sends batches of size fresh keys to url from `senders` goroutines until halt is
// called (at most once in effect: it stops them and waits for them), or ctx ends. Each batch
// also repeats a key of the last batch that was accepted, so that duplicates travel with new
// events, while the keys of a refused batch are never sent again by the loop.
func startSender(ctx context.Context, url string, senders, size int) (s *sender, halt func()) {
	s = &sender{base: url, client: &http.Client{Timeout: 30 * time.Second}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			var previous []testEvent
			for b := 0; b < 100_000; b++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				events := make([]testEvent, 0, size+1)
				for i := range size {
					events = append(events, newTestEvent(fmt.Sprintf("topic-%d", g%3), fmt.Sprintf("g%d-b%d-%d", g, b, i)))
				}
				if previous != nil {
					events = append(events, previous[0])
				}
				a, err := postEvents(ctx, s.client, s.base, events)
				s.mu.Lock()
				s.batches = append(s.batches, sentBatch{events: events, answer: a, err: err})
				s.mu.Unlock()
				if err == nil && (a.Status == http.StatusOK || a.Status == http.StatusAccepted) {
					previous = events
				} else {
					time.Sleep(20 * time.Millisecond) // a publisher would back off too
				}
			}
		})
	}
	return s, sync.OnceFunc(func() { close(stop); wg.Wait() })
}

// count is how many batches so far were answered status.
func (s *sender) count(status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.batches {
		if b.err == nil && b.answer.Status == status {
			n++
		}
	}
	return n
}

func (s *sender) waitFor(t *testing.T, status, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d batches answered %d", n, status), time.Minute, func() error {
		if got := s.count(status); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// TestPostgresOutageWithRedis cuts the aggregator off PostgreSQL mid-load without stopping
// the shared server. Publishing goes on (202: Redis has the events); the consumer holds its
// entries pending and waits, since the store says unavailable, not rejected, so nothing is
// dead-lettered even with -max-deliveries 2. Once the database is back everything is stored
// once and counted once: a batch whose commit went through as the connection was cut is
// committed again, and the store, which recorded its stream entries, counts it no more.
func TestPostgresOutageWithRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs the binary")
	}
	t.Parallel()
	db := testenv.PostgresSchema(t)
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t, redisURL)
	rc := testenv.RedisClient(t, redisURL)
	bin, _ := binaries(t)
	proxy := startCutProxy(t, postgresHost(t, db))
	const commitEvents = 500
	agg := startAggregator(t, bin, "-db", postgresVia(t, db, proxy), "-broker", redisURL, "-redis-prefix", prefix,
		"-claim-idle", "1s", "-max-deliveries", "2", "-commit-events", fmt.Sprint(commitEvents))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, halt := startSender(ctx, agg.URL, 4, batchSize)
	defer halt()

	s.waitFor(t, http.StatusAccepted, 40)
	proxy.Cut()
	acceptedAtCut := s.count(http.StatusAccepted)
	eventually(t, "the consumer to wait on the store", 30*time.Second, func() error {
		if !strings.Contains(agg.Logs(), "store unavailable; waiting to commit") {
			return fmt.Errorf("not logged yet")
		}
		if n, err := pendingOf(ctx, rc, prefix, ""); err != nil || n == 0 {
			return fmt.Errorf("%d pending, %v", n, err)
		}
		return nil
	})
	if status, body, err := getStatus(ctx, agg.URL, "/readyz"); err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Errorf("/readyz with the database cut off: %d %s %v; want 503 naming the store", status, body, err)
	}
	// Long enough for entries to be claimed and redelivered past -max-deliveries, were the
	// outage counted against them.
	s.waitFor(t, http.StatusAccepted, acceptedAtCut+40)
	time.Sleep(3 * time.Second)
	proxy.Restore()
	s.waitFor(t, http.StatusAccepted, s.count(http.StatusAccepted)+40)
	halt()

	accepted := map[storedKey]bool{}
	var acceptedEvents int64
	for _, b := range s.batches {
		if b.err != nil || b.answer.Status != http.StatusAccepted {
			t.Fatalf("with Redis up every publish must be 202; got %+v, %v", b.answer, b.err)
		}
		acceptedEvents += int64(len(b.events))
		for _, k := range keysOf(b.events) {
			accepted[k] = true
		}
	}
	st := waitDrained(t, agg.URL)
	stored := allEvents(t, agg.URL)
	for k := range accepted {
		if stored[k] != 1 {
			t.Errorf("accepted %v stored %d times", k, stored[k])
		}
	}
	if st.UniqueProcessed != int64(len(accepted)) || len(stored) != len(accepted) || st.DeadLettered != 0 {
		t.Errorf("stats %+v, %d stored; want %d unique, nothing dead-lettered", st, len(stored), len(accepted))
	}
	if n, err := rc.XLen(ctx, prefix+"dead").Result(); err != nil || n != 0 {
		t.Errorf("%d entries dead-lettered (%v); an outage must not dead-letter", n, err)
	}
	// Exact: each event answered 202 counted once, whatever was in flight at the cut.
	want := counts{received: acceptedEvents, unique: int64(len(accepted)), duplicates: acceptedEvents - int64(len(accepted))}
	if got := countsOf(st); got != want {
		t.Errorf("counted %+v; want %+v: every accepted event once", got, want)
	}
	t.Logf("%d batches accepted, %d events, %d unique", len(s.batches), acceptedEvents, len(accepted))
	agg.Stop(t)
}

// TestPostgresOutageInProcess cuts the aggregator off PostgreSQL mid-load with the
// in-process broker: a request during the outage is answered 503, never 200, and its batch
// is either stored whole or not at all. Sending every 503 batch again after the outage, as a
// publisher does, ends with each event stored once and the counters exact: a batch that
// committed under its 503 was sent twice, and is counted as received twice (the second time
// as duplicates), as the publisher did send it twice.
func TestPostgresOutageInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs the binary")
	}
	t.Parallel()
	db := testenv.PostgresSchema(t)
	bin, _ := binaries(t)
	proxy := startCutProxy(t, postgresHost(t, db))
	agg := startAggregator(t, bin, "-db", postgresVia(t, db, proxy))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, halt := startSender(ctx, agg.URL, 4, batchSize)
	defer halt()

	s.waitFor(t, http.StatusOK, 40)
	proxy.Cut()
	s.waitFor(t, http.StatusServiceUnavailable, 10)
	if status, body, err := getStatus(ctx, agg.URL, "/readyz"); err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Errorf("/readyz with the database cut off: %d %s %v; want 503 naming the store", status, body, err)
	}
	proxy.Restore()
	s.waitFor(t, http.StatusOK, s.count(http.StatusOK)+40)
	halt()

	var (
		answeredEvents int64 // events in batches answered 200
		unavailable    []sentBatch
		all            = map[storedKey]bool{}
	)
	for _, b := range s.batches {
		for _, k := range keysOf(b.events) {
			all[k] = true
		}
		switch {
		case b.err != nil:
			t.Fatalf("a request got no answer: %v", b.err)
		case b.answer.Status == http.StatusOK:
			answeredEvents += int64(len(b.events))
		case b.answer.Status == http.StatusServiceUnavailable && b.answer.JSON && b.answer.Error != "":
			unavailable = append(unavailable, b)
		default:
			t.Fatalf("during the outage: %+v; want 200 or a 503 with a JSON error", b.answer)
		}
	}

	// Send the keys of each refused batch again (not the key it repeats from the batch
	// before). They are all new (the refused commit stored nothing) or, if the commit went
	// through as the connection was cut, all duplicates: whole or nothing, never part.
	var committedAnyway int64
	for _, b := range unavailable {
		own := b.events[:batchSize]
		a, err := postEvents(ctx, s.client, agg.URL, own)
		if err != nil || a.Status != http.StatusOK {
			t.Fatalf("resend after the outage: %+v, %v", a, err)
		}
		answeredEvents += int64(len(own))
		switch a.Unique {
		case len(own):
		case 0:
			committedAnyway += int64(len(b.events))
		default:
			t.Errorf("a batch refused with 503 was half stored: %d of its %d keys were new on resend", a.Unique, len(own))
		}
	}

	st := waitDrained(t, agg.URL)
	stored := allEvents(t, agg.URL)
	for k := range all {
		if stored[k] != 1 {
			t.Errorf("%v stored %d times", k, stored[k])
		}
	}
	if st.UniqueProcessed != int64(len(all)) || len(stored) != len(all) {
		t.Errorf("stats %+v, %d stored; want %d unique", st, len(stored), len(all))
	}
	if st.Received != answeredEvents+committedAnyway {
		t.Errorf("received %d; want %d answered 200 plus %d committed under a 503", st.Received, answeredEvents, committedAnyway)
	}
	t.Logf("%d batches, %d refused with 503 (%d events committed anyway), %d unique", len(s.batches), len(unavailable), committedAnyway, len(all))
	agg.Stop(t)
}

// counts are the totals a test can know exactly from what it sent.
type counts struct{ received, unique, duplicates int64 }

func countsOf(s fullStats) counts {
	return counts{received: s.Received, unique: s.UniqueProcessed, duplicates: s.DuplicateDropped}
}
