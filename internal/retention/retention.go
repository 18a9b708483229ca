// Package retention prunes what a store keeps for a while only (the broker deliveries it
// records, see uts.DeliveryRetention): on a ticker, in bounded chunks, and logging a failed
// run, since no caller is there to hear it. Both stores prune alike; only deleting a chunk
// is theirs.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Pruner deletes, every Every, what is older than Keep.
type Pruner struct {
	Every time.Duration
	Keep  time.Duration
	// ChunkRows is the most one Chunk deletes, so that no chunk holds a lock for long;
	// Chunks bounds one run, and what is left waits for the next tick.
	ChunkRows, Chunks int
	// Chunk deletes up to rows records from before cutoff and says how many it deleted.
	Chunk func(ctx context.Context, cutoff time.Time, rows int) (int64, error)
	// Hold, when set, says from when on records may still be needed, whatever their age: a
	// broker's oldest entry in flight, which may be delivered again, and must then find its
	// delivery recorded or be counted twice. The zero time holds nothing back. When Hold
	// fails, nothing is deleted.
	Hold func(ctx context.Context) (time.Time, error)
	Log  *slog.Logger
}

// Start prunes every p.Every until the returned function is called, which waits for a run
// in progress to stop. A failed run is retried at the next tick: until then the table only
// holds a little more.
func (p Pruner) Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(p.Every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.Prune(ctx, time.Now().Add(-p.Keep))
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// Prune runs one pruning as the ticker does, logging its failure.
func (p Pruner) Prune(ctx context.Context, cutoff time.Time) {
	if n, err := p.Delete(ctx, cutoff); err != nil && ctx.Err() == nil {
		p.Log.WarnContext(ctx, "pruning deliveries failed; the next run tries again", "pruned", n, "err", err)
	}
}

// Delete deletes what is older than cutoff and than Hold's time, a chunk at a time, and
// returns how much.
func (p Pruner) Delete(ctx context.Context, cutoff time.Time) (int64, error) {
	if p.Hold != nil {
		held, err := p.Hold(ctx)
		if err != nil {
			return 0, fmt.Errorf("read what is still needed: %w", err)
		}
		if !held.IsZero() && held.Before(cutoff) {
			cutoff = held
		}
	}
	var total int64
	for range p.Chunks {
		n, err := p.Chunk(ctx, cutoff, p.ChunkRows)
		total += n
		if err != nil || n < int64(p.ChunkRows) {
			return total, err
		}
	}
	return total, nil
}
