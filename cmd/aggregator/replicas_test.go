package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
)

// These tests hold the promises across processes sharing one PostgreSQL schema: each key is
// stored once, and every answer and counter agrees with that. The lock order that keeps
// concurrent batches of the same keys in different orders from deadlocking is proved inside
// one process by postgres.TestNoDeadlock; here the batches come from several processes.

// TestReplicasShareOnePostgresSchema runs three aggregators (in-process brokers) on one
// schema while six senders publish every key, each in its own order, to all three at once.
func TestReplicasShareOnePostgresSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs the binary")
	}
	t.Parallel()
	db := testenv.PostgresSchema(t)
	bin, _ := binaries(t)
	var bases []string
	for range 3 {
		bases = append(bases, startAggregator(t, bin, "-db", db).URL)
	}
	publishOverlapping(t, bases)
}

// TestWorkersShareOnePostgresSchema is the same with one aggregator committing on eight
// workers, each batch small, so that many transactions overlap in one process.
func TestWorkersShareOnePostgresSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs the binary")
	}
	t.Parallel()
	db := testenv.PostgresSchema(t)
	bin, _ := binaries(t)
	agg := startAggregator(t, bin, "-db", db+"&pool_max_conns=10", "-workers", "8", "-commit-events", "150", "-linger", "0")
	publishOverlapping(t, []string{agg.URL, agg.URL, agg.URL})
}

// publishOverlapping has six senders publish the same keys, each sender in its own
// shuffled order and every batch repeating its first event, round-robin over bases. Every
// request must be answered 200, and the answers, the counters and the stored events must
// all say: each key once.
func publishOverlapping(t *testing.T, bases []string) {
	t.Helper()
	const (
		keys    = 3000
		topics  = 4
		senders = 6
		batch   = 100
	)
	all := make([]testEvent, keys)
	for i := range all {
		all[i] = newTestEvent(fmt.Sprintf("topic-%d", i%topics), fmt.Sprintf("k%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Minute}
	var (
		mu                    sync.Mutex
		answered, unique, dup int
		failures              []string
	)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), 1))
			order := rng.Perm(keys)
			for start := 0; start < keys; start += batch {
				events := make([]testEvent, 0, batch+1)
				for _, i := range order[start:min(start+batch, keys)] {
					events = append(events, all[i])
				}
				events = append(events, events[0]) // a duplicate within the batch
				base := bases[(s+start/batch)%len(bases)]
				a, err := postEvents(ctx, client, base, events)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case a.Status != http.StatusOK:
					failures = append(failures, fmt.Sprintf("%s: status %d: %s", base, a.Status, a.Error))
				default:
					answered += a.Received
					unique += a.Unique
					dup += a.Duplicates
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed, the first: %s", len(failures), failures[0])
	}

	sent := senders * (keys + keys/batch)
	if answered != sent || unique != keys || dup != sent-keys {
		t.Errorf("answers: received %d, unique %d, duplicates %d; want %d, %d, %d", answered, unique, dup, sent, keys, sent-keys)
	}
	for _, base := range bases {
		s := waitDrained(t, base)
		if s.Received != int64(sent) || s.UniqueProcessed != keys || s.DuplicateDropped != int64(sent-keys) ||
			s.DuplicateConflicts != 0 || s.DeadLettered != 0 || s.topicsSum() != keys || len(s.Topics) != topics {
			t.Errorf("%s: stats %+v; want received %d, unique %d, duplicates %d, %d topics", base, s, sent, keys, sent-keys, topics)
		}
	}
	stored := allEvents(t, bases[0])
	if len(stored) != keys {
		t.Errorf("%d events stored, want %d", len(stored), keys)
	}
	for _, e := range all {
		if n := stored[storedKey{e.Topic, e.EventID}]; n != 1 {
			t.Errorf("%s/%s stored %d times", e.Topic, e.EventID, n)
		}
	}
}

// TestRedisReplicasSurviveAKill runs three aggregators on one schema and one Redis stream,
// each a consumer of its own name in the group, while the publisher sends 30,000 events.
// One replica dies by SIGKILL holding entries it read and had not committed; the two others
// claim them once idle (XAUTOCLAIM) and finish the work. Once the stream is drained every
// event is stored once and counted once: received is exactly what the publisher was
// answered 202 for, however much of the victim's work was committed before it died.
//
// The publisher talks to the survivors only. A request in flight to a killed process may
// have reached Redis with its answer lost, and the publisher rightly sends it again: two
// publishes, counted as two, which is at-least-once publishing and not what this test is
// about (TestPostgresOutageInProcess covers its in-process twin).
func TestRedisReplicasSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs both binaries")
	}
	t.Parallel()
	db := testenv.PostgresSchema(t)
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t, redisURL)
	rc := testenv.RedisClient(t, redisURL)
	aggregatorBin, publisherBin := binaries(t)

	// The victim reaches PostgreSQL through a proxy. Cutting it just before the kill leaves
	// the victim waiting to commit a batch it has read, so the kill surely orphans entries.
	proxy := startCutProxy(t, postgresHost(t, db))
	const commitEvents = 500
	replicas := make([]*aggregatorProcess, 3)
	urls := make([]string, 3)
	for i := range replicas {
		dbURL := db
		if i == 1 {
			dbURL = postgresVia(t, db, proxy)
		}
		replicas[i] = startAggregator(t, aggregatorBin, "-db", dbURL,
			"-broker", redisURL, "-redis-prefix", prefix, "-consumer-name", fmt.Sprintf("replica-%d", i),
			"-workers", "2", "-claim-idle", "1s", "-commit-events", fmt.Sprint(commitEvents))
		urls[i] = replicas[i].URL
	}
	victim, survivors := replicas[1], []string{urls[0], urls[2]}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const (
		events      = 30000
		batch       = 100
		concurrency = 6
	)
	var stdout, stderr bytes.Buffer
	publisher := exec.CommandContext(ctx, publisherBin, "-url", survivors[0], "-url", survivors[1],
		"-events", fmt.Sprint(events), "-duplicates", "0.3", "-topics", "5", "-batch", fmt.Sprint(batch),
		"-concurrency", fmt.Sprint(concurrency), "-seed", "11", "-json")
	publisher.Stdout, publisher.Stderr = &stdout, &stderr
	if err := publisher.Start(); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- publisher.Wait() }()

	eventually(t, "a fifth of the load to be committed", time.Minute, func() error {
		s, err := readStats(ctx, urls[0])
		if err == nil && s.Received < events/5 {
			err = fmt.Errorf("received %d", s.Received)
		}
		return err
	})
	proxy.Cut()
	// The victim's consume loops are the consumers replica-1 and replica-1/2.
	victimPending := func() (int64, error) {
		a, err := pendingOf(ctx, rc, prefix, "replica-1")
		if err != nil {
			return 0, err
		}
		b, err := pendingOf(ctx, rc, prefix, "replica-1/2")
		return a + b, err
	}
	eventually(t, "the victim to hold entries it cannot commit", 30*time.Second, func() error {
		n, err := victimPending()
		if err == nil && n == 0 {
			err = fmt.Errorf("nothing pending")
		}
		return err
	})
	victim.Kill()
	orphaned, err := victimPending()
	if err != nil || orphaned == 0 {
		t.Fatalf("after the kill, %d entries pending with the victim (%v); want some", orphaned, err)
	}

	if err := <-published; err != nil {
		t.Fatalf("publisher: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var summary struct {
		Sent, Distinct, Duplicates int
		FailedEvents               int `json:"failed_events"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &summary); err != nil {
		t.Fatalf("publisher summary %q: %v", stdout.String(), err)
	}
	if summary.Sent != events || summary.FailedEvents != 0 {
		t.Fatalf("publisher delivered %d of %d events (%d failed)", summary.Sent, events, summary.FailedEvents)
	}

	s := waitDrained(t, survivors...)
	if n, err := pendingOf(ctx, rc, prefix, ""); err != nil || n != 0 {
		t.Errorf("%d entries still pending (%v); the victim's must have been claimed", n, err)
	}
	if n, err := rc.XLen(ctx, prefix+"dead").Result(); err != nil || n != 0 {
		t.Errorf("%d entries dead-lettered (%v); an outage or a kill must not dead-letter", n, err)
	}
	stored := allEvents(t, survivors[0])
	for k, n := range stored {
		if n != 1 {
			t.Errorf("%v stored %d times", k, n)
		}
	}
	// Every event the publisher delivered is stored: the keys it generated are all there.
	if int(s.UniqueProcessed) != summary.Distinct || len(stored) != summary.Distinct || s.topicsSum() != s.UniqueProcessed {
		t.Errorf("stats %+v, %d stored; want %d unique (the publisher's distinct)", s, len(stored), summary.Distinct)
	}
	if s.DeadLettered != 0 || s.DuplicateConflicts != 0 {
		t.Errorf("stats %+v; want nothing dead-lettered and no conflicts", s)
	}
	// Exact: the victim's entries are delivered again to the survivors, and the store counts
	// none of those it had committed.
	want := counts{received: int64(summary.Sent), unique: int64(summary.Distinct), duplicates: int64(summary.Sent - summary.Distinct)}
	if got := countsOf(s); got != want {
		t.Errorf("counted %+v; want %+v: every event sent once", got, want)
	}
	t.Logf("%d sent, %d distinct, %d orphaned by the kill", summary.Sent, summary.Distinct, orphaned)
}

// TestRestartedReplicaResumesItsOwnEntries kills a replica holding entries it read and could
// not commit (its database is cut off), then starts it again under the same consumer name.
// No other consumer exists and claiming needs an hour of idleness, so only the restarted
// replica reading its own pending entries first can store them.
func TestRestartedReplicaResumesItsOwnEntries(t *testing.T) {
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
	args := []string{"-db", postgresVia(t, db, proxy), "-broker", redisURL, "-redis-prefix", prefix,
		"-consumer-name", "replica-a", "-workers", "2", "-claim-idle", "1h", "-commit-events", "1000"}
	agg := startAggregator(t, bin, args...)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proxy.Cut()
	events := make([]testEvent, 300)
	for i := range events {
		events[i] = newTestEvent("resume", fmt.Sprintf("e%d", i))
	}
	if a, err := postEvents(ctx, http.DefaultClient, agg.URL, events); err != nil || a.Status != http.StatusAccepted {
		t.Fatalf("publish with the database cut off: %+v, %v; want 202 (Redis has them)", a, err)
	}
	eventually(t, "the replica to hold every entry", 30*time.Second, func() error {
		// Its two consume loops are the consumers replica-a and replica-a/2. An entry holds
		// many events, so the stream's length, not len(events), is how many there are.
		a, err := pendingOf(ctx, rc, prefix, "replica-a")
		if err != nil {
			return err
		}
		a2, err := pendingOf(ctx, rc, prefix, "replica-a/2")
		if err != nil {
			return err
		}
		entries, err := rc.XLen(ctx, prefix+"events").Result()
		if err == nil && (entries == 0 || a+a2 != entries) {
			err = fmt.Errorf("%d+%d of %d entries pending", a, a2, entries)
		}
		return err
	})
	agg.Kill()
	proxy.Restore()

	agg = startAggregator(t, bin, args...)
	s := waitDrained(t, agg.URL)
	if s.Received != int64(len(events)) || s.UniqueProcessed != int64(len(events)) {
		t.Fatalf("stats %+v; want all %d received and stored once", s, len(events))
	}
	stored := allEvents(t, agg.URL)
	for _, k := range keysOf(events) {
		if stored[k] != 1 {
			t.Errorf("%v stored %d times", k, stored[k])
		}
	}
	agg.Stop(t)
}
