package redis

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/uts-events/uts"
)

// clockSkew is how far the clocks of Redis, which dates the entry IDs, and of the store,
// which dates the deliveries it records, may differ.
const clockSkew = time.Minute

// OldestEntry is the time of the oldest entry in the stream, less clockSkew, or the zero time
// when the stream is empty. Acknowledged entries are deleted, so every entry in the stream is
// in flight, pending or not yet read, and may be delivered (again): the store must keep the
// deliveries recorded from then on, or it would count a redelivery's events again. Stream IDs
// start with their time in milliseconds; an entry in the stream is at least as old as any
// commit of it, even after a Redis restored from an old snapshot brings back entries that
// were acknowledged since, or a replica freezes between its commit and its acknowledgement.
func (b *Broker) OldestEntry(ctx context.Context) (time.Time, error) {
	msgs, err := b.client.XRangeN(ctx, b.stream, "-", "+", 1).Result()
	if err != nil {
		return time.Time{}, uts.Unavailable("redis unavailable", err)
	}
	if len(msgs) == 0 {
		return time.Time{}, nil
	}
	ms, _, _ := strings.Cut(msgs[0].ID, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, uts.Errorf(uts.KindInternal, "redis: stream ID %q has no time", msgs[0].ID)
	}
	return time.UnixMilli(n).Add(-clockSkew), nil
}
