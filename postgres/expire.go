package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
)

// dropMargin is how far behind the database's own clock a partition's upper bound must lie
// before the partition may be dropped, whatever `now` Expire is given: a partition that can
// still receive an insert (processed_at is the time its transaction began) is never dropped.
// The drop also locks the partition against inserts before it counts its rows, so the margin
// is a second guard, not the only one.
const dropMargin = time.Hour

// Expire deletes what r says has expired as of now; see uts.Store. In order:
//
//  1. It creates the partitions ahead (see ensurePartitions).
//  2. It drops every partition whose events have all expired (its upper bound is older than
//     now minus the longest retention of any topic, and than the database's clock minus
//     dropMargin), counting its events per topic first, in the transaction that drops it.
//  3. It deletes the other expired events (shorter retentions of some topics, partitions
//     not yet droppable, the default partition), topic by topic, along each topic's feed
//     index from the topic's scan cursor on, up to limit rows in all, each chunk in one
//     statement that also counts them.
//  4. Once no event is left to expire, so that no fingerprint goes before its event, it
//     deletes up to limit fingerprints older than r.Fingerprints.
//
// A drop that times out on its lock leaves its partition's events to step 3 in this call
// (they have expired); the next call tries the drop again.
func (s *Store) Expire(ctx context.Context, r uts.Retention, now time.Time, limit int) (uts.Expiry, error) {
	var out uts.Expiry
	if err := r.Validate(); err != nil {
		return out, err
	}
	limit = max(limit, 1)
	if err := s.ensurePartitions(ctx); err != nil && !isLockTimeout(err) {
		return out, err
	}
	if longest, forever := r.Longest(); !forever {
		n, err := s.dropExpiredPartitions(ctx, now.Add(-longest))
		out.Events += n
		if err != nil {
			return out, err
		}
	}
	if r.ExpiresEvents() {
		n, more, err := s.expireEvents(ctx, r, now, limit)
		out.Events += n
		if err != nil || more {
			out.More = more
			return out, err
		}
	}
	if r.Fingerprints > 0 {
		n, err := s.expireFingerprints(ctx, now.Add(-r.Fingerprints), limit)
		out.Fingerprints = n
		out.More = n >= int64(limit)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// expiryUpsertSQL adds a chunk's expired events to its topic's row: the count grows, and the
// expired-through cursor rises to the chunk's greatest, never falls.
const expiryUpsertSQL = `
    ON CONFLICT (topic) DO UPDATE SET
        expired     = x.expired + excluded.expired,
        through_xid = CASE WHEN (excluded.through_xid, excluded.through_seq) > (x.through_xid, x.through_seq)
                           THEN excluded.through_xid ELSE x.through_xid END,
        through_seq = CASE WHEN (excluded.through_xid, excluded.through_seq) > (x.through_xid, x.through_seq)
                           THEN excluded.through_seq ELSE x.through_seq END`

// partitionCountSQL counts a partition's events per topic with the greatest cursor of each:
// one scan to count, and one descent of the partition's topic index per topic.
const partitionCountSQL = `
SELECT g.topic, g.n, m.xid::text, m.seq
FROM (SELECT topic, count(*) AS n FROM %[1]s GROUP BY topic) g
CROSS JOIN LATERAL (SELECT xid, seq FROM %[1]s p WHERE p.topic = g.topic ORDER BY xid DESC, seq DESC LIMIT 1) m`

// dropExpiredPartitions drops the partitions whose upper bound is at or before cutoff and
// behind the database's clock by dropMargin, oldest first, each in a transaction of its own:
//
//   - SHARE lock on the partition, so that no insert or delete changes it while it is
//     counted (nothing should insert there: its range is past);
//   - the count per topic, while appends and reads go on;
//   - DROP TABLE, which takes an ACCESS EXCLUSIVE lock on the events table: lock_timeout
//     bounds how long appends queue behind it, and a drop that times out waits for the next
//     round;
//   - the counts into the expiry table, committed with the drop.
func (s *Store) dropExpiredPartitions(ctx context.Context, cutoff time.Time) (int64, error) {
	var dbNow time.Time
	if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&dbNow); err != nil {
		return 0, wrap("expire", err)
	}
	parts, err := listPartitions(ctx, s.pool)
	if err != nil {
		return 0, wrap("expire", err)
	}
	var total int64
	for _, p := range parts {
		if p.upper.After(cutoff) || p.upper.After(dbNow.Add(-dropMargin)) {
			break // sorted by upper bound: the rest are younger
		}
		n, err := s.dropPartition(ctx, p.name)
		if isLockTimeout(err) {
			s.log.Info("postgres: dropping an expired partition timed out waiting for a lock; it is tried again next round",
				"partition", p.name)
			return total, nil
		}
		if err != nil {
			return total, wrap("expire", err)
		}
		total += n
	}
	return total, nil
}

func (s *Store) dropPartition(ctx context.Context, name string) (int64, error) {
	var total int64
	ident := pgx.Identifier{name}.Sanitize()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The count's lateral join is a nested loop by nature, one index descent per topic;
		// the store's sessions have nested loops off (see Open).
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('enable_nestloop', 'on', true)`,
			fmt.Sprint(s.lockTimeout.Milliseconds())); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE `+ident+` IN SHARE MODE`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(partitionCountSQL, ident))
		if err != nil {
			return err
		}
		var (
			topics, xids []string
			counts, seqs []int64
			topic, xid   string
			n, seq       int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&topic, &n, &xid, &seq}, func() error {
			topics, counts, xids, seqs = append(topics, topic), append(counts, n), append(xids, xid), append(seqs, seq)
			total += n
			return nil
		}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+ident); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO expiry AS x (topic, expired, through_xid, through_seq)
			SELECT topic, n, xid::xid8, seq
			FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[]) AS u(topic, n, xid, seq)
			ORDER BY topic`+expiryUpsertSQL, topics, counts, xids, seqs)
		return err
	})
	return total, err
}

// expireChunkSQL deletes up to $4 expired events of topic $1 after its scan cursor ($2,
// $3), and counts them in the same statement. It reads the topic's feed index from the
// cursor on, so a chunk does not pass over the dead rows of the chunks before it.
//
// Events are deleted in feed order up to the first one not yet expired ($5 is the cutoff):
// processed_at is the time of the transaction, which follows feed order within the few
// milliseconds a transaction takes to get its id, so an expired event past a younger one
// waits for the next round rather than leave the younger one behind the cursor.
//
// The scan cursor then moves to the last event deleted, but never past the feed's horizon:
// a transaction still in flight could commit events behind a cursor past it, where no later
// chunk would look. (The expired-through cursor, what readers are told, is the greatest
// event deleted.)
const expireChunkSQL = `
WITH page AS (
    SELECT xid, seq, processed_at < $5 AS expired FROM events
    WHERE topic = $1 AND (xid, seq) > ($2::text::xid8, $3)
    ORDER BY xid, seq LIMIT $4
),
fresh AS (
    SELECT xid, seq FROM page WHERE NOT expired ORDER BY xid, seq LIMIT 1
),
bound AS (
    SELECT xid, seq FROM page
    WHERE expired AND (NOT EXISTS (SELECT FROM fresh)
                       OR (xid, seq) < ((SELECT xid FROM fresh), (SELECT seq FROM fresh)))
    ORDER BY xid DESC, seq DESC LIMIT 1
),
-- The rows after the cursor up to the bound, as three ranges that each bound both ends of
-- a scan of the (topic, xid, seq) index: a btree scan stops on the first column of a row
-- comparison only, so "(xid, seq) <= bound" read every row of the bound's transaction to
-- the end, and the events migrated from before the feed all have xid 0. One DELETE with the
-- ranges OR'ed got a generic plan that read every row of the topic. The rest of the
-- cursor's transaction; the transactions between; the bound's transaction up to the bound:
deleted_first AS (
    DELETE FROM events
    WHERE topic = $1 AND xid = $2::text::xid8 AND seq > $3
      AND seq <= CASE WHEN (SELECT xid FROM bound) = $2::text::xid8 THEN (SELECT seq FROM bound)
                      WHEN (SELECT xid FROM bound) > $2::text::xid8 THEN 9223372036854775807 END
      AND processed_at < $5
    RETURNING xid, seq
),
deleted_between AS (
    DELETE FROM events
    WHERE topic = $1 AND xid > $2::text::xid8 AND xid < (SELECT xid FROM bound) AND processed_at < $5
    RETURNING xid, seq
),
deleted_last AS (
    DELETE FROM events
    WHERE topic = $1 AND xid = (SELECT xid FROM bound) AND xid > $2::text::xid8
      AND seq <= (SELECT seq FROM bound) AND processed_at < $5
    RETURNING xid, seq
),
deleted AS (
    SELECT xid, seq FROM deleted_first
    UNION ALL SELECT xid, seq FROM deleted_between
    UNION ALL SELECT xid, seq FROM deleted_last
),
scan AS (
    -- The last event deleted, or the horizon if that comes first.
    SELECT CASE WHEN (b.xid, b.seq) < (h.horizon, 0) THEN b.xid ELSE h.horizon END AS xid,
           CASE WHEN (b.xid, b.seq) < (h.horizon, 0) THEN b.seq ELSE 0 END AS seq
    FROM (SELECT (SELECT xid FROM bound) AS xid, (SELECT seq FROM bound) AS seq) b,
         (SELECT feed_horizon() AS horizon) h
),
counted AS (
    INSERT INTO expiry AS x (topic, expired, through_xid, through_seq, scan_xid, scan_seq)
    SELECT $1, count(*), (array_agg(xid ORDER BY xid DESC, seq DESC))[1],
           (array_agg(seq ORDER BY xid DESC, seq DESC))[1], (SELECT xid FROM scan), (SELECT seq FROM scan)
    FROM deleted
    HAVING count(*) > 0` + expiryUpsertSQL + `,
        scan_xid = CASE WHEN (excluded.scan_xid, excluded.scan_seq) > (x.scan_xid, x.scan_seq)
                        THEN excluded.scan_xid ELSE x.scan_xid END,
        scan_seq = CASE WHEN (excluded.scan_xid, excluded.scan_seq) > (x.scan_xid, x.scan_seq)
                        THEN excluded.scan_seq ELSE x.scan_seq END
)
SELECT count(*) FROM deleted`

// expireEvents deletes the expired events that no partition drop took, topic by topic, up
// to limit in all; more says it stopped at the limit.
func (s *Store) expireEvents(ctx context.Context, r uts.Retention, now time.Time, limit int) (deleted int64, more bool, err error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.topic, coalesce(x.scan_xid, '0')::text, coalesce(x.scan_seq, 0)
		FROM (SELECT DISTINCT topic FROM topic_counters) c LEFT JOIN expiry x USING (topic)
		ORDER BY c.topic`)
	if err != nil {
		return 0, false, wrap("expire", err)
	}
	type topicCursor struct {
		Topic string
		Tx    string // the scan cursor
		Seq   int64
	}
	topics, err := pgx.CollectRows(rows, pgx.RowToStructByPos[topicCursor])
	if err != nil {
		return 0, false, wrap("expire", err)
	}
	for _, t := range topics {
		keep := r.For(t.Topic)
		if keep == 0 {
			continue
		}
		cutoff := now.Add(-keep)
		for {
			left := int64(limit) - deleted
			if left <= 0 {
				return deleted, true, nil
			}
			var n int64
			if err := s.pool.QueryRow(ctx, expireChunkSQL, t.Topic, t.Tx, t.Seq, left, cutoff).Scan(&n); err != nil {
				return deleted, false, wrap("expire", err)
			}
			deleted += n
			if n == 0 {
				break
			}
			// The next chunk starts where this one left the scan cursor.
			if err := s.pool.QueryRow(ctx, `SELECT scan_xid::text, scan_seq FROM expiry WHERE topic = $1`,
				t.Topic).Scan(&t.Tx, &t.Seq); err != nil {
				return deleted, false, wrap("expire", err)
			}
		}
	}
	return deleted, false, nil
}

// expireFingerprints deletes up to limit fingerprints of events processed before cutoff.
// Minutes are rounded down at append, so a fingerprint is deleted only once every event of
// its minute is older than cutoff, and so, Fingerprints being at least every event
// retention, expired: a fingerprint never goes before its event. SKIP LOCKED: replicas take
// disjoint chunks. There is no index on the minute (it would cost every append), so a chunk
// reads the table from the start: the rows of the chunks before, dead until vacuum, are read
// again.
//
// Fingerprints being at least every event retention is not enough on its own: expiry may
// leave an expired event behind a younger one that sorts before it (processed_at is when a
// transaction began, the feed's order when it first wrote), and another replica's chunk may
// still be deleting. So the cutoff is never later than the oldest event that may still be
// stored (storedSince): a fingerprint is deleted only once every event of its time is gone,
// which holds fingerprints up to a partition's width past Retention.Fingerprints.
func (s *Store) expireFingerprints(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	since, err := s.storedSince(ctx)
	if err != nil {
		return 0, err
	}
	if since.Before(cutoff) {
		cutoff = since
	}
	minute := cutoff.Unix() / 60
	if cutoff.Unix() < 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM fingerprints WHERE key = ANY(ARRAY(
			SELECT key FROM fingerprints WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))`,
		int32(minute), limit)
	if err != nil {
		return 0, wrap("expire fingerprints", err)
	}
	return tag.RowsAffected(), nil
}

// ExpiredThrough returns the greatest cursor of the events of topics (all when none) that
// retention deleted; see uts.Store.
func (s *Store) ExpiredThrough(ctx context.Context, topics []string) (uts.Cursor, error) {
	if topics == nil {
		topics = []string{} // NULL would match no topic
	}
	var (
		tx  *int64
		seq *int64
	)
	err := s.pool.QueryRow(ctx, `
		SELECT through_xid::text::bigint, through_seq FROM expiry
		WHERE cardinality($1::text[]) = 0 OR topic = ANY($1::text[])
		ORDER BY through_xid DESC, through_seq DESC LIMIT 1`, topics).Scan(&tx, &seq)
	if err == pgx.ErrNoRows {
		return uts.Cursor{}, nil
	}
	if err != nil {
		return uts.Cursor{}, wrap("expired through", err)
	}
	return uts.Cursor{Tx: uint64(*tx), Seq: *seq}, nil
}

// storedSince is a time no stored event was processed before: the lower bound of the oldest
// range partition that holds an event, or the oldest event of the default partition,
// whichever is earlier. Each partition is asked whether it holds a row, oldest first, so the
// answer costs a probe of each empty one that has not been dropped yet. A partition from
// MINVALUE (the table from before partitioning) has no lower bound: while it holds an event,
// nothing is older than the zero time. With no event stored it is the far future.
func (s *Store) storedSince(ctx context.Context) (time.Time, error) {
	since := time.Unix(1<<40, 0) // nothing stored
	var oldestDefault *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(processed_at) FROM events_default`).Scan(&oldestDefault); err != nil {
		return time.Time{}, wrap("expire fingerprints: default partition", err)
	}
	if oldestDefault != nil {
		since = *oldestDefault
	}
	parts, err := listPartitions(ctx, s.pool)
	if err != nil {
		return time.Time{}, wrap("expire fingerprints: partitions", err)
	}
	for _, p := range parts {
		var held bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+pgx.Identifier{p.name}.Sanitize()+`)`).Scan(&held); err != nil {
			return time.Time{}, wrap("expire fingerprints: partition "+p.name, err)
		}
		if !held {
			continue
		}
		var lower time.Time // MINVALUE
		if p.lower != nil {
			lower = *p.lower
		}
		if lower.Before(since) {
			since = lower
		}
		break
	}
	return since, nil
}
