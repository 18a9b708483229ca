package redis

import (
	"context"
	"time"
)

// backoff doubles the wait between attempts at something that keeps failing, up to max, so
// an outage is neither hammered nor noticed late once it ends.
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
	return sleep(ctx, d)
}

func (b *backoff) reset() { b.next = 0 }

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
