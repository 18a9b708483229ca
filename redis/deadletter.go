package redis

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/uts-events/uts"
)

// rejected handles an entry the store rejected on its own: it stays pending, to be claimed
// again after ClaimIdle, until the store has rejected it MaxDeliveries times. Rejections are
// counted in a hash of their own, not read from the entry's delivery count: a replica that
// restarts under its name reads its pending entries again, which raises their delivery count
// though no store saw them, and crash restarts would use up MaxDeliveries. The count is
// forgotten when the entry is acknowledged (see ackScript).
func (c *consumer) rejected(ctx context.Context, e entry, reason error) {
	rejections, err := c.client.HIncrBy(context.WithoutCancel(ctx), c.rejections, e.id, 1).Result()
	if err != nil {
		c.log.WarnContext(ctx, "count rejection failed; the entry stays pending", "id", e.id, "err", err)
		return
	}
	if rejections < int64(c.opts.MaxDeliveries) {
		c.log.WarnContext(ctx, "store rejected an entry; it will be retried",
			"id", e.id, "events", len(e.events), "topic", e.events[0].Topic, "event_id", e.events[0].EventID,
			"rejections", rejections, "err", reason)
		return
	}
	c.deadLetter(ctx, e, rejections, reason)
}

// deadLetter gives up on an entry: its events are counted with the store first, so that the
// totals still add up, then the entry is copied to the dead-letter stream with the reason,
// acknowledged and deleted, all in one script (see ackScript). A failure leaves it pending,
// to be given up on again; the store counts an entry once, so it is neither lost nor
// counted twice. An entry that does not decode (no events) counts as one event with the
// store and none off the queued counter: only a writer other than Publish, which counts
// nothing there, can have put it in the stream.
func (c *consumer) deadLetter(ctx context.Context, e entry, rejections int64, reason error) {
	redisCtx := context.WithoutCancel(ctx)
	id := e.id
	if err := c.countDeadLetter(ctx, c.delivery(id), max(1, len(e.events))); err != nil {
		c.log.WarnContext(ctx, "count dead letter failed; the entry stays pending", "id", id, "err", err)
		return
	}
	values := []any{"id", id, "error", reason.Error(), "rejections", rejections}
	for _, name := range slices.Sorted(maps.Keys(e.fields)) {
		values = append(values, name, e.fields[name])
	}
	keys, args := c.ackArgs([]entry{e})
	err := ackScript.Run(redisCtx, c.client, append(keys, c.dead), append(args, values...)...).Err()
	if err != nil {
		c.log.WarnContext(ctx, "move to dead-letter stream failed; the entry stays pending", "id", id, "err", err)
		return
	}
	c.log.ErrorContext(ctx, "entry dead-lettered", "id", id, "events", len(e.events), "stream", c.dead, "rejections", rejections, "err", reason)
}

// countDeadLetter tells DeadLetter of the n events of entry id, waiting while the store is
// unavailable.
func (c *consumer) countDeadLetter(ctx context.Context, id string, n int) error {
	if c.opts.DeadLetter == nil {
		return nil
	}
	retry := newBackoff()
	for {
		err := c.opts.DeadLetter(context.WithoutCancel(ctx), id, n)
		if err == nil || uts.KindOf(err) != uts.KindUnavailable {
			return err
		}
		if !retry.wait(ctx) {
			return fmt.Errorf("%w: %w", errStopped, err)
		}
	}
}
