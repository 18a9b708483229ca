package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/uts-events/uts"
)

// A delivery needs remembering only until the broker has acknowledged its entry, which
// uts.DeliveryRetention outlasts by far. A ticker started by Open deletes what is older, a
// chunk per statement, so that no statement holds many row locks or runs long. Replicas
// prune alike, each skipping the rows another is deleting.
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

// startPruning prunes every pruneEvery until the returned function is called, which waits
// for a run in progress to stop. A failed run is retried at the next tick: until then the
// table only holds a little more.
func (s *Store) startPruning() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(pruneEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.prune(ctx, time.Now().Add(-uts.DeliveryRetention))
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// prune runs one pruning and logs its failure, which no caller is there to hear.
func (s *Store) prune(ctx context.Context, cutoff time.Time) {
	if n, err := s.pruneDeliveries(ctx, cutoff); err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "pruning deliveries failed; the next run tries again", "pruned", n, "err", err)
	}
}

// pruneDeliveries deletes the deliveries recorded before cutoff and returns how many.
func (s *Store) pruneDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for range pruneChunks {
		tag, err := s.pool.Exec(ctx, pruneSQL, cutoff, pruneChunkRows)
		if err != nil {
			return total, wrap("prune deliveries", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneChunkRows {
			break
		}
	}
	return total, nil
}
