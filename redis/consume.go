package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
)

// Consume reads the stream through the group and commits what it reads, batch by batch:
// first the entries this consumer had been given before it restarted, then new entries, and
// every ClaimIdle/2 the entries left idle with any consumer (it died, or the store rejected
// them and they are due for another try). Outages of Redis or of the store are waited out,
// never returned. When ctx is cancelled Consume finishes the batch in hand and returns nil.
func (b *Broker) Consume(ctx context.Context, commit uts.CommitFunc) error {
	errs := make(chan error, b.opts.Workers)
	for i := range b.opts.Workers {
		name := b.opts.Consumer
		if i > 0 {
			name = fmt.Sprintf("%s/%d", b.opts.Consumer, i+1)
		}
		c := &consumer{Broker: b, commit: commit, name: name}
		go func() { errs <- c.run(ctx) }()
	}
	var all []error
	for range b.opts.Workers {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// consumer is one Consume loop.
type consumer struct {
	*Broker
	commit uts.CommitFunc
	name   string // this loop's consumer name in the group

	ownCursor   string // where reading this consumer's own pending entries resumes; "" once done
	claimCursor string // where the scan for idle entries resumes; "0-0" for a new scan
	nextClaim   time.Time
	// eventsPerEntry is how many events the entries of the last read held on average. It
	// starts at the most an entry holds, so that a first read cannot take more than
	// BatchEvents events.
	eventsPerEntry int
}

// entriesPerRead is how many entries hold about BatchEvents events, judged by the last read.
func (c *consumer) entriesPerRead() int64 {
	return int64(max(1, c.opts.BatchEvents/max(1, c.eventsPerEntry)))
}

func (c *consumer) run(ctx context.Context) error {
	// Redis calls outlive ctx, so that a batch read just as ctx ends is still committed and
	// acknowledged rather than left for a redelivery.
	redisCtx := context.WithoutCancel(ctx)
	c.ownCursor, c.claimCursor = "0", "0-0"
	c.eventsPerEntry = entryEvents
	c.nextClaim = time.Now().Add(c.claimEvery())
	retry := newBackoff()
	for ctx.Err() == nil {
		msgs, err := c.next(redisCtx)
		if errors.Is(err, goredis.ErrClosed) {
			return fmt.Errorf("consume: %w", err)
		}
		if err != nil {
			c.log.WarnContext(ctx, "read from redis failed; retrying", "err", err)
			if isNoGroup(err) {
				// Redis restarted without persistence, or someone deleted the stream.
				if err := c.ensureGroup(redisCtx); err != nil {
					c.log.WarnContext(ctx, "recreate consumer group failed", "err", err)
				}
			}
			retry.wait(ctx)
			continue
		}
		retry.reset()
		if len(msgs) > 0 {
			c.process(ctx, msgs)
		}
	}
	return nil
}

// next reads the next batch: own pending entries until there are none, idle entries when a
// scan is due, new entries otherwise.
func (c *consumer) next(ctx context.Context) ([]goredis.XMessage, error) {
	switch {
	case c.ownCursor != "":
		msgs, err := c.readOwn(ctx, c.ownCursor)
		if err == nil {
			c.ownCursor = ""
			if len(msgs) > 0 {
				c.ownCursor = msgs[len(msgs)-1].ID
			}
		}
		return msgs, err
	case !time.Now().Before(c.nextClaim):
		msgs, cursor, err := c.claimIdle(ctx, c.claimCursor)
		if err == nil {
			c.claimCursor = cursor
			if cursor == "0-0" {
				c.nextClaim = time.Now().Add(c.claimEvery())
				c.forgetGone(ctx) // once per complete scan: anything they held is claimed
			}
		}
		return msgs, err
	default:
		return c.readNew(ctx)
	}
}

// claimEvery is how often idle entries are looked for: often enough that none waits much
// longer than ClaimIdle.
func (c *consumer) claimEvery() time.Duration { return c.opts.ClaimIdle / 2 }

// readOwn reads this consumer's pending entries after cursor: those it had been given and
// not acknowledged before a restart under the same name.
func (c *consumer) readOwn(ctx context.Context, cursor string) ([]goredis.XMessage, error) {
	return c.read(ctx, cursor, -1)
}

// readNew waits up to Block for entries no consumer has had yet.
func (c *consumer) readNew(ctx context.Context) ([]goredis.XMessage, error) {
	return c.read(ctx, ">", c.opts.Block)
}

func (c *consumer) read(ctx context.Context, id string, block time.Duration) ([]goredis.XMessage, error) {
	streams, err := c.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group:    c.opts.Group,
		Consumer: c.name,
		Streams:  []string{c.stream, id},
		Count:    c.entriesPerRead(),
		Block:    block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil || len(streams) == 0 {
		return nil, err
	}
	return streams[0].Messages, nil
}

// claimIdle takes over entries idle for ClaimIdle with any consumer, scanning the pending
// list from cursor; the cursor it returns is "0-0" once the scan is complete.
func (c *consumer) claimIdle(ctx context.Context, cursor string) ([]goredis.XMessage, string, error) {
	return c.client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
		Stream:   c.stream,
		Group:    c.opts.Group,
		Consumer: c.name,
		MinIdle:  c.opts.ClaimIdle,
		Start:    cursor,
		Count:    c.entriesPerRead(),
	}).Result()
}
