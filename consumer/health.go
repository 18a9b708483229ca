package consumer

import (
	"fmt"
	"sync"
	"time"

	"github.com/uts-events/uts"
)

// failureFresh is how long a failed commit keeps the consumer unready when no commit is in
// flight: longer than a Redis consumer waits between attempts (5 s at most), so that a
// store that keeps failing stays unready, and short enough that an in-process aggregator,
// which commits only what is published, takes traffic again to find out whether the store
// is back.
const failureFresh = 10 * time.Second

// health is what the latest commits say about the store. A ping can pass while every write
// fails (a locked table, a statement timeout, a read-only database), so readiness asks the
// commits too.
type health struct {
	mu       sync.Mutex
	failure  error // the latest finished commit's error when it was uts.Unavailable
	failedAt time.Time
	inFlight int
}

func (h *health) begin() {
	h.mu.Lock()
	h.inFlight++
	h.mu.Unlock()
}

// end records a commit's result. Only an outage counts: a batch the store rejects says
// nothing about the store.
func (h *health) end(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inFlight--
	switch {
	case err == nil:
		h.failure = nil
	case uts.KindOf(err) == uts.KindUnavailable:
		h.failure, h.failedAt = err, time.Now()
	}
}

// Ready returns an error while the store's latest commit failed with uts.Unavailable (the
// store stalled, is read-only, full or unreachable) and either a commit is being tried again
// or the failure is recent; nil once a commit goes through. /readyz answers 503 meanwhile.
func (c *Consumer) Ready() error {
	h := &c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failure != nil && (h.inFlight > 0 || time.Since(h.failedAt) < failureFresh) {
		return fmt.Errorf("the latest commit failed: %w", h.failure)
	}
	return nil
}
