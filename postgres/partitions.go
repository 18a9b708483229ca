package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The events table is partitioned by processed_at (migrations/0006_retention.sql): expiry
// drops a partition whose events have all expired, in one catalog operation, instead of
// deleting its rows one by one and leaving the table to vacuum.
const (
	// DefaultPartitionWidth is the time range of one partition: a day, so that a retention
	// of a month keeps about thirty of them.
	DefaultPartitionWidth = 24 * time.Hour
	// partitionsAhead is how many partitions exist beyond the one of the database's current
	// time: created at Open and topped up by every Expire, so that one missed round or a
	// store down for a day does not send events to the default partition.
	partitionsAhead = 3
	// defaultLockTimeout bounds how long a statement of expiry or of partition creation waits
	// for a lock on the events table, and so how long appends and reads can queue behind it.
	// One that times out is tried again in the next round.
	defaultLockTimeout = 100 * time.Millisecond
	// partitionLockClass namespaces the advisory lock that serializes partition creation
	// among replicas (the other half of the key is the schema), as migrationLockClass does.
	partitionLockClass = 0x75747302 // "uts" 2
)

// WithPartitionWidth sets the time range of each new partition of the events table (default
// DefaultPartitionWidth). Partitions already created keep theirs.
func WithPartitionWidth(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.partitionWidth = d
		}
	}
}

// partition is one range partition of the events table.
type partition struct {
	name  string
	lower *time.Time // nil for MINVALUE: the table from before partitioning
	upper time.Time
}

// partitionsSQL lists the range partitions with their bounds, oldest first. A bound is read
// back from the partition's expression, which writes it as a timestamptz literal in this
// session's settings, so the cast in the same statement reads it right. The default
// partition has none, nor does MINVALUE.
const partitionsSQL = `
SELECT c.relname::text,
       substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')::timestamptz AS lower,
       substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz AS upper
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass
ORDER BY upper NULLS LAST`

func listPartitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]partition, error) {
	rows, err := q.Query(ctx, partitionsSQL)
	if err != nil {
		return nil, err
	}
	var out []partition
	var name string
	var lower, upper *time.Time
	_, err = pgx.ForEachRow(rows, []any{&name, &lower, &upper}, func() error {
		if upper != nil {
			out = append(out, partition{name: name, lower: lower, upper: *upper})
		}
		return nil
	})
	return out, err
}

// partitionName names a partition by its lower bound: events_pYYYYMMDD for partitions of
// whole days, with the time of day after it otherwise.
func partitionName(lower time.Time, width time.Duration) string {
	lower = lower.UTC()
	switch {
	case width%(24*time.Hour) == 0 && lower.Equal(lower.Truncate(24*time.Hour)):
		return "events_p" + lower.Format("20060102")
	case width%time.Minute == 0 && lower.Second() == 0:
		return "events_p" + lower.Format("20060102_1504")
	}
	return "events_p" + lower.Format("20060102_150405")
}

// ensurePartitions creates the partitions from the last one's upper bound (or the start of
// the current period, when there is none or it lies in the past) until partitionsAhead
// partitions lie beyond the database's current time. A partition is created on its own and
// then attached, which takes a SHARE UPDATE EXCLUSIVE lock on the events table (appends and
// reads go on) and an ACCESS EXCLUSIVE one on the default partition, which is checked for
// rows of the new range; CREATE TABLE ... PARTITION OF would lock the whole table instead.
func (s *Store) ensurePartitions(ctx context.Context) error {
	width := s.partitionWidth
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Replicas take turns, each finding what the one before created. lock_timeout is set
		// after the turn is taken: it bounds the waits on the events table only.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, partitionLockClass); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprint(s.lockTimeout.Milliseconds())); err != nil {
			return err
		}
		var now time.Time
		var inDefault *time.Time // the latest event that fell into the default partition
		if err := tx.QueryRow(ctx, `SELECT now(), (SELECT max(processed_at) FROM events_default)`).Scan(&now, &inDefault); err != nil {
			return err
		}
		parts, err := listPartitions(ctx, tx)
		if err != nil {
			return err
		}
		// Partitions are laid on multiples of the width since the epoch.
		start := now.Truncate(width)
		if len(parts) > 0 {
			if last := parts[len(parts)-1].upper; last.After(start) {
				start = last
			}
		}
		// A range that already has rows in the default partition cannot be attached: those
		// rows stay where they are, and expire from there.
		if inDefault != nil && !inDefault.Before(start) {
			start = inDefault.Truncate(width).Add(width)
		}
		for end := now.Truncate(width).Add((partitionsAhead + 1) * width); start.Before(end); start = start.Add(width) {
			name := pgx.Identifier{partitionName(start, width)}.Sanitize()
			if _, err := tx.Exec(ctx, `CREATE TABLE `+name+` (LIKE events)`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE events ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`,
				name, start.UTC().Format(time.RFC3339Nano), start.Add(width).UTC().Format(time.RFC3339Nano))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrap("create partitions", err)
	}
	return nil
}

// isLockTimeout reports whether err is a lock_timeout (lock_not_available) that ended a
// statement: the work is tried again in the next round.
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
