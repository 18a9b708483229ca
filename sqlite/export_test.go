package sqlite

import (
	"context"
	"time"
)

// Prune runs one pruning as the store's ticker does, logging a failure.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) { s.pruner.Prune(ctx, cutoff) }

// PruneDeliveries runs one pruning of the deliveries recorded before cutoff.
func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.pruner.Delete(ctx, cutoff)
}

// WithCommitDelay holds each Append's transaction open for delay() before it commits.
func WithCommitDelay(delay func() time.Duration) Option {
	return func(s *Store) { s.commitDelay = delay }
}

// Classify gives err a kind and a client's message as the store does with each of its errors.
func Classify(ctx context.Context, op string, err error) error { return classify(ctx, op, err) }

// SchemaV3 creates a file as versions up to 3 of this package did, to test the migrations.
const SchemaV3 = schemaV1 + schemaV2 + schemaV3
