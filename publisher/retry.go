package publisher

import (
	"fmt"
	"time"

	"github.com/uts-events/uts/internal/backoff"
)

// RetryPolicy bounds how a request is repeated: exponential backoff with full jitter, so
// that many publishers hitting a full queue at once spread out instead of returning in step.
type RetryPolicy struct {
	MaxAttempts int           // attempts per request, the first included
	BaseDelay   time.Duration // the ceiling of the first wait
	MaxDelay    time.Duration // the ceiling no wait exceeds, unless the server asks for longer
}

// DefaultRetryPolicy rides out a restart of the aggregator (about 20 s of waiting in all).
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 8, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}
}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("retry attempts must be at least 1, got %d", p.MaxAttempts)
	case p.BaseDelay <= 0:
		return fmt.Errorf("retry base delay must be positive, got %v", p.BaseDelay)
	case p.MaxDelay < p.BaseDelay:
		return fmt.Errorf("retry max delay %v is below the base delay %v", p.MaxDelay, p.BaseDelay)
	}
	return nil
}

// delay is the wait before the attempt after attempt number `attempt` (from 1); see
// backoff.Delay.
func (p RetryPolicy) delay(attempt int, retryAfter time.Duration) time.Duration {
	return backoff.Delay(p.BaseDelay, p.MaxDelay, attempt, retryAfter)
}

var (
	retryable       = backoff.Retryable
	parseRetryAfter = backoff.ParseRetryAfter
	sleepContext    = backoff.Sleep
)
