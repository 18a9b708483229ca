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

// idCommit takes the time given (the bubble's clock) per call, records every call's event
// ids and start, and fails any call that holds the poisoned id.
type idCommit struct {
	took     time.Duration
	poisoned string

	mu      sync.Mutex
	calls   [][]string
	started []time.Time
}

var errCohortPoisoned = errors.New("poisoned")

func (c *idCommit) commit(ctx context.Context, evs []uts.Event) ([]uts.Outcome, error) {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.EventID
	}
	c.mu.Lock()
	c.calls = append(c.calls, ids)
	c.started = append(c.started, time.Now())
	c.mu.Unlock()
	time.Sleep(c.took)
	if c.poisoned != "" && slices.Contains(ids, c.poisoned) {
		return nil, errCohortPoisoned
	}
	outcomes := make([]uts.Outcome, len(evs))
	for i := range outcomes {
		outcomes[i] = uts.OutcomeNew
	}
	return outcomes, nil
}

func (c *idCommit) record() ([]int, []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sizes := make([]int, len(c.calls))
	for i, ids := range c.calls {
		sizes[i] = len(ids)
	}
	return sizes, slices.Clone(c.started)
}

// committed counts, per event id, the calls that committed it (poisoned calls excluded).
func (c *idCommit) committed() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := map[string]int{}
	for _, ids := range c.calls {
		if c.poisoned != "" && slices.Contains(ids, c.poisoned) {
			continue
		}
		for _, id := range ids {
			n[id]++
		}
	}
	return n
}

// startBroker runs Consume in the bubble; stop cancels it and waits for it to return,
// failing the test unless it returns within the bubble's hour.
func startBroker(t *testing.T, opts inproc.Options, commit uts.CommitFunc) (b *inproc.Broker, stop func()) {
	b = inproc.New(opts)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, commit) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Consume: %v", err)
			}
		case <-time.After(time.Hour):
			t.Errorf("Consume did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return b, stop
}

// warmCohort commits one request, then a group of n single-event requests that queued
// behind it, and returns the instant that group's commit answered them, with the worker
// back at the queue: its last commit answered n, took c.took and ended now.
func warmCohort(t *testing.T, b *inproc.Broker, c *idCommit, n int) {
	t.Helper()
	before, _ := c.record()
	warm := publishAll(t, b, fmt.Sprintf("warm%d-", len(before)), 1)
	synctest.Wait()
	cohort := publishAll(t, b, fmt.Sprintf("cohort%d-", len(before)), n)
	warm()
	cohort()
	synctest.Wait()
	if sizes, _ := c.record(); !slices.Equal(sizes[len(before):], []int{1, n}) {
		t.Fatalf("warm-up commits %v, want [1 %d]", sizes[len(before):], n)
	}
}

// afterCohortOf7 starts a one-worker broker whose commits take took, with the cohort wait
// given, and returns it the instant a commit of seven requests has answered them.
func afterCohortOf7(t *testing.T, took, cohortWait time.Duration) (*inproc.Broker, func(), *idCommit) {
	t.Helper()
	c := &idCommit{took: took}
	b, stop := startBroker(t, inproc.Options{Workers: 1, CohortWait: cohortWait}, c.commit)
	warmCohort(t, b, c, 7)
	return b, stop, c
}

// publishAll publishes n single-event requests at once; the function it returns waits until
// all are answered.
func publishAll(t *testing.T, b *inproc.Broker, tag string, n int) (wait func()) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := b.Publish(t.Context(), events(fmt.Sprintf("%s%d", tag, i), 1)); err != nil {
				t.Errorf("Publish: %v", err)
			}
		})
	}
	return wg.Wait
}

// TestCohortWaitGathersTheAnsweredRequests: after a commit that answered seven requests, a
// request that finds the queue empty waits for half of them to come back, and is committed
// with them the moment they do; without the wait it is committed alone and they follow in a
// commit of their own.
func TestCohortWaitGathersTheAnsweredRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cohortWait time.Duration
		want       []int
	}{
		{time.Millisecond, []int{4}},
		{0, []int{1, 3}},
	} {
		t.Run(fmt.Sprint(tc.cohortWait), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, _, c := afterCohortOf7(t, 2*time.Millisecond, tc.cohortWait)
				start := time.Now()
				lone := publishAll(t, b, "lone", 1)
				time.Sleep(300 * time.Microsecond)
				publishAll(t, b, "back", 3)()
				lone()
				sizes, started := c.record()
				if got := sizes[2:]; !slices.Equal(got, tc.want) {
					t.Fatalf("commits after the cohort %v, want %v", got, tc.want)
				}
				wantStart := start
				if tc.cohortWait > 0 {
					wantStart = start.Add(300 * time.Microsecond) // when the fourth came
				}
				if started[2] != wantStart {
					t.Errorf("the next commit began %v after the lone request, want %v", started[2].Sub(start), wantStart.Sub(start))
				}
			})
		})
	}
}

// TestCohortWaitEndsAtItsLimit: a lone request after a cohort of seven waits at most until
// the cohort wait, or the last commit's own duration if shorter, has passed since that commit
// ended, and is then committed alone; one that comes after that does not wait at all, since
// nobody from that cohort is coming back.
func TestCohortWaitEndsAtItsLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		took, idle, wantWait time.Duration
	}{
		{2 * time.Millisecond, 0, time.Millisecond},
		{400 * time.Microsecond, 0, 400 * time.Microsecond},
		{2 * time.Millisecond, 600 * time.Microsecond, 400 * time.Microsecond},
		{2 * time.Millisecond, time.Millisecond, 0},
		{2 * time.Millisecond, time.Hour, 0},
	} {
		t.Run(fmt.Sprintf("took=%v/idle=%v", tc.took, tc.idle), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, _, c := afterCohortOf7(t, tc.took, time.Millisecond)
				time.Sleep(tc.idle)
				start := time.Now()
				publishAll(t, b, "lone", 1)()
				sizes, started := c.record()
				if !slices.Equal(sizes[2:], []int{1}) {
					t.Fatalf("commits after the cohort %v, want [1]", sizes[2:])
				}
				if waited := started[2].Sub(start); waited != tc.wantWait {
					t.Errorf("the lone request waited %v, want %v", waited, tc.wantWait)
				}
			})
		})
	}
}

// TestCohortWaitAddsNothingAtLightLoad: one publisher sending a request after each answer
// is a cohort of one, the request that starts each group, so no request ever waits.
func TestCohortWaitAddsNothingAtLightLoad(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := &idCommit{took: 2 * time.Millisecond}
		b, _ := startBroker(t, inproc.Options{Workers: 1, CohortWait: time.Millisecond}, c.commit)
		for i := range 5 {
			sent := time.Now()
			if _, err := b.Publish(t.Context(), events(fmt.Sprintf("one%d", i), 1)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if took := time.Since(sent); took != c.took {
				t.Errorf("request %d answered after %v, want the commit's %v alone", i, took, c.took)
			}
		}
	})
}
