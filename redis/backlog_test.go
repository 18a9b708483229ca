package redis

import (
	"context"
	"testing"

	"github.com/uts-events/uts"
)

func TestBacklogTellsPendingFromLag(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{})
	backlog := func() (pending, lag int64) {
		t.Helper()
		pending, lag, err := b.Backlog(context.Background())
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		depth, err := b.Depth(context.Background())
		if err != nil || depth != pending+lag {
			t.Fatalf("Depth = %d, %v; want pending + lag = %d", depth, err, pending+lag)
		}
		return pending, lag
	}
	if pending, lag := backlog(); pending != 0 || lag != 0 {
		t.Fatalf("empty stream: pending %d, lag %d; want 0, 0", pending, lag)
	}
	// One event per entry, so that Depth, which counts events, is pending + lag in entries.
	for _, e := range newEvents("backlog", 10) {
		publish(t, b, []uts.Event{e})
	}
	if pending, lag := backlog(); pending != 0 || lag != 10 {
		t.Fatalf("10 unread entries: pending %d, lag %d; want 0, 10", pending, lag)
	}
	readAsDeadConsumer(t, b, "reader", 4)
	if pending, lag := backlog(); pending != 4 || lag != 6 {
		t.Fatalf("4 of 10 read, none acknowledged: pending %d, lag %d; want 4, 6", pending, lag)
	}
}
