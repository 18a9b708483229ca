// Package brokertest is the conformance suite for uts.Broker. The in-process broker commits
// before Publish returns (Receipt.Committed); a queued broker such as Redis Streams returns
// once the events are durably queued and commits later, redelivering what failed. The suite
// tells the two apart by the receipts and holds each to its own promise, through the
// uts.Broker interface only, with a commit func that records what it was given.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// Run runs the suite. newBroker returns a fresh broker for each subtest that does not
// share queued events with any other (its own key prefix, say), with redelivery delays
// short enough for waits of a few seconds. Subtests run in parallel.
func Run(t *testing.T, newBroker func(t *testing.T) uts.Broker) {
	t.Run("ReadyWhenIdle", func(t *testing.T) {
		t.Parallel()
		testReadyWhenIdle(t, newBroker(t))
	})
	t.Run("DeliversEveryEvent", func(t *testing.T) {
		t.Parallel()
		testDeliversEveryEvent(t, newBroker(t))
	})
	t.Run("ConcurrentPublishers", func(t *testing.T) {
		t.Parallel()
		testConcurrentPublishers(t, newBroker(t))
	})
	t.Run("OutcomesMatchCommit", func(t *testing.T) {
		t.Parallel()
		testOutcomesMatchCommit(t, newBroker(t))
	})
	t.Run("CommitError", func(t *testing.T) {
		t.Parallel()
		testCommitError(t, newBroker(t))
	})
	t.Run("DrainOnCancel", func(t *testing.T) {
		t.Parallel()
		testDrainOnCancel(t, newBroker(t))
	})
}

func testReadyWhenIdle(t *testing.T, b uts.Broker) {
	startConsume(t, b, newRecorder().commit)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready on an idle broker: %v", err)
	}
	if depth, err := b.Depth(ctx); err != nil || depth != 0 {
		t.Errorf("Depth on an idle broker = %d, %v; want 0, nil", depth, err)
	}
}

func testDeliversEveryEvent(t *testing.T, b uts.Broker) {
	rec := newRecorder()
	startConsume(t, b, rec.commit)
	var all []uts.Event
	committed := map[bool]int{}
	for i := range 40 {
		events := newEvents(fmt.Sprintf("b%d", i), 1+i%12)
		receipt, err := publish(b, events)
		if err != nil {
			t.Fatalf("Publish batch %d: %v", i, err)
		}
		if err := checkReceipt(rec, events, receipt); err != nil {
			t.Errorf("batch %d: %v", i, err)
		}
		committed[receipt.Committed]++
		all = append(all, events...)
	}
	if len(committed) > 1 {
		t.Errorf("receipts mix Committed and queued: %v", committed)
	}
	waitFor(t, "every event to be committed", func() error { return rec.storedAll(all) })
	checkIntact(t, rec, all)
	if n := rec.conflictCount(); n != 0 {
		t.Errorf("commit saw %d conflicts; the broker altered events", n)
	}
	waitDepthZero(t, b)
}

func testConcurrentPublishers(t *testing.T, b uts.Broker) {
	rec := newRecorder()
	startConsume(t, b, rec.commit)
	const publishers, batches, size = 8, 20, 5
	all := make([][]uts.Event, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range batches {
				events := newEvents(fmt.Sprintf("p%d-b%d", p, i), size)
				receipt, err := publish(b, events)
				if err != nil {
					t.Errorf("publisher %d, batch %d: %v", p, i, err)
					return
				}
				if err := checkReceipt(rec, events, receipt); err != nil {
					t.Errorf("publisher %d, batch %d: %v", p, i, err)
				}
				for j, o := range receipt.Outcomes {
					if o != uts.OutcomeNew {
						t.Errorf("publisher %d, batch %d, event %d: outcome %v, want new", p, i, j, o)
					}
				}
				all[p] = append(all[p], events...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var flat []uts.Event
	for _, events := range all {
		flat = append(flat, events...)
	}
	waitFor(t, "every event to be committed", func() error { return rec.storedAll(flat) })
	checkIntact(t, rec, flat)
	waitDepthZero(t, b)
}

// testOutcomesMatchCommit publishes duplicates and a conflict: a Committed receipt must carry
// what commit answered, and a queued broker must deliver every copy, since the store counts
// them (received == unique + duplicates).
func testOutcomesMatchCommit(t *testing.T, b uts.Broker) {
	rec := newRecorder()
	startConsume(t, b, rec.commit)

	first := newEvents("o", 3)
	receipt, err := publish(b, first)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := checkReceipt(rec, first, receipt); err != nil {
		t.Error(err)
	}
	waitFor(t, "the first batch to be committed", func() error { return rec.storedAll(first) })

	fresh := newEvents("o-fresh", 1)[0]
	conflicting := first[1]
	conflicting.Payload = []byte(`{"changed":true}`)
	second := []uts.Event{first[0], fresh, conflicting, fresh}
	receipt, err = publish(b, second)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if receipt.Committed {
		if err := checkReceipt(rec, second, receipt); err != nil {
			t.Error(err)
		}
		want := []uts.Outcome{uts.OutcomeDuplicate, uts.OutcomeNew, uts.OutcomeConflict, uts.OutcomeDuplicate}
		for i := range want {
			if i < len(receipt.Outcomes) && receipt.Outcomes[i] != want[i] {
				t.Errorf("outcome %d = %v, want %v", i, receipt.Outcomes[i], want[i])
			}
		}
		return
	}
	waitFor(t, "every copy to reach commit", func() error {
		if got := rec.deliveryCount(first[0].Key()); got < 2 {
			return fmt.Errorf("the retried event reached commit %d times, want >= 2", got)
		}
		if got := rec.deliveryCount(fresh.Key()); got < 2 {
			return fmt.Errorf("the event repeated within a batch reached commit %d times, want >= 2", got)
		}
		if rec.conflictCount() < 1 {
			return errors.New("the conflicting event has not reached commit")
		}
		return nil
	})
	waitDepthZero(t, b)
}

// testCommitError makes commit fail for one request. A Committed broker must tell its
// publisher; a queued broker must deliver the events again until a commit succeeds.
func testCommitError(t *testing.T, b uts.Broker) {
	rec := newRecorder()
	startConsume(t, b, rec.commit)
	events := newEvents("e", 2)
	poison := events[0].Key()
	rec.poison(poison, true)

	receipt, err := publish(b, events)
	switch {
	case err != nil:
		if !errors.Is(err, errInjected) {
			t.Fatalf("Publish = %v, want the commit's error", err)
		}
		if rec.storedAll(events[1:]) == nil {
			t.Errorf("the failed commit stored the poisoned event's neighbour")
		}
		rec.poison(poison, false)
		receipt, err = publish(b, events)
		if err != nil {
			t.Fatalf("Publish after the failure cleared: %v", err)
		}
		if !receipt.Committed {
			t.Fatalf("Publish returned a commit error before, and a queued receipt now")
		}
		if err := checkReceipt(rec, events, receipt); err != nil {
			t.Error(err)
		}
	case receipt.Committed:
		t.Fatalf("Publish returned Committed although every commit of its events failed")
	default:
		waitFor(t, "the failed events to be delivered again", func() error {
			if got := rec.deliveryCount(poison); got < 2 {
				return fmt.Errorf("the poisoned event reached commit %d times, want >= 2", got)
			}
			return nil
		})
		rec.poison(poison, false)
		waitFor(t, "the events to be committed once commit succeeds", func() error { return rec.storedAll(events) })
	}
	checkIntact(t, rec, events)
	waitDepthZero(t, b)
}

// testDrainOnCancel cancels Consume while batches are accepted and their commits held. A
// Committed broker must commit them all before Consume returns; a queued broker must keep
// what it did not commit for the next Consume.
func testDrainOnCancel(t *testing.T, b uts.Broker) {
	rec := newRecorder().withGate()
	run := startConsume(t, b, rec.commit)
	t.Cleanup(rec.openGate) // runs before Consume's cleanup, should the test fail early

	const publishers, size = 10, 3
	type result struct {
		events     []uts.Event
		receipt    uts.Receipt
		err        error
		receiptErr error
	}
	results := make(chan result, publishers)
	var all []uts.Event
	for p := range publishers {
		events := newEvents(fmt.Sprintf("d%d", p), size)
		all = append(all, events...)
		go func() {
			receipt, err := publish(b, events)
			results <- result{events, receipt, err, checkReceipt(rec, events, receipt)}
		}()
	}
	// A Committed broker's publishers are all waiting once Depth counts every event; a
	// queued broker's have returned.
	var returned []result
	waitFor(t, "every batch to be accepted", func() error {
		for len(results) > 0 {
			returned = append(returned, <-results)
		}
		depth, err := b.Depth(context.Background())
		if err != nil || len(returned) == publishers || depth >= publishers*size {
			return err
		}
		return fmt.Errorf("%d publishers returned, Depth %d", len(returned), depth)
	})
	waitFor(t, "a commit to start", func() error {
		select {
		case <-rec.entered:
			return nil
		default:
			return errors.New("no commit yet")
		}
	})

	run.cancel()
	rec.openGate()
	if err := run.stop(); err != nil {
		t.Fatalf("Consume after cancel: %v", err)
	}
	drainedOnReturn := rec.storedAll(all)

	for len(returned) < publishers {
		select {
		case r := <-results:
			returned = append(returned, r)
		case <-time.After(waitLimit):
			t.Fatalf("%d of %d publishers still waiting after Consume returned", publishers-len(returned), publishers)
		}
	}
	queued := false
	for _, r := range returned {
		if r.err != nil {
			t.Fatalf("Publish accepted before the cancel: %v", r.err)
		}
		if r.receiptErr != nil {
			t.Error(r.receiptErr)
		}
		queued = queued || !r.receipt.Committed
	}
	if queued {
		startConsume(t, b, rec.commit)
	} else if drainedOnReturn != nil {
		t.Errorf("Consume returned before committing what it had accepted: %v", drainedOnReturn)
	}
	waitFor(t, "every accepted event to be committed", func() error { return rec.storedAll(all) })
	checkIntact(t, rec, all)
	waitDepthZero(t, b)
}
