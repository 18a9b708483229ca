package postgres

import (
	"context"
	"time"
)

// Pruning (see internal/retention): a delivery needs remembering only until the broker has
// acknowledged its entry, which uts.DeliveryRetention outlasts by far. A ticker started by
// Open deletes what is older, a chunk per statement, so that no statement holds many row
// locks or runs long. Replicas prune alike, each skipping the rows another is deleting.
const (
	pruneEvery     = 10 * time.Minute
	pruneChunkRows = 5000
	// pruneChunks bounds one pruning run; what is left waits for the next tick.
	pruneChunks = 1000
)

// SKIP LOCKED: replicas pruning at once take disjoint chunks instead of waiting on, or
// deadlocking with, each other's rows.
const pruneSQL = `DELETE FROM deliveries WHERE (delivery, topic, event_id) IN (
	SELECT delivery, topic, event_id FROM deliveries WHERE recorded_at < $1 LIMIT $2
	FOR UPDATE SKIP LOCKED)`

// pruneChunk deletes up to rows deliveries recorded before cutoff, in one statement.
func (s *Store) pruneChunk(ctx context.Context, cutoff time.Time, rows int) (int64, error) {
	tag, err := s.pool.Exec(ctx, pruneSQL, cutoff, rows)
	if err != nil {
		return 0, wrap("prune deliveries", err)
	}
	return tag.RowsAffected(), nil
}
