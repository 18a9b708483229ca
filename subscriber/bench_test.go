package subscriber_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/subscriber"
)

// drainEvents is how many events each drain reads: UTS_BENCH_DRAIN_EVENTS, or 200,000.
func drainEvents(b *testing.B) int {
	if v := os.Getenv("UTS_BENCH_DRAIN_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("UTS_BENCH_DRAIN_EVENTS=%q: want a positive number", v)
		}
		return n
	}
	return 200000
}

// BenchmarkDrain measures how fast the subscriber drains a subscription of stored events into
// a file, over HTTP from the real handler, and beside it, on the same store in the same run,
// the store's own read rate (Store.Events paging, no HTTP): the ceiling the subscriber can
// approach. Each iteration reads every event once.
func BenchmarkDrain(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(testing.TB) store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		b.Run(backend.name, func(b *testing.B) {
			s := backend.open(b)
			n := drainEvents(b)
			fill(b, s, "bench-", n, "orders", "payments", "shipments", "refunds")
			b.Run("store", func(b *testing.B) {
				for b.Loop() {
					if got := readAll(b, s, 10000); got != n {
						b.Fatalf("read %d events; want %d", got, n)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
			})
			url := serve(b, s, nil, "")
			for _, limit := range []int{1000, 5000, 10000} {
				b.Run("subscriber/limit="+strconv.Itoa(limit), func(b *testing.B) {
					run := 0
					for b.Loop() {
						run++
						cfg := subscriber.DefaultConfig()
						cfg.URLs = []string{url}
						cfg.Subscription = "bench-" + strconv.Itoa(limit) + "-" + strconv.Itoa(run)
						cfg.Out = filepath.Join(b.TempDir(), "out.ndjson")
						cfg.Limit = limit
						cfg.CommitEvery = 50000
						cfg.ExitIdle = true
						summary, err := subscriber.Follow(b.Context(), cfg, io.Discard, nil)
						if err != nil {
							b.Fatal(err)
						}
						if summary.Events != int64(n) {
							b.Fatalf("drained %d events; want %d", summary.Events, n)
						}
					}
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
				})
			}
		})
	}
}

// readAll pages through the whole feed with the store's own reads and counts the events.
func readAll(b *testing.B, s store, limit int) int {
	total := 0
	q := uts.EventQuery{Limit: limit}
	for {
		events, err := s.Events(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		total += len(events)
		if len(events) < limit {
			return total
		}
		q.After = events[len(events)-1].Cursor
	}
}
