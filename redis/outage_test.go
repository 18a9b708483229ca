package redis

import (
	"context"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/brokertest"
	"github.com/uts-events/uts/internal/testenv"
)

func TestRedisOutage(t *testing.T) {
	t.Parallel()
	server := testenv.StartRedisServer(t, "--appendonly", "no")
	b := openAt(t, server.URL(), Options{})
	s := newStore()
	brokertest.Consume(t, b, s.commit)
	before := newEvents("before", 3)
	publish(t, b, before)
	waitFor(t, "the events published before the outage to be stored", func() error { return s.missing(before) })

	server.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := time.Now()
	if _, err := b.Publish(ctx, newEvents("during", 2)); uts.KindOf(err) != uts.KindUnavailable {
		t.Errorf("Publish while redis is down = %v, want KindUnavailable", err)
	}
	t.Logf("Publish failed after %v", time.Since(start))
	if err := b.Ready(ctx); uts.KindOf(err) != uts.KindUnavailable {
		t.Errorf("Ready while redis is down = %v, want KindUnavailable", err)
	}

	// Restarted without persistence: the stream and the group are gone, the broker is not.
	server.Start()
	waitFor(t, "Ready once redis is back", func() error { return b.Ready(ctx) })
	after := newEvents("after", 3)
	publish(t, b, after)
	waitFor(t, "the events published after the outage to be stored", func() error { return s.missing(after) })
	waitIdle(t, b)
}
