package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/redis"
	"github.com/uts-events/uts/sqlite"
)

// TestPendingEntryKeepsItsDelivery: an entry can stay in the stream past the deliveries'
// retention (a Redis restored from an old snapshot, a replica frozen between its commit and
// its acknowledgement). Pruning its delivery then made its redelivery count again. With the
// broker's oldest entry holding the pruning back, the delivery of an entry still in the
// stream stays, whatever the cutoff, and goes once the entry is acknowledged.
func TestPendingEntryKeepsItsDelivery(t *testing.T) {
	t.Parallel()
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t, redisURL)
	rc := testenv.RedisClient(t, redisURL)
	ctx := t.Context()
	broker, err := redis.Open(ctx, redisURL, redis.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlite.WithDeliveriesHeld(broker.OldestEntry))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// An entry published an hour ago, read by a replica that froze before acknowledging it.
	id := rc.XAdd(ctx, &goredis.XAddArgs{Stream: prefix + "events", ID: fmt.Sprintf("%d-0", time.Now().Add(-time.Hour).UnixMilli()),
		Values: []any{"events", "[]"}}).Val()
	if err := rc.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "aggregators", Consumer: "frozen",
		Streams: []string{prefix + "events", ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}
	e := event("held")
	e.Delivery = prefix + "events/" + id
	commit := func(want uts.Outcome, received int64) {
		t.Helper()
		outcomes, err := s.Append(ctx, []uts.Event{e})
		if err != nil || len(outcomes) != 1 || outcomes[0] != want {
			t.Fatalf("Append: %v, %v; want %v", outcomes, err, want)
		}
		if st, err := s.Stats(ctx); err != nil || st.Received != received {
			t.Fatalf("received %d, %v; want %d", st.Received, err, received)
		}
	}
	commit(uts.OutcomeNew, 1)

	// Past retention: every delivery recorded so far is older than the cutoff.
	future := time.Now().Add(time.Hour)
	if n, err := s.PruneDeliveries(ctx, future); err != nil || n != 0 {
		t.Fatalf("pruned %d, %v with the entry pending; want 0", n, err)
	}
	commit(uts.OutcomeDuplicate, 1) // the redelivery is known: counted once

	if err := rc.XAck(ctx, prefix+"events", "aggregators", id).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.XDel(ctx, prefix+"events", id).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneDeliveries(ctx, future); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v once the entry is acknowledged; want 1", n, err)
	}
}
