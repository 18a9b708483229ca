package http

import (
	"context"
	"fmt"
	"time"

	"github.com/uts-events/uts"
)

const (
	// maxWait is the longest a request may wait for events (wait=).
	maxWait = 60 * time.Second
	// defaultMaxWaiting caps the requests that wait for events at once, per process.
	defaultMaxWaiting = 1000
)

// waitParam reads wait= as a Go duration ("30s", "500ms") or whole seconds ("30"), from 0 to
// maxWait.
func waitParam(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		var secs int
		if _, scanErr := fmt.Sscanf(raw, "%d", &secs); scanErr != nil || fmt.Sprint(secs) != raw {
			return 0, invalidParam("wait", "must be a duration such as 30s or 500ms, or whole seconds")
		}
		d = time.Duration(secs) * time.Second
	}
	if d < 0 || d > maxWait {
		return 0, invalidParam("wait", fmt.Sprintf("must be from 0 to %s", maxWait))
	}
	return d, nil
}

// waitSlots caps the requests waiting for events at once: each holds a slot while it waits,
// and one that finds none answers 503 at once instead of queueing.
type waitSlots chan struct{}

func newWaitSlots(n int) waitSlots {
	if n <= 0 {
		n = defaultMaxWaiting
	}
	return make(waitSlots, n)
}

// take takes a slot, or says the process is at its cap; release returns it.
func (s waitSlots) take() (release func(), err error) {
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	default:
		return nil, uts.Unavailable(fmt.Sprintf("too many requests are waiting for events (at most %d); retry later", cap(s)), nil)
	}
}

// readFeed returns the events after q.After. When there are none and wait is positive, it
// waits until a commit brings some (woken by store.Committed, never by polling) or until
// wait has passed, and then returns what there is, perhaps nothing. A client that goes away
// ends the wait too, and so does the server's shutdown.
func readFeed(ctx context.Context, store uts.Store, q uts.EventQuery, wait time.Duration, shutdown <-chan struct{}) ([]uts.StoredEvent, error) {
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = untilShutdown(ctx, shutdown)
		defer cancel()
	}
	var timeout <-chan time.Time
	for {
		committed := store.Committed() // taken before reading, so no commit in between is missed
		events, err := store.Events(ctx, q)
		if err != nil && isClosed(shutdown) {
			return nil, nil // a read cut by the shutdown ends the wait as the shutdown does
		}
		if err != nil || len(events) > 0 || wait <= 0 {
			return events, err
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-committed:
		case <-timeout:
			return events, nil
		case <-ctx.Done():
			return events, nil
		case <-shutdown:
			return events, nil
		}
	}
}

// untilShutdown is ctx, also cancelled when shutdown closes: a read of a stalled store must
// not hold a wait or a stream, and so the server's shutdown, for as long as the stall lasts.
func untilShutdown(ctx context.Context, shutdown <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if shutdown != nil {
		go func() {
			select {
			case <-shutdown:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// isClosed reports whether ch is closed; a nil ch never is.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
