package inproc_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/brokertest"
	"github.com/uts-events/uts/inproc"
)

// BenchmarkPublish measures the broker's own cost: many publishers, each waiting for its
// commit, through a commit func that does nothing, so that grouping and hand-off dominate.
func BenchmarkPublish(b *testing.B) {
	for _, bench := range []struct {
		size   int
		linger time.Duration
	}{{1, 2 * time.Millisecond}, {1, 0}, {100, 2 * time.Millisecond}} {
		size := bench.size
		b.Run(fmt.Sprintf("events=%d/linger=%v", size, bench.linger), func(b *testing.B) {
			opts := inproc.DefaultOptions()
			opts.Linger = bench.linger
			broker := inproc.New(opts)
			news := make([]uts.Outcome, inproc.DefaultOptions().BatchEvents+size)
			for i := range news {
				news[i] = uts.OutcomeNew
			}
			var commits atomic.Int64
			stop := brokertest.Consume(b, broker, func(_ context.Context, events []uts.Event) ([]uts.Outcome, error) {
				commits.Add(1)
				return news[:len(events):len(events)], nil
			})
			b.SetParallelism(64) // 64 × GOMAXPROCS publishers, like many HTTP handlers
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				batch := events("bench", size)
				for pb.Next() {
					if _, err := broker.Publish(context.Background(), batch); err != nil {
						b.Errorf("Publish: %v", err)
						return
					}
				}
			})
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/float64(commits.Load()), "publishes/commit")
		})
	}
}
