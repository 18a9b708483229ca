// Package backoff holds what the publisher's and the subscriber's clients share in repeating
// a request: exponential backoff with full jitter, a server's Retry-After, and which
// statuses are worth repeating.
package backoff

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Delay is the wait after attempt number attempt (from 1): a draw from zero up to base
// doubled per attempt, capped at maxDelay. A server's Retry-After wins over a shorter draw:
// it knows when it expects to have room.
func Delay(base, maxDelay time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	ceiling := base
	for i := 1; i < attempt && ceiling < maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxDelay)
	d := time.Duration(rand.Int64N(int64(ceiling) + 1))
	return max(d, retryAfter)
}

// Retryable reports whether a status means "try again": the server could not answer now.
// Every other 4xx means the request itself is wrong, and repeating it cannot help.
func Retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests
}

// ParseRetryAfter reads Retry-After as seconds or as an HTTP date; 0 when absent or unusable.
func ParseRetryAfter(value string, now time.Time) time.Duration {
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

// Sleep waits for d or until ctx ends, whose error it returns then.
func Sleep(ctx context.Context, d time.Duration) error {
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
