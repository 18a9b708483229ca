package postgres

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
)

const eventColumns = `seq, topic, event_id, ts, ts_nanos, source, payload, processed_at`

// Events returns a page of stored events in processing order.
func (s *Store) Events(ctx context.Context, q uts.EventQuery) ([]uts.StoredEvent, error) {
	if q.Limit <= 0 {
		return []uts.StoredEvent{}, nil
	}
	// Two statements rather than one with "$2 = '' OR topic = $2", so that each keeps a plan
	// that uses its index.
	from, order, cursor := `seq > $1`, `seq`, q.After
	if q.Newest {
		from, order, cursor = `seq < $1`, `seq DESC`, q.Before
		if cursor <= 0 {
			cursor = math.MaxInt64
		}
	}
	var rows pgx.Rows
	var err error
	if q.Topic == "" {
		rows, err = s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
			WHERE `+from+` ORDER BY `+order+` LIMIT $2`, cursor, q.Limit)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
			WHERE topic = $3 AND `+from+` ORDER BY `+order+` LIMIT $2`, cursor, q.Limit, q.Topic)
	}
	if err != nil {
		return nil, wrap("list events", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (uts.StoredEvent, error) {
		var e uts.StoredEvent
		var nanos int16
		var payload string
		err := row.Scan(&e.Cursor, &e.Topic, &e.EventID, &e.Timestamp, &nanos, &e.Source, &payload, &e.ProcessedAt)
		e.Timestamp = e.Timestamp.Add(time.Duration(nanos)).UTC()
		e.ProcessedAt = e.ProcessedAt.UTC()
		e.Payload = []byte(payload)
		return e, err
	})
	if err != nil {
		return nil, wrap("list events", err)
	}
	return events, nil
}

// statsSQL reads every total in one statement, so from one snapshot: the counters add up.
// The row with a NULL topic carries the dead letters.
const statsSQL = `
SELECT topic, sum(unique_count)::bigint, sum(duplicates)::bigint, sum(conflicts)::bigint, max(last_event_at)
FROM topic_counters
GROUP BY topic
UNION ALL
SELECT NULL, coalesce(sum(count), 0)::bigint, 0, 0, NULL
FROM dead_letters`

// Stats sums the counter shards.
func (s *Store) Stats(ctx context.Context) (uts.Stats, error) {
	rows, err := s.pool.Query(ctx, statsSQL)
	if err != nil {
		return uts.Stats{}, wrap("stats", err)
	}
	stats := uts.Stats{Topics: []uts.TopicStats{}}
	var (
		topic      *string
		unique     int64
		duplicates int64
		conflicts  int64
		last       *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&topic, &unique, &duplicates, &conflicts, &last}, func() error {
		if topic == nil {
			stats.DeadLettered = unique
			stats.Received += unique
			return nil
		}
		t := uts.TopicStats{Topic: *topic, Unique: unique, Duplicates: duplicates, Conflicts: conflicts}
		if last != nil {
			t.LastEventAt = last.UTC()
		}
		stats.Topics = append(stats.Topics, t)
		stats.Received += unique + duplicates
		stats.UniqueProcessed += unique
		stats.DuplicateDropped += duplicates
		stats.DuplicateConflicts += conflicts
		return nil
	})
	if err != nil {
		return uts.Stats{}, wrap("stats", err)
	}
	// Sorted here, by bytes, rather than by the database's collation, so that every store
	// orders topics alike.
	slices.SortFunc(stats.Topics, func(a, b uts.TopicStats) int { return cmp.Compare(a.Topic, b.Topic) })
	return stats, nil
}

// StoredHash returns the stored event's content hash, hex-encoded as Event.ContentHash is;
// see uts.Store.
func (s *Store) StoredHash(ctx context.Context, key uts.Key) (string, error) {
	var hash []byte
	err := s.pool.QueryRow(ctx, `SELECT content_hash FROM events WHERE topic = $1 AND event_id = $2`,
		key.Topic, key.EventID).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", wrap("stored hash", err)
	}
	return hex.EncodeToString(hash), nil
}
