package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
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
	db := postgresSchema(t)
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
	db := postgresSchema(t)
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
