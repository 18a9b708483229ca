package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
)

// entry is a stream entry decoded into its event.
type entry struct {
	id     string
	event  uts.Event
	fields map[string]any // as read, for the dead-letter stream
}

func decode(m goredis.XMessage) (entry, error) {
	data, ok := m.Values[fieldEvent].(string)
	if !ok {
		return entry{}, fmt.Errorf("entry has no %q field", fieldEvent)
	}
	var e uts.Event
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return entry{}, fmt.Errorf("decode event: %w", err)
	}
	if e.Topic == "" || e.EventID == "" {
		return entry{}, errors.New("decode event: no topic or event_id")
	}
	// The entry ID: every delivery of the entry carries it, so the store counts the event
	// once however often a lost answer makes us commit it.
	e.Delivery = m.ID
	return entry{id: m.ID, event: e, fields: m.Values}, nil
}

func idsOf(entries []entry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.id
	}
	return ids
}

// errStopped says ctx ended while waiting for the store to come back.
var errStopped = errors.New("stopped while the store was unavailable")

// process commits one batch read from the stream and acknowledges what was committed.
func (c *consumer) process(ctx context.Context, msgs []goredis.XMessage) {
	redisCtx := context.WithoutCancel(ctx)
	entries := make([]entry, 0, len(msgs))
	var vanished []string
	for _, m := range msgs {
		if m.Values == nil {
			// Still pending but deleted from the stream: nothing left to commit.
			vanished = append(vanished, m.ID)
			continue
		}
		e, err := decode(m)
		if err != nil {
			// No retry can make it decodable.
			c.deadLetter(ctx, m.ID, m.Values, 0, err)
			continue
		}
		entries = append(entries, e)
	}
	if len(vanished) > 0 {
		c.acknowledge(redisCtx, vanished)
	}
	if len(entries) == 0 {
		return
	}
	defer c.keepClaimed(redisCtx, idsOf(entries))()
	c.commitEntries(ctx, entries)
}

// commitEntries commits entries and acknowledges them. When the store rejects the batch it
// splits it in halves until the entries it rejects are alone, so one poison event does not
// hold back the others.
func (c *consumer) commitEntries(ctx context.Context, entries []entry) {
	err := c.commitWaiting(ctx, entries)
	switch {
	case err == nil:
		c.acknowledge(context.WithoutCancel(ctx), idsOf(entries))
	case errors.Is(err, errStopped):
		// The entries stay pending; this consumer reads them first when it starts again.
	case len(entries) == 1:
		c.rejected(ctx, entries[0], err)
	default:
		half := len(entries) / 2
		c.commitEntries(ctx, entries[:half])
		c.commitEntries(ctx, entries[half:])
	}
}

// commitWaiting commits entries, waiting while the store is unavailable: an outage says
// nothing about the events, so it must not count toward dead-lettering them. A commit whose
// answer the outage lost may have gone through; trying it again is still safe, since each
// event carries its entry ID as its Delivery and the store counts a delivery once.
func (c *consumer) commitWaiting(ctx context.Context, entries []entry) error {
	events := make([]uts.Event, len(entries))
	for i, e := range entries {
		events[i] = e.event
	}
	retry := newBackoff()
	for {
		_, err := c.commit(context.WithoutCancel(ctx), events)
		if err == nil || uts.KindOf(err) != uts.KindUnavailable {
			return err
		}
		c.log.WarnContext(ctx, "store unavailable; waiting to commit", "events", len(events), "err", err)
		if !retry.wait(ctx) {
			return fmt.Errorf("%w: %w", errStopped, err)
		}
	}
}

// ackAttempts bounds the retries of an acknowledgement. Giving up is safe: the entries are
// delivered again, and the store, which recorded their deliveries, neither stores nor counts
// them again.
const ackAttempts = 5

// acknowledge removes committed entries from the group's pending list and from the stream,
// both at once, so the stream holds only what is still in flight.
func (c *consumer) acknowledge(ctx context.Context, ids []string) {
	retry := newBackoff()
	for attempt := 1; ; attempt++ {
		_, err := c.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.XAck(ctx, c.stream, c.opts.Group, ids...)
			p.XDel(ctx, c.stream, ids...)
			return nil
		})
		if err == nil {
			return
		}
		if attempt == ackAttempts {
			c.log.WarnContext(ctx, "acknowledge failed; the entries will be delivered again", "entries", len(ids), "err", err)
			return
		}
		retry.wait(ctx)
	}
}

// keepClaimed resets the idle time of entries while they are being committed, so that a
// slow commit, or a wait for the store, does not let another consumer claim them (and raise
// their delivery count). It returns the function that stops it.
func (c *consumer) keepClaimed(ctx context.Context, ids []string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(c.opts.ClaimIdle/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				// JUSTID: claiming them again must not count as a delivery.
				err := c.client.XClaimJustID(ctx, &goredis.XClaimArgs{
					Stream:   c.stream,
					Group:    c.opts.Group,
					Consumer: c.name,
					Messages: ids,
				}).Err()
				if err != nil {
					c.log.DebugContext(ctx, "refresh claim failed", "err", err)
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
