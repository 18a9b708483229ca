package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/brokertest"
	"github.com/uts-events/uts/internal/testenv"
)

// TestReplicaCutOffTheStoreLetsGo: a replica that reaches Redis but not the store holds the
// entries it read, waiting, and used to claim them again every ClaimIdle/3 for as long as the
// partition lasted, so no other replica could take them. It now lets go after holdClaims ×
// ClaimIdle, and a replica that reaches the store commits every event within a bound.
func TestReplicaCutOffTheStoreLetsGo(t *testing.T) {
	t.Parallel()
	const claimIdle = 200 * time.Millisecond
	prefix := testenv.RedisPrefix(t, testenv.RedisURL(t))
	opts := Options{KeyPrefix: prefix, ClaimIdle: claimIdle, Consumer: "cut-off"}
	cutOff := openTest(t, opts)
	unreachable := newStore()
	unreachable.setFail(func([]uts.Event) error { return uts.Unavailable("store down", errors.New("connection refused")) })
	brokertest.Consume(t, cutOff, unreachable.commit)
	events := newEvents("partition", 250)
	publish(t, cutOff, events)
	waitFor(t, "the cut-off replica to hold every entry", func() error {
		if n, err := pendingCount(context.Background(), cutOff); err != nil || n != 3 {
			return fmt.Errorf("%d pending, %v", n, err)
		}
		return nil
	})

	opts.Consumer = "healthy"
	healthy := openTest(t, opts)
	reachable := newStore()
	started := time.Now()
	brokertest.Consume(t, healthy, reachable.commit)
	// holdClaims × ClaimIdle to let go, ClaimIdle to go idle, ClaimIdle/2 to the next scan,
	// and room to spare.
	bound := 20 * claimIdle
	testenv.Eventually(t, "the healthy replica to store every event", bound, 10*time.Millisecond,
		func() error { return reachable.missing(events) })
	t.Logf("stored by the healthy replica %v after it started", time.Since(started).Round(time.Millisecond))
	waitIdle(t, healthy)
}

// TestEvictingRedisIsRefused: under an allkeys-* maxmemory-policy a full Redis evicts the
// stream, with its group, and the events it held are gone though they had their 202. Open
// refuses such a Redis, and takes one that refuses writes or evicts only keys with a TTL.
func TestEvictingRedisIsRefused(t *testing.T) {
	t.Parallel()
	for policy, refused := range map[string]bool{"allkeys-lru": true, "allkeys-random": true, "noeviction": false, "volatile-lru": false} {
		server := testenv.StartRedisServer(t, "--maxmemory-policy", policy)
		b, err := Open(context.Background(), server.URL(), Options{})
		if err == nil {
			b.Close()
		}
		if refused && (err == nil || !strings.Contains(err.Error(), policy)) {
			t.Errorf("maxmemory-policy %s: Open returned %v; want an error naming the policy", policy, err)
		}
		if !refused && err != nil {
			t.Errorf("maxmemory-policy %s: %v; want it taken", policy, err)
		}
	}
}

// TestRestartsDoNotUseUpMaxDeliveries: a replica restarted under its name reads its pending
// entries again, which raises their delivery count though no store saw them. Only the store's
// rejections count toward dead-lettering: an entry delivered MaxDeliveries times through
// restarts and then rejected once is retried and committed, and an entry the store always
// rejects is still dead-lettered, after exactly MaxDeliveries rejections.
func TestRestartsDoNotUseUpMaxDeliveries(t *testing.T) {
	t.Parallel()
	const maxDeliveries = 3
	var counted atomic.Int64
	b := openTest(t, Options{Consumer: "restarted", MaxDeliveries: maxDeliveries, ClaimIdle: 100 * time.Millisecond,
		DeadLetter: func(ctx context.Context, delivery string, n int) error { counted.Add(int64(n)); return nil }})
	flaky, poison := newEvents("flaky", 2), newEvents("poison", 2)
	publish(t, b, flaky)
	publish(t, b, poison)
	// Three crash restarts: each reads the replica's pending entries and dies with them.
	readAsDeadConsumer(t, b, "restarted", 2)
	for range maxDeliveries - 1 {
		if _, err := b.client.XReadGroup(context.Background(), &goredis.XReadGroupArgs{
			Group: b.opts.Group, Consumer: "restarted", Streams: []string{b.stream, "0"}, Count: 2,
		}).Result(); err != nil {
			t.Fatal(err)
		}
	}

	s := newStore()
	var flakyRejected bool
	poisonRejections := 0
	s.setFail(func(batch []uts.Event) error {
		for _, e := range batch {
			switch {
			case e.Key() == poison[0].Key():
				if len(batch) == len(poison) {
					poisonRejections++
				}
				return errRejected
			case e.Key() == flaky[0].Key() && len(batch) == len(flaky) && !flakyRejected:
				flakyRejected = true
				return errRejected
			}
		}
		return nil
	})
	brokertest.Consume(t, b, s.commit)
	waitFor(t, "the flaky entry to be stored", func() error { return s.missing(flaky) })
	waitIdle(t, b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !flakyRejected || poisonRejections != maxDeliveries {
		t.Errorf("flaky rejected %v, poison rejected alone %d times; want true and MaxDeliveries = %d",
			flakyRejected, poisonRejections, maxDeliveries)
	}
	if n := counted.Load(); n != int64(len(poison)) {
		t.Errorf("DeadLetter counted %d events, want the poison entry's %d", n, len(poison))
	}
	if n, err := b.client.HLen(context.Background(), b.rejections).Result(); err != nil || n != 0 {
		t.Errorf("%d rejection counts left (%v); acknowledged entries must leave none", n, err)
	}
}
