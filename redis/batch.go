package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
)

// entry is a stream entry decoded into its events.
type entry struct {
	id     string
	events []uts.Event
	fields map[string]any // as read, for the dead-letter stream
	// queued is how many events Publish counted in the queued counter for the entry, which
	// its acknowledgement takes off: its events, or none for an entry of an earlier version,
	// which counted nothing, so that acknowledging one cannot leave Depth short for good.
	queued int
}

// decode reads an entry's events. They were validated before they were queued; decoding
// validates them again, so that an entry someone else wrote to the stream cannot reach the
// store malformed. Every event's Delivery is the entry's (see delivery): the entry is one
// delivery, which every redelivery repeats whole and in order, so the store counts its
// events once however often a lost answer makes us commit it. Entries of earlier versions
// hold one event in fieldEvent, delivered under the bare entry ID, as those versions
// recorded it.
func (b *Broker) decode(m goredis.XMessage) (entry, error) {
	data, batched := m.Values[fieldEvents].(string)
	ok := batched
	if !batched {
		data, ok = m.Values[fieldEvent].(string)
	}
	if !ok {
		return entry{}, fmt.Errorf("entry has no %q field", fieldEvents)
	}
	events, err := uts.DecodeBatch([]byte(data), uts.Limits{})
	if err != nil {
		return entry{}, fmt.Errorf("decode events: %w", err)
	}
	e := entry{id: m.ID, events: events, fields: m.Values}
	delivery := m.ID
	if batched {
		delivery, e.queued = b.delivery(m.ID), len(events)
	}
	for i := range events {
		events[i].Delivery = delivery
	}
	return e, nil
}

// delivery names entry id for the store: the stream's key and the ID, since IDs are unique
// within a stream only, and several streams (key prefixes) may share one store.
func (b *Broker) delivery(id string) string { return b.stream + "/" + id }

func idsOf(entries []entry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.id
	}
	return ids
}

func eventsIn(entries []entry) int {
	n := 0
	for _, e := range entries {
		n += len(e.events)
	}
	return n
}

// errStopped says ctx ended while waiting for the store to come back.
var errStopped = errors.New("stopped while the store was unavailable")

// process commits one batch read from the stream and acknowledges what was committed.
func (c *consumer) process(ctx context.Context, msgs []goredis.XMessage) {
	redisCtx := context.WithoutCancel(ctx)
	entries := make([]entry, 0, len(msgs))
	var vanished []entry
	for _, m := range msgs {
		if m.Values == nil {
			// Still pending but deleted from the stream: nothing left to commit, and its
			// events were counted off by the acknowledgement that deleted it.
			vanished = append(vanished, entry{id: m.ID})
			continue
		}
		e, err := c.decode(m)
		if err != nil {
			// No retry can make it decodable.
			c.deadLetter(ctx, entry{id: m.ID, fields: m.Values}, 0, err)
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
	n := eventsIn(entries)
	c.eventsPerEntry = (n + len(entries) - 1) / len(entries)
	defer c.keepClaimed(redisCtx, idsOf(entries))()
	// The read count is a guess from the last read: entries fuller than it guessed are
	// committed in several transactions, none much over BatchEvents.
	for _, part := range splitEntries(entries, c.opts.BatchEvents) {
		c.commitEntries(ctx, part)
	}
}

// splitEntries cuts entries, in order, into runs of at most limit events, each holding at
// least one entry: an entry is never split.
func splitEntries(entries []entry, limit int) [][]entry {
	var parts [][]entry
	start, events := 0, 0
	for i, e := range entries {
		if i > start && events+len(e.events) > limit {
			parts = append(parts, entries[start:i])
			start, events = i, 0
		}
		events += len(e.events)
	}
	return append(parts, entries[start:])
}

// commitEntries commits entries and acknowledges them. When the store rejects the batch it
// splits it in halves until the entries it rejects are alone, so one poison entry does not
// hold back the others. An entry is the smallest unit: it is acknowledged, retried and
// dead-lettered whole.
func (c *consumer) commitEntries(ctx context.Context, entries []entry) {
	err := c.commitWaiting(ctx, entries)
	switch {
	case err == nil:
		c.acknowledge(context.WithoutCancel(ctx), entries)
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
	events := make([]uts.Event, 0, eventsIn(entries))
	for _, e := range entries {
		events = append(events, e.events...)
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

// ackScript acknowledges entries and deletes them from the stream, so the stream holds only
// what is still in flight, and takes the events of those it acknowledged off the queued
// counter. It runs as one script so that the count cannot be taken twice: an acknowledgement
// retried after its answer was lost finds the entries acknowledged already, and takes nothing.
// To dead-letter an entry it first adds the copy to the dead-letter stream: if that fails,
// the script stops there, and the entry stays pending rather than vanish without its copy.
// It also forgets the entries' rejection counts (see rejected).
// KEYS: the stream, the counter, the rejection counts and, to dead-letter, the dead-letter
// stream. ARGV: the group,
// the number of entries, each entry's ID and queued events, then the copy's fields and values.
var ackScript = goredis.NewScript(`
local entries = tonumber(ARGV[2])
if KEYS[4] then
    redis.call('XADD', KEYS[4], '*', unpack(ARGV, 3 + 2 * entries))
end
local acked = 0
for i = 3, 2 + 2 * entries, 2 do
    if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
        acked = acked + tonumber(ARGV[i + 1])
    end
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
end
if acked > 0 then
    redis.call('DECRBY', KEYS[2], acked)
end
return acked
`)

// ackArgs are ackScript's keys and arguments for entries.
func (c *consumer) ackArgs(entries []entry) ([]string, []any) {
	args := make([]any, 0, 2+2*len(entries))
	args = append(args, c.opts.Group, len(entries))
	for _, e := range entries {
		args = append(args, e.id, e.queued)
	}
	return []string{c.stream, c.queued, c.rejections}, args
}

// acknowledge acknowledges committed entries (see ackScript).
func (c *consumer) acknowledge(ctx context.Context, entries []entry) {
	retry := newBackoff()
	for attempt := 1; ; attempt++ {
		keys, args := c.ackArgs(entries)
		err := ackScript.Run(ctx, c.client, keys, args...).Err()
		if err == nil {
			return
		}
		if attempt == ackAttempts {
			c.log.WarnContext(ctx, "acknowledge failed; the entries will be delivered again", "entries", len(entries), "err", err)
			return
		}
		retry.wait(ctx)
	}
}

// holdClaims is how many ClaimIdle a consumer keeps its entries claimed while it commits
// them. A commit that takes longer is waiting for a store this replica cannot reach (it may
// be cut off it while the others are not), so it lets go: the entries go idle, and a replica
// that reaches the store claims and commits them. This one goes on trying; whichever commits
// second finds the entries' deliveries recorded and counts nothing, and its acknowledgement
// finds them acknowledged and takes nothing off the queued counter.
const holdClaims = 3

// keepClaimed resets the idle time of entries while they are being committed, so that a
// slow commit, or a short wait for the store, does not let another consumer claim them (and
// raise their delivery count), for holdClaims × ClaimIdle at most. It returns the function
// that stops it.
func (c *consumer) keepClaimed(ctx context.Context, ids []string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(c.opts.ClaimIdle/3, time.Millisecond))
		defer t.Stop()
		letGo := time.After(holdClaims * c.opts.ClaimIdle)
		for {
			select {
			case <-done:
				return
			case <-letGo:
				c.log.WarnContext(ctx, "commit still waiting; letting other consumers claim its entries",
					"entries", len(ids), "held", holdClaims*c.opts.ClaimIdle)
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
