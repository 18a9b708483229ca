package redis

import (
	"context"

	"github.com/uts-events/uts"
)

// Backlog counts the entries behind Depth's events, in two: pending entries were delivered
// to a consumer of the group and are not yet acknowledged (being committed, or waiting to be
// claimed from a dead consumer), lag entries no consumer has read yet. A growing pending with a flat lag points at the
// store or a stuck consumer; a growing lag at too few consumers. It costs one XINFO GROUPS.
func (b *Broker) Backlog(ctx context.Context) (pending, lag int64, err error) {
	groups, err := b.client.XInfoGroups(ctx, b.stream).Result()
	if err != nil && !isNoSuchKey(err) {
		return 0, 0, uts.Unavailable("redis unavailable", err)
	}
	for _, g := range groups {
		if g.Name != b.opts.Group {
			continue
		}
		if g.Lag >= 0 {
			return g.Pending, g.Lag, nil
		}
		// Redis cannot always tell the lag (it gives up after some deletions, reporting -1).
		// Acknowledged entries are deleted, so what the stream holds beyond the pending
		// entries is the lag.
		n, err := b.client.XLen(ctx, b.stream).Result()
		if err != nil {
			return 0, 0, uts.Unavailable("redis unavailable", err)
		}
		return g.Pending, max(0, n-g.Pending), nil
	}
	return 0, 0, nil // no group yet: nothing was delivered or can be read through it
}
