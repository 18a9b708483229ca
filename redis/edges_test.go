package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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
