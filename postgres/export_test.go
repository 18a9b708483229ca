package postgres

import (
	"context"
	"time"

	"github.com/uts-events/uts"
)

// ExplainAppend returns the plan the store's sessions use for a batch, the generic one that
// prepared statements end up with.
func (s *Store) ExplainAppend(ctx context.Context, events []uts.Event) (string, error) {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	// The setting stays with the connection: take it out of the pool and close it after.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		return "", err
	}
	query, args, err := appendStatement(events)
	if err != nil {
		return "", err
	}
	var plan string
	rows, err := conn.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		plan += line + "\n"
	}
	return plan, rows.Err()
}

// PruneDeliveries runs one pruning of the deliveries recorded before cutoff.
func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.pruneDeliveries(ctx, cutoff)
}
