package subscriber

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
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

// delay is the wait after attempt number attempt (from 1). A server's Retry-After wins over a
// shorter draw: it knows when it expects to have room.
func (p RetryPolicy) delay(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := p.BaseDelay
	for i := 1; i < attempt && ceiling < p.MaxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxDelay)
	d := time.Duration(rand.Int64N(int64(ceiling) + 1))
	return max(d, retryAfter)
}

// retryable reports whether a status means "try again": the server could not answer now.
// Every other 4xx means the request itself is wrong, and repeating it cannot help.
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
