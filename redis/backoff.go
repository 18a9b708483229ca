package redis

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff doubles the wait between attempts at something that keeps failing, up to max, so
// an outage is neither hammered nor noticed late once it ends. Each wait is drawn between
// half the interval and the whole, so that the consumers of every replica, which met the
// outage together, do not all try again in the same instant.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff() backoff { return backoff{min: 50 * time.Millisecond, max: 5 * time.Second} }

// wait sleeps for the next interval; it returns false if ctx ends first.
func (b *backoff) wait(ctx context.Context) bool {
	if b.next == 0 {
		b.next = b.min
	}
	d := b.next
	b.next = min(2*b.next, b.max)
	return sleep(ctx, jitter(d))
}

func (b *backoff) reset() { b.next = 0 }

// jitter is a random duration from d/2 to d.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d; it returns false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
