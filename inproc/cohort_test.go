package inproc_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/inproc"
)

// timedCommit stores nothing; each call takes the time given (the bubble's clock) and is
// recorded with its size and the instant it began.
type timedCommit struct {
	took time.Duration

	mu      sync.Mutex
	sizes   []int
	started []time.Time
}

func (c *timedCommit) commit(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(events))
	c.started = append(c.started, time.Now())
	c.mu.Unlock()
	time.Sleep(c.took)
	outcomes := make([]uts.Outcome, len(events))
	for i := range outcomes {
		outcomes[i] = uts.OutcomeNew
	}
	return outcomes, nil
}

func (c *timedCommit) record() ([]int, []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sizes), slices.Clone(c.started)
}

// cohortBroker runs a one-worker broker without linger in the bubble, and commits a cohort
// of seven single-event requests, so that the next group's cohort is seven and the last
// commit took c.took.
func cohortBroker(t *testing.T, cohortWait time.Duration, c *timedCommit) *inproc.Broker {
	b := inproc.New(inproc.Options{Workers: 1, Linger: 0, CohortWait: cohortWait})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- b.Consume(ctx, c.commit) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
	// One request first, then seven that queue behind its commit: a group of seven.
	publishAll(t, b, "warm", 1)
	synctest.Wait()
	publishAll(t, b, "cohort", 7)
	synctest.Wait()
	time.Sleep(time.Hour) // until every commit so far is over: the bubble's clock
	if sizes, _ := c.record(); !slices.Equal(sizes, []int{1, 7}) {
		t.Fatalf("warm-up commits %v, want [1 7]", sizes)
	}
	return b
}

// publishAll publishes n single-event requests at once, without waiting for their answers.
func publishAll(t *testing.T, b *inproc.Broker, tag string, n int) {
	for i := range n {
		go func() {
			if _, err := b.Publish(t.Context(), events(fmt.Sprintf("%s%d", tag, i), 1)); err != nil {
				t.Errorf("Publish: %v", err)
			}
		}()
	}
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
				c := &timedCommit{took: 2 * time.Millisecond}
				b := cohortBroker(t, tc.cohortWait, c)
				start := time.Now()
				publishAll(t, b, "lone", 1)
				time.Sleep(300 * time.Microsecond)
				publishAll(t, b, "back", 3)
				time.Sleep(time.Hour)
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

// TestCohortWaitEndsAtItsLimit: a lone request after a cohort of seven waits no longer than
// the cohort wait, nor longer than the last commit took, and is then committed alone.
func TestCohortWaitEndsAtItsLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		took, cohortWait, wantWait time.Duration
	}{
		{2 * time.Millisecond, time.Millisecond, time.Millisecond},
		{400 * time.Microsecond, time.Millisecond, 400 * time.Microsecond},
	} {
		t.Run(fmt.Sprintf("took=%v", tc.took), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := &timedCommit{took: tc.took}
				b := cohortBroker(t, tc.cohortWait, c)
				start := time.Now()
				publishAll(t, b, "lone", 1)
				time.Sleep(time.Hour)
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
		c := &timedCommit{took: 2 * time.Millisecond}
		b := inproc.New(inproc.Options{Workers: 1, Linger: 0, CohortWait: time.Millisecond})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Consume(ctx, c.commit) }()
		for i := range 5 {
			sent := time.Now()
			if _, err := b.Publish(t.Context(), events(fmt.Sprintf("one%d", i), 1)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if took := time.Since(sent); took != c.took {
				t.Errorf("request %d answered after %v, want the commit's %v alone", i, took, c.took)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
}
