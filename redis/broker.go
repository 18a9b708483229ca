// Package redis is the Redis Streams broker: Publish appends a batch to a stream, so the API
// can answer 202 as soon as Redis has it, and Consume reads the stream through a consumer
// group, commits each batch to the store and only then acknowledges it. An entry is removed
// from the stream once acknowledged, so the stream holds exactly what is still in flight.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
)

// Options tune the broker. The zero value of each field means its default.
type Options struct {
	// KeyPrefix starts every key the broker uses (default "uts:"), so several systems, or
	// several tests, can share one Redis.
	KeyPrefix string
	// Group is the consumer group every aggregator replica joins (default "aggregators").
	Group string
	// Consumer names this replica in the group (default the host name). A replica restarted
	// under the same name first finishes the entries it had been given before it died.
	Consumer string
	// BatchEvents is the most entries read, and so committed, at once (default 1000).
	BatchEvents int
	// Workers is how many consume loops Consume runs (default 1). Each is a consumer of its
	// own in the group — the first named Consumer, the others Consumer/2, Consumer/3, … — so
	// batches commit in parallel, and a replica restarted with the same name and Workers
	// resumes every loop's own pending entries.
	Workers int
	// Block is how long one read waits for new entries (default 1s); it bounds how late
	// Consume notices a cancelled context.
	Block time.Duration
	// ClaimIdle is how long an entry may sit unacknowledged with one consumer before another
	// takes it over (default 30s). It is also the pause between retries of a failing entry.
	ClaimIdle time.Duration
	// MaxDeliveries is how often an entry the store rejects is tried before it is moved to
	// the dead-letter stream (default 5). Failures because the store is down do not count.
	MaxDeliveries int
	Logger        *slog.Logger
	// DeadLetter is told of every entry given up on, so the store's totals still add up
	// (main wires it to Store.DeadLetter). Nil means nobody needs to know.
	DeadLetter func(ctx context.Context, n int) error
}

func (o Options) withDefaults() Options {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "uts:"
	}
	if o.Group == "" {
		o.Group = "aggregators"
	}
	if o.Consumer == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "aggregator"
		}
		o.Consumer = host
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = 1000
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Block <= 0 {
		o.Block = time.Second
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 5
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// fieldEvent is the stream entry field holding the event's JSON.
const fieldEvent = "event"

// Broker is a uts.Broker on a Redis stream. It is safe for concurrent use.
type Broker struct {
	client *goredis.Client
	opts   Options
	log    *slog.Logger
	stream string // the events waiting for, or being committed by, a consumer
	dead   string // the entries given up on, for a human to look at
}

var _ uts.Broker = (*Broker)(nil)

// Open connects to the Redis at url (redis://host:port/db), creates the stream and the
// consumer group if they do not exist yet, and warns when Redis would lose queued events on
// its own restart.
func Open(ctx context.Context, url string, opts Options) (*Broker, error) {
	opts = opts.withDefaults()
	clientOpts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", withoutURL(err))
	}
	// One dial per attempt (go-redis would try five): when Redis is down, Publish should
	// fail within a second, so the API answers 503 and the publisher retries, rather than
	// hold the request for seconds. Commands are still retried (max_retries in the URL).
	clientOpts.DialerRetries = 1
	b := &Broker{
		client: goredis.NewClient(clientOpts),
		opts:   opts,
		log:    opts.Logger.With("component", "redis"),
		stream: opts.KeyPrefix + "events",
		dead:   opts.KeyPrefix + "dead",
	}
	if err := b.ensureGroup(ctx); err != nil {
		b.client.Close()
		return nil, uts.Unavailable("redis unavailable", err)
	}
	b.checkPersistence(ctx)
	return b, nil
}

// withoutURL drops the URL from a parse error, as it may carry a password.
func withoutURL(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}

// ensureGroup creates the group reading from the stream's start, so that entries published
// while no group existed (Redis restarted empty, then a publish came first) are not skipped.
func (b *Broker) ensureGroup(ctx context.Context) error {
	err := b.client.XGroupCreateMkStream(ctx, b.stream, b.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create group %s on %s: %w", b.opts.Group, b.stream, err)
	}
	return nil
}

// Close releases the connections. Stop Consume first.
func (b *Broker) Close() error { return b.client.Close() }

// Publish appends each event as one stream entry, all in one MULTI/EXEC, so Redis takes the
// whole batch or none of it. The events are durable in Redis, not yet stored: the receipt
// says Committed false.
func (b *Broker) Publish(ctx context.Context, events []uts.Event) (uts.Receipt, error) {
	if len(events) == 0 {
		return uts.Receipt{}, nil
	}
	// Encode everything before talking to Redis, so an encoding failure leaves nothing behind.
	encoded := make([]string, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return uts.Receipt{}, fmt.Errorf("encode event %d: %w", i, err)
		}
		encoded[i] = string(data)
	}
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, data := range encoded {
			p.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{fieldEvent, data}})
		}
		return nil
	})
	if err != nil {
		return uts.Receipt{}, uts.Unavailable("redis unavailable", err)
	}
	return uts.Receipt{Committed: false}, nil
}

// Ready pings Redis: Publish needs nothing else.
func (b *Broker) Ready(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return uts.Unavailable("redis unavailable", err)
	}
	return nil
}

// Depth counts the entries not yet acknowledged: those no consumer has read yet (the group's
// lag) plus those read and not yet committed (pending).
func (b *Broker) Depth(ctx context.Context) (int64, error) {
	groups, err := b.client.XInfoGroups(ctx, b.stream).Result()
	if err != nil && !isNoSuchKey(err) {
		return 0, uts.Unavailable("redis unavailable", err)
	}
	for _, g := range groups {
		if g.Name == b.opts.Group && g.Lag >= 0 {
			return g.Lag + g.Pending, nil
		}
	}
	// Redis cannot always tell the lag (it gives up after some deletions), or the group is
	// gone. Acknowledged entries are deleted with their acknowledgement, so the stream's
	// length is the same number.
	n, err := b.client.XLen(ctx, b.stream).Result()
	if err != nil {
		return 0, uts.Unavailable("redis unavailable", err)
	}
	return n, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}
