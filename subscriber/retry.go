package subscriber

import (
	"fmt"
	"time"

	"github.com/uts-events/uts/internal/backoff"
)

// RetryPolicy bounds how a request is repeated: exponential backoff with full jitter, so that
// subscribers cut off by the same outage come back spread out instead of in step.
type RetryPolicy struct {
	// MaxAttempts is the attempts per request, the first included; 0 retries for ever, which
	// is what a follower wants: it rides out an aggregator restart of any length.
	MaxAttempts int
	BaseDelay   time.Duration // the ceiling of the first wait
	MaxDelay    time.Duration // the ceiling no wait exceeds, unless the server asks for longer
}

// DefaultRetryPolicy retries for ever, waiting at most 5 s between attempts.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}
}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 0:
		return fmt.Errorf("retry attempts must not be negative (0 retries for ever), got %d", p.MaxAttempts)
	case p.BaseDelay <= 0:
		return fmt.Errorf("retry base delay must be positive, got %v", p.BaseDelay)
	case p.MaxDelay < p.BaseDelay:
		return fmt.Errorf("retry max delay %v is below the base delay %v", p.MaxDelay, p.BaseDelay)
	}
	return nil
}

// delay is the wait after attempt number attempt (from 1); see backoff.Delay.
func (p RetryPolicy) delay(attempt int, retryAfter time.Duration) time.Duration {
	return backoff.Delay(p.BaseDelay, p.MaxDelay, attempt, retryAfter)
}

var (
	retryable       = backoff.Retryable
	parseRetryAfter = backoff.ParseRetryAfter
	sleepContext    = backoff.Sleep
)
