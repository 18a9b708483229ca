package storetest

import (
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// benchRun keeps event ids unique when a benchmark function runs again on the same store
// (the testing package calls it once per b.N it tries).
var benchRun atomic.Int64

// benchPayload is shaped like a typical small business event.
var benchPayload = json.RawMessage(`{"amount_cents":129900,"currency":"EUR","customer":"c-88213","items":[{"qty":1,"sku":"KB-01"},{"qty":2,"sku":"MS-07"}],"note":"café ☕"}`)

// BenchmarkAppend appends batches of unique events, one Append per iteration, and reports
// events/s, so that every backend is measured the same way.
func BenchmarkAppend(b *testing.B, s uts.Store, batch int) { benchmarkAppend(b, s, batch, false) }

// BenchmarkAppendDelivered is BenchmarkAppend with every event delivered, 100 events to a
// delivery, as the Redis consumer commits its entries: the difference is the price of
// recording them.
func BenchmarkAppendDelivered(b *testing.B, s uts.Store, batch int) {
	benchmarkAppend(b, s, batch, true)
}

func benchmarkAppend(b *testing.B, s uts.Store, batch int, delivered bool) {
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(benchRun.Add(1), 10) + "-"
	topics := []string{"bench.orders", "bench.payments", "bench.shipments", "bench.refunds"}
	events := make([]uts.Event, batch)
	for i := range events {
		events[i] = uts.Event{
			Topic:     topics[i%len(topics)],
			Timestamp: time.Now().UTC(),
			Source:    "storetest-bench",
			Payload:   benchPayload,
		}
	}
	ctx := b.Context()
	seq := 0
	for b.Loop() {
		for i := range events {
			seq++
			events[i].EventID = prefix + strconv.Itoa(seq)
			if delivered {
				// Shaped like a Redis stream entry ID, an entry per 100 events.
				events[i].Delivery = prefix + strconv.Itoa((seq-1)/100) + "-0"
			}
		}
		outcomes, err := s.Append(ctx, events)
		if err != nil {
			b.Fatalf("Append: %v", err)
		}
		if len(outcomes) != batch || outcomes[0] != uts.OutcomeNew {
			b.Fatalf("Append of unique events returned %v...", outcomes[:min(len(outcomes), 3)])
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
}
