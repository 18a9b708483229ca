package inproc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/inproc"
)

// TestCohortWaitEndsAtShutdown: a request waiting for its cohort when Consume's context
// ends is committed at once, not when the wait would have run out, its publisher gets a
// commit, and Consume returns with no goroutine left behind (the bubble checks).
func TestCohortWaitEndsAtShutdown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, stop, c := afterCohortOf7(t, 2*time.Millisecond, time.Millisecond)
		start := time.Now()
		result := publishAsync(t.Context(), b, events("lone", 1))
		time.Sleep(100 * time.Microsecond) // the lone request waits for its cohort
		stop()
		if took := time.Since(start); took != 100*time.Microsecond+c.took {
			t.Errorf("Consume returned %v after the lone request, want the %v before shutdown and one commit", took, 100*time.Microsecond)
		}
		r := <-result
		if r.err != nil || !r.receipt.Committed {
			t.Fatalf("the lone request's Publish = %+v, %v; want committed", r.receipt, r.err)
		}
		sizes, started := c.record()
		if !slices.Equal(sizes[2:], []int{1}) {
			t.Fatalf("commits after the cohort %v, want [1]", sizes[2:])
		}
		if got := started[2].Sub(start); got != 100*time.Microsecond {
			t.Errorf("the lone request was committed %v after it came, want at once at shutdown (100µs)", got)
		}
	})
}

// TestCohortWaitEndsWhenTheBatchIsFull: a waiting group that a request would overflow is
// committed the moment that request comes, and the request, carried to the next group,
// does not wait again; a request larger than a batch never waits at all.
func TestCohortWaitEndsWhenTheBatchIsFull(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := &idCommit{took: 2 * time.Millisecond}
		b, _ := startBroker(t, inproc.Options{Workers: 1, BatchEvents: 3, CohortWait: time.Millisecond}, c.commit)
		warmCohort(t, b, c, 3) // the cohort is two requests

		start := time.Now()
		first := publishAsync(t.Context(), b, events("two", 2))
		time.Sleep(300 * time.Microsecond)
		second := publishAsync(t.Context(), b, events("over", 2)) // 2 + 2 > 3
		for _, r := range []published{<-first, <-second} {
			if r.err != nil || len(r.receipt.Outcomes) != 2 {
				t.Fatalf("Publish = %+v, %v", r.receipt, r.err)
			}
		}
		sizes, started := c.record()
		if !slices.Equal(sizes[2:], []int{2, 2}) {
			t.Fatalf("commits after the cohort %v, want [2 2]", sizes[2:])
		}
		if got, want := started[2].Sub(start), 300*time.Microsecond; got != want {
			t.Errorf("the waiting group was committed %v after it began, want %v, when the overflowing request came", got, want)
		}
		if got, want := started[3].Sub(started[2]), c.took; got != want {
			t.Errorf("the carried request was committed %v after the group before it, want %v: no second wait", got, want)
		}

		// A cohort of three again, then a request larger than a batch: committed alone, at once.
		warmCohort(t, b, c, 3)
		start = time.Now()
		if _, err := b.Publish(t.Context(), events("big", 5)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if took := time.Since(start); took != c.took {
			t.Errorf("a request larger than a batch was answered after %v, want one commit's %v", took, c.took)
		}
	})
}

// TestCohortWaitAfterAFailingGroup: a group that fails is retried request by request, each
// publisher gets exactly its own answer, and the next group still waits no longer than the
// cohort wait, though the failed commit and its retries took far longer.
func TestCohortWaitAfterAFailingGroup(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := &idCommit{took: 2 * time.Millisecond, poisoned: "bad3-0"}
		b, _ := startBroker(t, inproc.Options{Workers: 1, CohortWait: time.Millisecond}, c.commit)

		// One request, and six queued behind its commit: one group of six.
		lead := publishAsync(t.Context(), b, events("lead", 1))
		synctest.Wait()
		results := make([]<-chan published, 6)
		for i := range results {
			results[i] = publishAsync(t.Context(), b, events(fmt.Sprintf("bad%d", i), 1))
		}
		if r := <-lead; r.err != nil {
			t.Fatalf("Publish: %v", r.err)
		}
		for i, result := range results {
			r := <-result
			if i == 3 {
				if !errors.Is(r.err, errCohortPoisoned) {
					t.Errorf("the poisoned request's Publish = %v, want its commit's error", r.err)
				}
				continue
			}
			if r.err != nil || len(r.receipt.Outcomes) != 1 {
				t.Errorf("neighbour %d = %+v, %v; want committed", i, r.receipt, r.err)
			}
		}
		sizes, _ := c.record()
		if !slices.Equal(sizes, []int{1, 6, 1, 1, 1, 1, 1, 1}) {
			t.Fatalf("commits %v, want 1, the group of 6, then each alone", sizes)
		}
		for id, n := range c.committed() {
			if n != 1 {
				t.Errorf("event %s committed %d times", id, n)
			}
		}

		synctest.Wait() // the worker is back at the queue, the instant the last retry ended
		start := time.Now()
		if _, err := b.Publish(t.Context(), events("lone", 1)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if took := time.Since(start); took != time.Millisecond+c.took {
			t.Errorf("the lone request after the failed group was answered after %v, want the 1ms wait and a commit", took)
		}
	})
}

// TestCohortWaitOutlivesAnAbandonedPublisher: a publisher that gives up during the cohort
// wait is answered at once, its request is still committed when the wait ends, and the
// queue's depth comes back to zero.
func TestCohortWaitOutlivesAnAbandonedPublisher(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, _, c := afterCohortOf7(t, 2*time.Millisecond, time.Millisecond)
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		result := publishAsync(ctx, b, events("impatient", 1))
		time.Sleep(100 * time.Microsecond)
		cancel()
		synctest.Wait()
		select {
		case r := <-result:
			if !errors.Is(r.err, context.Canceled) || uts.KindOf(r.err) != uts.KindUnavailable {
				t.Errorf("Publish = %v, want an unavailable context.Canceled", r.err)
			}
		default:
			t.Fatal("Publish still waits after its context ended")
		}
		time.Sleep(time.Hour)
		if depth, _ := b.Depth(t.Context()); depth != 0 {
			t.Errorf("Depth = %d, want 0", depth)
		}
		sizes, started := c.record()
		if !slices.Equal(sizes[2:], []int{1}) {
			t.Fatalf("commits after the cohort %v, want [1]", sizes[2:])
		}
		if got := started[2].Sub(start); got != time.Millisecond {
			t.Errorf("the abandoned request was committed %v after it came, want once the 1ms wait ran out", got)
		}
	})
}

// TestCohortWaitWithManyWorkers: publishers that each send their next request when the
// last is answered, over three workers that each wait for their own last commit's cohort,
// with batches small enough that requests are often carried to the next group. Every
// publisher is answered with its own outcomes, every event is committed exactly once, and
// nothing is left queued (run with -race: the workers share nothing but the queue).
func TestCohortWaitWithManyWorkers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const publishers, rounds = 24, 20
		size := func(p, r int) int { return 1 + (p+r)%3 }
		c := &idCommit{took: 2 * time.Millisecond}
		b, stop := startBroker(t, inproc.Options{Workers: 3, BatchEvents: 12, CohortWait: time.Millisecond}, c.commit)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for r := range rounds {
					// A different, fixed pause per publisher and round, so that waves spread.
					time.Sleep(time.Duration((p*7+r*3)%5) * 100 * time.Microsecond)
					receipt, err := b.Publish(t.Context(), events(fmt.Sprintf("p%d-r%d", p, r), size(p, r)))
					if err != nil || !receipt.Committed || len(receipt.Outcomes) != size(p, r) {
						t.Errorf("Publish = %+v, %v", receipt, err)
						return
					}
				}
			})
		}
		wg.Wait()
		stop()
		committed, want := c.committed(), 0
		for p := range publishers {
			for r := range rounds {
				for i := range size(p, r) {
					want++
					if id := fmt.Sprintf("p%d-r%d-%d", p, r, i); committed[id] != 1 {
						t.Errorf("event %s committed %d times, want once", id, committed[id])
					}
				}
			}
		}
		if n := len(committed); n != want {
			t.Errorf("%d events committed, want %d", n, want)
		}
		if sizes, _ := c.record(); !slices.ContainsFunc(sizes, func(n int) bool { return n > 3 }) {
			t.Errorf("commit sizes %v: no group of several requests, so nothing was gathered", sizes)
		}
		if depth, _ := b.Depth(t.Context()); depth != 0 {
			t.Errorf("Depth = %d, want 0", depth)
		}
	})
}
