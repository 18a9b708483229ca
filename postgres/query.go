package postgres

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
)

// eventColumns names the cursor's transaction tx: unnamed, the cast's column was called xid,
// and ORDER BY xid then sorted by the cast instead of the column, so that no index served it
// and every page sorted every event after its cursor (430 ms for a page of 10,000 from
// 200,000 events; 38 ms by the index).
const eventColumns = `xid::text::bigint AS tx, seq, topic, event_id, ts, ts_nanos, source, payload, processed_at`

// Events returns a page of stored events in feed order (xid, seq), or newest first; see
// uts.Store.
//
// The feed hands out only rows whose transaction is older than every transaction in flight
// (below the snapshot's xmin): one still in flight, whatever seq it drew, then commits with
// an xid above every cursor handed out, so no reader passes it. The statement also reads
// the rows past those, up to the limit, to tell whether it held any back: those are
// committed, but a transaction still in flight may yet sort before them. Such transactions
// are short (one statement each), so Events waits for them a little and reads again (see
// settleWithin): a page read right after a commit holds that commit's events, as a reader
// expects. Past that, it returns what is readable, and a short timer wakes the waiting
// readers to read again (see heldBack).
func (s *Store) Events(ctx context.Context, q uts.EventQuery) ([]uts.StoredEvent, error) {
	if q.Limit <= 0 {
		return []uts.StoredEvent{}, nil
	}
	if q.Newest {
		return s.newestEvents(ctx, q)
	}
	query, args, err := eventsStatement(q, 0)
	if err != nil {
		return nil, err
	}
	var (
		events   []uts.StoredEvent
		readable int
		target   uts.Cursor // the last row the first read held back
	)
	settled, err := settle(ctx, func() (bool, error) {
		var err error
		events, readable, err = s.readEvents(ctx, query, args)
		if err != nil || readable == len(events) {
			return true, err
		}
		if target.IsZero() {
			target = events[len(events)-1].Cursor
		}
		// Under a steady load some transaction is always in flight; only those that held
		// back the first read are waited for.
		return readable > 0 && events[readable-1].Cursor.Compare(target) >= 0, nil
	})
	if err != nil {
		return nil, err
	}
	if !settled {
		s.heldBack()
	}
	clear(events[readable:])
	return events[:readable], nil
}

// settleWithin bounds how long a read waits for the transactions in flight that hold back
// committed events. A write transaction of another program in the same database, which
// counts too, can hold the feed back for as long as it lasts: the feed is then late, never
// wrong.
const settleWithin = 250 * time.Millisecond

// settle calls read until it says the transactions it waits for have ended, or settleWithin
// has passed (settled is false then). Those are one statement each, so it looks again soon:
// after 1 ms, then twice as long each time, up to 8 ms.
func settle(ctx context.Context, read func() (settled bool, err error)) (bool, error) {
	pause, deadline := time.Millisecond, time.Now().Add(settleWithin)
	for {
		settled, err := read()
		if settled || err != nil {
			return settled, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return false, wrap("list events", ctx.Err())
		}
		pause = min(2*pause, 8*time.Millisecond)
	}
}

// newestEvents returns a page newest first. Its cursors are places to follow the feed from
// (a reader that starts at the latest event takes the first one), so it hands out no event
// at or above the oldest transaction in flight either: one that committed above a
// transaction still in flight would put the latter's events behind that cursor, where the
// reader following it never finds them. As Events does, it waits a little for the
// transactions that hold committed events back, and then pages below the horizon they leave.
func (s *Store) newestEvents(ctx context.Context, q uts.EventQuery) ([]uts.StoredEvent, error) {
	query, args, err := eventsStatement(q, 0)
	if err != nil {
		return nil, err
	}
	horizon, err := s.newestHorizon(ctx, args[0], args[1], q.Topics)
	if err != nil {
		return nil, err
	}
	args[len(args)-1] = strconv.FormatUint(horizon, 10)
	events, _, err := s.readEvents(ctx, query, args)
	return events, err
}

// newestHorizon is the transaction id below which a newest-first page before (tx, seq) may
// hand out events: the oldest transaction in flight, once those that held back committed
// events of the page's range at the first look have ended, or settleWithin has passed.
func (s *Store) newestHorizon(ctx context.Context, tx, seq any, topics []string) (uint64, error) {
	where, args := `(xid, seq) < ($1::text::xid8, $2)`, []any{tx, seq}
	switch len(topics) {
	case 0:
	case 1:
		where, args = `topic = $3 AND `+where, append(args, topics[0])
	default:
		where, args = `topic = ANY($3::text[]) AND `+where, append(args, topics)
	}
	// The horizon and the newest committed event it holds back, from one snapshot.
	query := `SELECT feed_horizon()::text::bigint,
		(SELECT max(xid)::text::bigint FROM events WHERE ` + where + ` AND xid >= (SELECT feed_horizon()))`
	var (
		horizon int64
		target  *int64 // the newest committed event the first look held back
	)
	_, err := settle(ctx, func() (bool, error) {
		var held *int64
		if err := s.pool.QueryRow(ctx, query, args...).Scan(&horizon, &held); err != nil {
			return false, wrap("list events", err)
		}
		if target == nil {
			target = held
		}
		return target == nil || horizon > *target, nil
	})
	return uint64(horizon), err
}

// eventsStatement is the query for q and its arguments. The last column says whether the row
// may be handed out: readable rows come first in (xid, seq) order, the rest are held back.
// Newest first, only rows below horizon are read, all of them readable.
func eventsStatement(q uts.EventQuery, horizon uint64) (string, []any, error) {
	from, order, cursor := `(xid, seq) > ($1::text::xid8, $2)`, `xid, seq`, q.After
	// The snapshot's xmin first, which costs nothing: feed_horizon() reads pg_stat_activity
	// (about 0.7 ms), and as an InitPlan it runs only when a row is past xmin.
	ready := `(CASE WHEN xid < pg_snapshot_xmin(pg_current_snapshot()) THEN true ELSE xid < (SELECT feed_horizon()) END)`
	if q.Newest {
		from, order, cursor, ready = `(xid, seq) < ($1::text::xid8, $2)`, `xid DESC, seq DESC`, q.Before, `true`
		if cursor.IsZero() {
			cursor = uts.Cursor{Tx: math.MaxInt64, Seq: math.MaxInt64}
		}
	}
	if cursor.Tx > math.MaxInt64 {
		return "", nil, uts.Errorf(uts.KindInvalid, "cursor %s is past every transaction of this store", cursor)
	}
	// One statement per shape rather than one with "cardinality($4) = 0 OR topic = ANY($4)",
	// so that each keeps a plan that uses its index.
	where := from
	args := []any{strconv.FormatUint(cursor.Tx, 10), cursor.Seq, q.Limit, max(q.Offset, 0)}
	switch len(q.Topics) {
	case 0:
	case 1:
		where, args = `topic = $5 AND `+from, append(args, q.Topics[0])
	default:
		where, args = `topic = ANY($5::text[]) AND `+from, append(args, q.Topics)
	}
	if q.Newest {
		args = append(args, strconv.FormatUint(horizon, 10))
		where += ` AND xid < $` + strconv.Itoa(len(args)) + `::text::xid8`
	}
	// With an offset, rows held back may be among those skipped: the page then starts later
	// than it would once they are readable, one way in which an offset is unstable.
	return `SELECT ` + eventColumns + `, ` + ready + ` FROM events
		WHERE ` + where + ` ORDER BY ` + order + ` LIMIT $3 OFFSET $4`, args, nil
}

// readEvents runs an eventsStatement; readable counts the rows that may be handed out.
func (s *Store) readEvents(ctx context.Context, query string, args []any) (events []uts.StoredEvent, readable int, err error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, 0, wrap("list events", err)
	}
	events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (uts.StoredEvent, error) {
		var e uts.StoredEvent
		var xid int64
		var nanos int16
		var payload string
		var ready bool
		err := row.Scan(&xid, &e.Cursor.Seq, &e.Topic, &e.EventID, &e.Timestamp, &nanos, &e.Source, &payload, &e.ProcessedAt, &ready)
		e.Cursor.Tx = uint64(xid)
		e.Timestamp = e.Timestamp.Add(time.Duration(nanos)).UTC()
		e.ProcessedAt = e.ProcessedAt.UTC()
		e.Payload = []byte(payload)
		if ready {
			readable++
		}
		return e, err
	})
	if err != nil {
		return nil, 0, wrap("list events", err)
	}
	return events, readable, nil
}

// statsSQL reads every total in one statement, so from one snapshot: the counters add up,
// and what is stored is what was ever stored less what expired, with no count of the events.
// The row with a NULL topic carries the dead letters. The size on disk is read apart
// (diskBytes): it takes a lock on every table, which the counters must not wait for.
const statsSQL = `
SELECT c.topic, c.unique_count, c.duplicates, c.conflicts, c.last_event_at, coalesce(x.expired, 0)
FROM (SELECT topic, sum(unique_count)::bigint AS unique_count, sum(duplicates)::bigint AS duplicates,
             sum(conflicts)::bigint AS conflicts, max(last_event_at) AS last_event_at
      FROM topic_counters GROUP BY topic) c
LEFT JOIN expiry x ON x.topic = c.topic
UNION ALL
SELECT NULL, coalesce(sum(count), 0)::bigint, 0, 0, NULL, 0
FROM dead_letters`

// diskSQL is the size on disk of every table of the schema (a partition is one), with its
// indexes and TOAST. pg_total_relation_size takes an ACCESS SHARE lock on each table.
const diskSQL = `
SELECT coalesce(sum(pg_total_relation_size(r.oid)), 0)::bigint FROM pg_class r
WHERE r.relnamespace = current_schema()::regnamespace AND r.relkind IN ('r', 'm')`

// diskEstimateSQL is the catalog's estimate of the same, as of the tables' last vacuum or
// analyze, which takes no lock: what the size is while a table is locked.
const diskEstimateSQL = `
SELECT coalesce(sum(r.relpages), 0)::bigint * current_setting('block_size')::bigint FROM pg_class r
WHERE r.relnamespace = current_schema()::regnamespace`

// diskLockWait bounds how long reading the size waits for a table's lock before it settles
// for the catalog's estimate: a table locked by a migration or a stuck transaction must not
// hold /stats and /metrics up.
const diskLockWait = "100ms"

// diskBytes reads the size on disk, or its estimate while a table is locked.
func (s *Store) diskBytes(ctx context.Context) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+diskLockWait+"'"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, diskSQL).Scan(&n)
	})
	if isLockTimeout(err) {
		err = s.pool.QueryRow(ctx, diskEstimateSQL).Scan(&n)
	}
	if err != nil {
		return 0, wrap("stats: size on disk", err)
	}
	return n, nil
}

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
		expired    int64
	)
	_, err = pgx.ForEachRow(rows, []any{&topic, &unique, &duplicates, &conflicts, &last, &expired}, func() error {
		if topic == nil {
			stats.DeadLettered = unique
			stats.Received += unique
			return nil
		}
		t := uts.TopicStats{Topic: *topic, Unique: unique, Stored: unique - expired, Expired: expired,
			Duplicates: duplicates, Conflicts: conflicts}
		if last != nil {
			t.LastEventAt = last.UTC()
		}
		stats.Topics = append(stats.Topics, t)
		stats.Received += unique + duplicates
		stats.UniqueProcessed += unique
		stats.DuplicateDropped += duplicates
		stats.DuplicateConflicts += conflicts
		stats.Expired += expired
		return nil
	})
	if err != nil {
		return uts.Stats{}, wrap("stats", err)
	}
	stats.Stored = stats.UniqueProcessed - stats.Expired
	if stats.DiskBytes, err = s.diskBytes(ctx); err != nil {
		return uts.Stats{}, err
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
