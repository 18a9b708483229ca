package redis

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
)

func BenchmarkPublish(b *testing.B) {
	broker := openAt(b, testenv.RedisURL(b), Options{Logger: slog.New(slog.DiscardHandler)})
	const batch = 100
	events := newEvents("bench", batch)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := broker.Publish(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkConsume measures read, decode, acknowledge and delete per event, with a commit
// that stores nothing. b.N is the number of events.
func BenchmarkConsume(b *testing.B) {
	broker := openAt(b, testenv.RedisURL(b), Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	for i := 0; i < b.N; i += 1000 {
		events := newEvents("bench", min(1000, b.N-i))
		if _, err := broker.Publish(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	var consumed atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	commit := func(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
		if consumed.Add(int64(len(events))) >= int64(b.N) {
			once.Do(func() { close(done) })
		}
		return make([]uts.Outcome, len(events)), nil
	}
	consumeCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	b.ResetTimer()
	go func() { stopped <- broker.Consume(consumeCtx, commit) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Errorf("consumed %d of %d events in a minute", consumed.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cancel()
	if err := <-stopped; err != nil {
		b.Error(err)
	}
}
