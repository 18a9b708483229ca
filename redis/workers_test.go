package redis

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// TestWorkersCommitInParallel runs three consume loops: each joins the group under its own
// name, and two commits are in progress at once, which one loop could never do.
func TestWorkersCommitInParallel(t *testing.T) {
	b := openTest(t, Options{Consumer: "replica", Workers: 3, BatchEvents: 1})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	var (
		mu          sync.Mutex
		inFlight    int
		maxInFlight int
	)
	bothIn := make(chan struct{})
	var once sync.Once
	commit := func(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		if inFlight >= 2 {
			once.Do(func() { close(bothIn) })
		}
		mu.Unlock()
		select { // hold the commit until another loop is in one too, or give up
		case <-bothIn:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		out := make([]uts.Outcome, len(events))
		for i := range out {
			out[i] = uts.OutcomeNew
		}
		return out, nil
	}
	consumeCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Consume(consumeCtx, commit) }()

	events := make([]uts.Event, 6)
	for i := range events {
		events[i] = uts.Event{Topic: "t", EventID: string(rune('a' + i)), Timestamp: time.Unix(0, 0).UTC(), Source: "s", Payload: []byte("{}")}
	}
	for _, e := range events { // an entry each, so that there is more than one to commit
		if _, err := b.Publish(ctx, []uts.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-bothIn:
	case <-ctx.Done():
		t.Fatal("no two commits ran at once")
	}
	for depth := int64(1); depth > 0; {
		if ctx.Err() != nil {
			t.Fatalf("stream not drained: depth %d", depth)
		}
		time.Sleep(20 * time.Millisecond)
		var err error
		if depth, err = b.Depth(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if names := consumerNames(t, b); !slices.Equal(names, []string{"replica", "replica/2", "replica/3"}) {
		t.Fatalf("consumers %v, want replica, replica/2, replica/3", names)
	}
}
