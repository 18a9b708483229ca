package publisher

import (
	"context"
	"fmt"
	"time"
)

// Growth is how much the aggregator's counters moved.
type Growth struct {
	Received        int64 `json:"received"`
	UniqueProcessed int64 `json:"unique_processed"`
}

func growth(before, after Stats) Growth {
	return Growth{
		Received:        after.Received - before.Received,
		UniqueProcessed: after.UniqueProcessed - before.UniqueProcessed,
	}
}

// Verification compares what a run delivered with what the aggregator counted.
type Verification struct {
	Want Growth `json:"want"`
	// UniqueAtMost makes Want.UniqueProcessed a bound rather than the exact growth: the run
	// sent events that may be stored already, and its answers (202) did not say which.
	UniqueAtMost bool   `json:"unique_at_most,omitempty"`
	Got          Growth `json:"got"`
	OK           bool   `json:"ok"`
}

func (v Verification) wantUnique() string {
	if v.UniqueAtMost {
		return fmt.Sprintf("at most +%d", v.Want.UniqueProcessed)
	}
	return fmt.Sprintf("+%d", v.Want.UniqueProcessed)
}

// VerifyError says the aggregator's counters did not grow as the run says they should.
type VerifyError struct{ Verification }

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify: received grew by %d (want %d), unique_processed by %d (want %s)",
		e.Got.Received, e.Want.Received, e.Got.UniqueProcessed, e.wantUnique())
}

// Verify reads /stats until its counters have grown from before by exactly want (with
// uniqueAtMost, received by exactly want and unique_processed by at most want, once the
// aggregator has drained: every received event counted as unique, duplicate or dead). With
// wait 0 it reads once: an aggregator that answers 200 has committed before answering. With
// a wait it polls, for a consumer that commits after a 202; it gives up early once
// unique_processed has overshot, since the store's counts never shrink. received may: in
// Redis mode it includes the events queued, and a batch committed but not yet acknowledged
// is counted in both for a moment.
func Verify(ctx context.Context, c *Client, before Stats, want Growth, uniqueAtMost bool, wait time.Duration) (Verification, error) {
	deadline := time.Now().Add(wait)
	interval := 50 * time.Millisecond
	for {
		after, err := c.Stats(ctx)
		if err != nil {
			return Verification{Want: want}, fmt.Errorf("verify: %w", err)
		}
		v := Verification{Want: want, UniqueAtMost: uniqueAtMost, Got: growth(before, after)}
		if uniqueAtMost {
			v.OK = v.Got.Received == want.Received && v.Got.UniqueProcessed <= want.UniqueProcessed && drained(after)
		} else {
			v.OK = v.Got == want
		}
		overshot := v.Got.UniqueProcessed > want.UniqueProcessed
		if v.OK {
			return v, nil
		}
		if overshot || !time.Now().Before(deadline) {
			return v, &VerifyError{v}
		}
		if err := sleepContext(ctx, min(interval, time.Until(deadline))); err != nil {
			return v, fmt.Errorf("verify: %w", err)
		}
		interval = min(interval*2, 250*time.Millisecond)
	}
}

// drained reports whether the aggregator has decided every event it received.
func drained(s Stats) bool {
	return s.Received == s.UniqueProcessed+s.DuplicateDropped+s.DeadLettered
}
