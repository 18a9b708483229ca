// Package postgres implements uts.Store on PostgreSQL.
//
// # Isolation
//
// Every batch is ONE statement, run in its own implicit transaction at READ COMMITTED. That
// level is enough because nothing is decided from a snapshot that could be stale:
//
//   - Storing once: the unique key (topic, event_id) decides. INSERT ... ON CONFLICT DO NOTHING
//     checks the index, not the snapshot; when a concurrent transaction holds the key
//     uncommitted, the insert waits for it to commit (skip) or roll back (insert). Two
//     transactions can never both insert a key, whatever their snapshots.
//   - Counting: each event's outcome follows from whether this statement inserted its key
//     (RETURNING says so exactly) and, for a key it did not insert, from the stored content
//     hash. Rows are never updated or deleted, so a hash the snapshot sees is the hash. But a
//     key skipped because of a row committed after the statement's snapshot was taken is
//     invisible to that snapshot; for those keys only, a VOLATILE function reads the hash
//     with a fresh snapshot, which sees it (the skip means that row has committed). The
//     counter rows are then incremented with UPDATE-style upserts, which add to the latest
//     committed value under a row lock, so no increment is lost. The events and their counts
//     commit together or not at all.
//   - Counting a delivery once: the deliveries' primary key decides, as the events' unique key
//     does. A delivery recorded by a concurrent transaction (two replicas committing the same
//     claimed entry) makes the insert wait for it: if it commits, this statement skips the
//     delivery and leaves its event uncounted, since that transaction stored and counted it;
//     if it rolls back, this one records it and counts the event. Either way exactly one
//     transaction counts it. The skipped event's key was committed with the delivery, so a
//     later occurrence of the key in the batch finds its content as above.
//
// SERIALIZABLE would add nothing but serialization failures to retry.
//
// # Contention and deadlocks
//
// Per-topic counters are split into shards (topic, shard); a batch adds to one randomly
// chosen shard, and Stats sums them, so concurrent batches rarely queue on the same row.
// Locks are taken in one global order: the batch's deliveries sorted in byte order first,
// then its keys sorted by (topic, event_id) in byte order, then the counter rows sorted by
// topic (Go sorts them; the statement inserts them in the order given). Each step reads all
// that the one before returned, through an aggregate, a hash or a one-time filter, so it
// cannot start before that one has finished. Two batches therefore never wait on each other
// in a cycle.
//
// # Feed order
//
// Sequence numbers are drawn in batch order when a batch runs, but concurrent batches commit
// in their own order, so a reader paging by seq right behind the writers could pass over an
// event whose batch commits just after it read. Each row therefore records its transaction
// id too, and the feed reads in (xid, seq) order up to the oldest transaction in flight; see
// Events.
package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/notify"
	"github.com/uts-events/uts/internal/retention"
)

// counterShards is how many rows share one topic's counters.
const counterShards = 16

// Store is a uts.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	pruner retention.Pruner
	// deliveriesHeld bounds the pruning of deliveries (see WithDeliveriesHeld); nil for none.
	deliveriesHeld func(ctx context.Context) (time.Time, error) // prunes the deliveries
	stopPruning    func()
	// log hears of what the store does on its own, where no caller waits for an error.
	log *slog.Logger
	// committed wakes the feed's readers (see uts.Store.Committed); recheckPending is set
	// while a timer to wake them again is running, for events a read held back.
	committed      notify.Broadcaster
	recheckPending atomic.Bool
	// replicas carries commits between the processes that share the schema (notify.go).
	replicas *commitSignal
	// commitDelay, set by tests only, holds each Append's transaction open that long after
	// its statement ran: a transaction that drew its sequence numbers early and commits late.
	commitDelay func() time.Duration
	// partitionWidth is the time range of each new partition of the events table.
	partitionWidth time.Duration
	// lockTimeout is defaultLockTimeout, shorter in tests.
	lockTimeout time.Duration
}

// heldBackRecheck is how soon readers are woken again after a read held back committed
// events behind a transaction in flight. That transaction's own commit wakes them too, when
// it is an Append of this process; the timer covers every other kind.
const heldBackRecheck = 10 * time.Millisecond

// Option tunes Open.
type Option func(*Store)

// WithLogger gives the store a logger (default slog.Default()) for what fails off any
// request: a pruning run.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithDeliveriesHeld keeps the deliveries recorded from held's time on, however old: held is
// the broker's oldest entry still in flight (see redis.Broker.OldestEntry), which may be
// delivered again and must then be found recorded, or its events would be counted again.
func WithDeliveriesHeld(held func(ctx context.Context) (time.Time, error)) Option {
	return func(s *Store) { s.deliveriesHeld = held }
}

var _ uts.Store = (*Store)(nil)

// Open connects to the postgres:// URL and brings the schema up to date. The tables live in
// the URL's search_path (its first schema, which must exist). Pool settings such as
// pool_max_conns may be given in the URL.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse the URL: %w", err)
	}
	// Prepared statements soon run on a generic plan, which cannot know how many events an
	// array parameter holds and guesses ten: it would then join the batch's CTEs by nested
	// loops, quadratic in the batch size (a 1000-event batch spent 90% of its time there).
	// Every join of this store is an equality that hashes, in time linear in the batch.
	config.ConnConfig.RuntimeParams["enable_nestloop"] = "off"
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, wrap("connect", err)
	}
	if _, err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, log: slog.Default(), partitionWidth: DefaultPartitionWidth,
		lockTimeout: defaultLockTimeout}
	for _, opt := range opts {
		opt(s)
	}
	// The partitions ahead. One that cannot be created now, because the events table stays
	// locked past lockTimeout, is created by the next Expire; until then the default
	// partition takes its events.
	if err := s.ensurePartitions(ctx); isLockTimeout(err) {
		s.log.Warn("postgres: the events partitions ahead could not be created at open; expiry will", "err", err)
	} else if err != nil {
		pool.Close()
		return nil, err
	}
	if s.replicas, err = newCommitSignal(ctx, pool, &s.committed, s.log); err != nil {
		pool.Close()
		return nil, err
	}
	s.pruner = retention.Pruner{Every: pruneEvery, Keep: uts.DeliveryRetention, ChunkRows: pruneChunkRows,
		Chunks: pruneChunks, Chunk: s.pruneChunk, Hold: s.deliveriesHeld, Log: s.log}
	s.stopPruning = s.pruner.Start()
	return s, nil
}

// Ping reports whether PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Committed returns a channel closed at the next commit of new events, by this process or by
// another on the same schema (through LISTEN/NOTIFY, notify.go); see uts.Store.
func (s *Store) Committed() <-chan struct{} {
	s.replicas.startListening()
	return s.committed.Wait()
}

// heldBack wakes the readers again soon: a read found committed events it could not hand
// out yet.
func (s *Store) heldBack() {
	if s.recheckPending.CompareAndSwap(false, true) {
		time.AfterFunc(heldBackRecheck, func() {
			s.recheckPending.Store(false)
			s.committed.Notify()
		})
	}
}

// Close closes every connection; it waits for the ones in use to be released.
func (s *Store) Close() error {
	s.stopPruning()
	s.replicas.close() // before the pool, which the announcer uses
	s.pool.Close()
	return nil
}
