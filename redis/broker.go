// Package redis is the Redis Streams broker: Publish appends a batch to a stream, so the API
// can answer 202 as soon as Redis has it, and Consume reads the stream through a consumer
// group, commits each batch to the store and only then acknowledges it. An entry is removed
// from the stream once acknowledged, so the stream holds exactly what is still in flight.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
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
	// BatchEvents is about the most events read, and so committed, at once (default 1000).
	// A read asks for as many entries as held that many events in the last read.
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
	// ForgetIdle is how long the name of a consumer that holds no entries stays in the group
	// without a delivery before a replica deletes it (default the longer of 10×ClaimIdle and
	// 100×Block: 5 minutes). Names are host names, so every replaced container leaves one.
	ForgetIdle time.Duration
	// MaxDeliveries is how often the store may reject an entry before it is moved to the
	// dead-letter stream (default 5). Only rejections count: neither failures because the
	// store is down nor deliveries again after a restart or a claim.
	MaxDeliveries int
	Logger        *slog.Logger
	// DeadLetter is told of every entry given up on, so the store's totals still add up
	// (main wires it to Store.DeadLetter). Nil means nobody needs to know.
	DeadLetter func(ctx context.Context, delivery string, n int) error
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
	if o.ForgetIdle <= 0 {
		o.ForgetIdle = max(10*o.ClaimIdle, 100*o.Block)
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 5
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// A stream entry carries a chunk of a published batch, at most entryEvents events, as a JSON
// array in its fieldEvents field. One entry per event made every event cost an XADD, a read,
// an XACK and an XDEL, and Redis alone then took a tenth of the machine; per chunk those
// costs are shared by up to entryEvents events. Entries written by earlier versions carry
// one event in fieldEvent, and are still read.
const (
	fieldEvents = "events"
	fieldEvent  = "event"
	entryEvents = 100
)

// Broker is a uts.Broker on a Redis stream. It is safe for concurrent use.
type Broker struct {
	client *goredis.Client
	opts   Options
	log    *slog.Logger
	stream string // the events waiting for, or being committed by, a consumer
	dead   string // the entries given up on, for a human to look at
	queued string // a counter of the events in the stream's entries, for Depth
	// rejections counts, per entry ID, how often the store rejected the entry (see rejected)
	rejections string
}

var _ uts.Broker = (*Broker)(nil)

// Open connects to the Redis at url (redis://host:port/db), creates the stream and the
// consumer group if they do not exist yet, and warns when Redis would lose queued events on
// its own restart. It refuses a Redis whose maxmemory-policy may evict the stream.
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
		queued: opts.KeyPrefix + "queued",

		rejections: opts.KeyPrefix + "rejections",
	}
	if err := b.ensureGroup(ctx); err != nil {
		b.client.Close()
		return nil, uts.Unavailable("redis unavailable", err)
	}
	if err := b.checkEviction(ctx); err != nil {
		b.client.Close()
		return nil, err
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

// Publish appends the batch as entries of up to entryEvents events each, and counts its
// events in the queued counter, all in one MULTI/EXEC, so Redis takes the whole batch or none
// of it. The events are durable in Redis, not yet stored: the receipt says Committed false.
func (b *Broker) Publish(ctx context.Context, events []uts.Event) (uts.Receipt, error) {
	if len(events) == 0 {
		return uts.Receipt{}, nil
	}
	entries := encodeEntries(events)
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, data := range entries {
			p.XAdd(ctx, &goredis.XAddArgs{Stream: b.stream, Values: []any{fieldEvents, data}})
		}
		p.IncrBy(ctx, b.queued, int64(len(events)))
		return nil
	})
	if err != nil {
		return uts.Receipt{}, uts.Unavailable("redis unavailable", err)
	}
	return uts.Receipt{Committed: false}, nil
}

// encodeEntries lays the events out as JSON arrays of at most entryEvents events each.
func encodeEntries(events []uts.Event) [][]byte {
	entries := make([][]byte, 0, (len(events)+entryEvents-1)/entryEvents)
	for chunk := range slices.Chunk(events, entryEvents) {
		data := make([]byte, 0, 256*len(chunk))
		data = append(data, '[')
		for i, e := range chunk {
			if i > 0 {
				data = append(data, ',')
			}
			data = e.AppendJSON(data)
		}
		entries = append(entries, append(data, ']'))
	}
	return entries
}

// Ready pings Redis: Publish needs nothing else.
func (b *Broker) Ready(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return uts.Unavailable("redis unavailable", err)
	}
	return nil
}

// Depth is the queued counter: Publish adds a batch's events to it in the transaction that
// adds their entries, and the acknowledgement of an entry takes its events off in the script
// that removes the entry (see ackScript), so it counts exactly the events of the entries still
// in the stream. Entries of earlier versions were not counted, and their acknowledgement
// takes nothing off (see entry.queued).
func (b *Broker) Depth(ctx context.Context) (int64, error) {
	n, err := b.client.Get(ctx, b.queued).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, uts.Unavailable("redis unavailable", err)
	}
	return max(0, n), nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}
