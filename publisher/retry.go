package publisher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
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

// delay is the wait before the attempt after attempt number `attempt` (from 1). A server's
// Retry-After wins over a shorter draw: it knows when its queue will have room.
func (p RetryPolicy) delay(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := p.BaseDelay
	for i := 1; i < attempt && ceiling < p.MaxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxDelay)
	d := time.Duration(rand.Int64N(int64(ceiling) + 1))
	return max(d, retryAfter)
}

// retryable reports whether a status means "try again": the request changed nothing.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date; 0 when absent or unusable.
func parseRetryAfter(value string, now time.Time) time.Duration {
	if value == "" {
		return 0
	}
	if s, err := strconv.Atoi(value); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(value); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
