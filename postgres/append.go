package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/uts-events/uts"
)

// appendSQL stores a batch and counts it in one statement: one round trip, one implicit
// transaction. The input is the batch in order; "first" is the position (1-based, as
// ORDINALITY) of the first occurrence of each event's key in the batch: that occurrence is
// the only one offered for insertion, the others carry no content. Sequence numbers are
// drawn in batch order, so that processing order is batch order, but rows are inserted
// sorted by key, so that every batch locks keys in the same order and none waits on another
// in a cycle. The CTEs join on positions and sequence numbers rather than on keys, which
// keeps text comparisons to the one sort.
//
// A batch without deliveries (the in-process broker's) starts with appendInputSQL: no event
// is redelivered, a constant the planner folds away, so it pays nothing for deliveries. A
// batch with deliveries starts with appendDeliveredInputSQL, which records them first,
// sorted too: an event whose delivery was recorded before is "redelivered", stored and
// counted by the transaction that recorded it, so it is neither offered for insertion nor
// counted, and answers duplicate. Its key is stored (that transaction stored it or found
// it), so a later occurrence of the key in this batch still finds the stored content.
// Outcomes: 1 new, 2 duplicate, 3 conflict (see uts.Outcome).
var (
	appendSQL          = appendInputSQL + appendRestSQL
	appendDeliveredSQL = appendDeliveredInputSQL + appendRestSQL
)

const appendInputSQL = `
WITH input AS (
    SELECT *
    FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[], $5::int2[], $6::text[],
                $7::text[], $8::bytea[]) WITH ORDINALITY
        AS i(first, topic, event_id, ts, ts_nanos, source, payload, content_hash, ord)
),
checked AS (
    SELECT *, false AS redelivered FROM input
),`

// appendDeliveredInputSQL takes the deliveries as $10, NULL for an event without one.
const appendDeliveredInputSQL = `
WITH input AS (
    SELECT *
    FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[], $5::int2[], $6::text[],
                $7::text[], $8::bytea[], $10::text[]) WITH ORDINALITY
        AS i(first, topic, event_id, ts, ts_nanos, source, payload, content_hash, delivery, ord)
),
recorded AS (
    INSERT INTO deliveries (delivery, topic, event_id)
    SELECT delivery, topic, event_id
    FROM input
    WHERE delivery IS NOT NULL
    ORDER BY delivery COLLATE "C", topic COLLATE "C", event_id COLLATE "C"
    ON CONFLICT DO NOTHING
    RETURNING delivery
),
checked AS (
    -- A batch never repeats a delivery, so the delivery alone finds its row.
    SELECT i.*, i.delivery IS NOT NULL AND r.delivery IS NULL AS redelivered
    FROM input i
    LEFT JOIN recorded r ON r.delivery = i.delivery
),`

// appendRestSQL follows either input: it reads "checked", the batch with its redelivered flags.
const appendRestSQL = `
numbered AS (
    SELECT nextval('events_seq_seq') AS seq, * FROM checked WHERE first = ord
),
inserted AS (
    INSERT INTO events (seq, topic, event_id, ts, ts_nanos, source, payload, content_hash)
    SELECT seq, topic, event_id, ts, ts_nanos, source, payload, content_hash
    FROM numbered
    WHERE NOT redelivered
    ORDER BY topic COLLATE "C", event_id COLLATE "C"
    ON CONFLICT (topic, event_id) DO NOTHING
    RETURNING seq
),
stored AS (
    -- The content each key has now: inserted by this statement, or else committed before,
    -- and seen by this statement's snapshot or, failing that, by a fresh one (see
    -- committed_content_hash in the migrations).
    SELECT n.ord, ins.seq IS NOT NULL AS inserted,
           CASE WHEN ins.seq IS NOT NULL THEN n.content_hash
                ELSE COALESCE((SELECT e.content_hash FROM events e
                               WHERE e.topic = n.topic AND e.event_id = n.event_id),
                              committed_content_hash(n.topic, n.event_id))
           END AS content_hash
    FROM numbered n
    LEFT JOIN inserted ins ON ins.seq = n.seq
),
outcomes AS (
    SELECT i.ord, i.topic, i.redelivered,
           CASE WHEN i.redelivered THEN 2
                WHEN i.first = i.ord AND s.inserted THEN 1
                WHEN i.content_hash = s.content_hash THEN 2
                ELSE 3 END AS outcome
    FROM checked i
    JOIN stored s ON s.ord = i.first
),
counted AS (
    INSERT INTO topic_counters AS c (topic, shard, unique_count, duplicates, conflicts, last_event_at)
    SELECT topic, $9,
           count(*) FILTER (WHERE outcome = 1),
           count(*) FILTER (WHERE outcome <> 1),
           count(*) FILTER (WHERE outcome = 3),
           CASE WHEN bool_or(outcome = 1) THEN now() END
    FROM outcomes
    WHERE NOT redelivered
    GROUP BY topic
    ORDER BY topic COLLATE "C"
    ON CONFLICT (topic, shard) DO UPDATE SET
        unique_count  = c.unique_count + excluded.unique_count,
        duplicates    = c.duplicates + excluded.duplicates,
        conflicts     = c.conflicts + excluded.conflicts,
        last_event_at = greatest(c.last_event_at, excluded.last_event_at)
)
SELECT array_agg(outcome ORDER BY ord) FROM outcomes`

// Append stores the batch's new events and counts all of them in one statement; see the
// package documentation for why that is exact under concurrency.
func (s *Store) Append(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	if len(events) == 0 {
		return []uts.Outcome{}, nil
	}
	query, args, err := appendStatement(events)
	if err != nil {
		return nil, err
	}
	var codes []int16
	if err := s.pool.QueryRow(ctx, query, args...).Scan(&codes); err != nil {
		return nil, wrap("append", err)
	}
	if len(codes) != len(events) {
		return nil, fmt.Errorf("postgres: append: %d outcomes for %d events", len(codes), len(events))
	}
	outcomes := make([]uts.Outcome, len(codes))
	for i, c := range codes {
		outcomes[i] = uts.Outcome(c)
	}
	return outcomes, nil
}

// appendStatement returns the statement for the batch, and the batch laid out as its column
// arrays.
func appendStatement(events []uts.Event) (string, []any, error) {
	deliveries, err := deliveriesOf(events)
	if err != nil {
		return "", nil, err
	}
	args, err := appendArgs(events)
	if err != nil {
		return "", nil, err
	}
	if deliveries == nil {
		return appendSQL, args, nil
	}
	return appendDeliveredSQL, append(args, deliveries), nil
}

// appendArgs lays the batch out as column arrays, all but the deliveries'.
func appendArgs(events []uts.Event) ([]any, error) {
	n := len(events)
	var (
		firstOf  = make(map[uts.Key]int32, n)
		first    = make([]int32, n)
		topics   = make([]string, n)
		ids      = make([]string, n)
		stamps   = make([]time.Time, n)
		nanos    = make([]int16, n)
		sources  = make([]string, n)
		payloads = make([]string, n)
		hashes   = make([][]byte, n)
	)
	for i := range events {
		e := &events[i]
		hash, err := hex.DecodeString(e.ContentHash())
		if err != nil {
			return nil, fmt.Errorf("postgres: content hash: %w", err)
		}
		topics[i], ids[i], hashes[i] = e.Topic, e.EventID, hash
		if f, ok := firstOf[e.Key()]; ok {
			first[i] = f
			continue
		}
		first[i] = int32(i + 1)
		firstOf[e.Key()] = first[i]
		ts := e.Timestamp.UTC()
		stamps[i] = ts.Truncate(time.Microsecond)
		nanos[i] = int16(ts.Nanosecond() % 1000)
		sources[i] = e.Source
		payloads[i] = string(e.Payload)
	}
	return []any{first, topics, ids, stamps, nanos, sources, payloads, hashes, rand.IntN(counterShards)}, nil
}

// deliveriesOf lays out the events' deliveries, NULL for an event without one, or returns
// nil (all NULL) when none has one, as with the in-process broker. A delivery that repeats
// in one batch could not be told from its own redelivery, so it is refused.
func deliveriesOf(events []uts.Event) ([]*string, error) {
	var deliveries []*string
	var seen map[string]struct{}
	for i := range events {
		d := &events[i].Delivery
		if *d == "" {
			continue
		}
		if deliveries == nil {
			deliveries = make([]*string, len(events))
			seen = make(map[string]struct{}, len(events)-i)
		}
		if _, dup := seen[*d]; dup {
			return nil, uts.Errorf(uts.KindInternal, "postgres: event %d: delivery %q repeats in the batch", i, *d)
		}
		seen[*d] = struct{}{}
		deliveries[i] = d
	}
	return deliveries, nil
}

// DeadLetter counts n events a broker gave up on, in a random shard like Append's counters.
func (s *Store) DeadLetter(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("postgres: dead letter: negative count %d", n)
	}
	if n == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO dead_letters AS d (shard, count) VALUES ($1, $2)
		ON CONFLICT (shard) DO UPDATE SET count = d.count + excluded.count`, rand.IntN(counterShards), n)
	if err != nil {
		return wrap("dead letter", err)
	}
	return nil
}
