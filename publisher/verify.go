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
	Got  Growth `json:"got"`
	OK   bool   `json:"ok"`
}

// VerifyError says the aggregator's counters did not grow as the run says they should.
type VerifyError struct{ Verification }

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify: received grew by %d (want %d), unique_processed by %d (want %d)",
		e.Got.Received, e.Want.Received, e.Got.UniqueProcessed, e.Want.UniqueProcessed)
}

// Verify reads /stats until its counters have grown from before by exactly want. With wait
// 0 it reads once: an aggregator that answers 200 has committed before answering. With a
// wait it polls, for a consumer that commits after a 202; it gives up early once
// unique_processed has overshot, since the store's counts never shrink. received may: in
// Redis mode it includes the events queued, and a batch committed but not yet acknowledged
// is counted in both for a moment.
func Verify(ctx context.Context, c *Client, before Stats, want Growth, wait time.Duration) (Verification, error) {
	deadline := time.Now().Add(wait)
	interval := 50 * time.Millisecond
	for {
		after, err := c.Stats(ctx)
		if err != nil {
			return Verification{Want: want}, fmt.Errorf("verify: %w", err)
		}
		v := Verification{Want: want, Got: growth(before, after)}
		v.OK = v.Got == want
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
