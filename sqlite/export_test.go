package sqlite

import (
	"context"
	"time"
)

// PruneDeliveries runs one pruning of the deliveries recorded before cutoff.
func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.pruneDeliveries(ctx, cutoff)
}
