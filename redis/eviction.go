package redis

import (
	"context"
	"fmt"
	"strings"
)

// checkEviction refuses a Redis that may evict keys it needs. Under an allkeys-* policy a
// full Redis evicts whatever key it picks, the stream with its consumer group among them, so
// events that had their 202 vanish without a trace. noeviction refuses writes instead (Publish
// answers 503, which the publisher retries), and volatile-* evicts only keys with a TTL, which
// none of the broker's has. A Redis that forbids CONFIG (managed services often do) cannot
// be checked: a warning says so.
func (b *Broker) checkEviction(ctx context.Context) error {
	config, err := b.client.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		b.log.WarnContext(ctx, "cannot check redis maxmemory-policy; under an allkeys-* policy redis may evict queued events", "err", err)
		return nil
	}
	policy := config["maxmemory-policy"]
	if policy == "" || policy == "noeviction" || strings.HasPrefix(policy, "volatile-") {
		return nil
	}
	return fmt.Errorf("redis maxmemory-policy is %s: a full redis would evict the stream of queued events; set it to noeviction (or a volatile-* policy)", policy)
}
