package consumer_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	"github.com/uts-events/uts/sqlite"
)

const benchBatch = 100

// benchMixes are batches of 100: all new, or 30 of them re-sending events of the batch
// before, as retries or with other content (conflicts).
var benchMixes = []struct {
	name      string
	repeated  int
	conflicts bool
}{
	{"unique", 0, false},
	{"duplicates30", 30, false},
	{"conflicts30", 30, true},
}

// BenchmarkAppendMix measures Store.Append alone on SQLite: what a duplicate or a conflict
// costs the store against a new event.
func BenchmarkAppendMix(b *testing.B) {
	for _, mix := range benchMixes {
		b.Run(mix.name, func(b *testing.B) {
			store := benchStore(b)
			benchMix(b, mix.repeated, mix.conflicts, store.Append)
		})
	}
}

// BenchmarkCommitMix measures the consumer's whole batch path with WARN on, as in
// production: Append, the tally, and for conflicts the rate-limited log lines with the
// stored hash each one reads.
func BenchmarkCommitMix(b *testing.B) {
	for _, mix := range benchMixes {
		b.Run(mix.name, func(b *testing.B) {
			logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
			c := consumer.New(benchStore(b), logger)
			benchMix(b, mix.repeated, mix.conflicts, c.Commit)
		})
	}
}

func benchStore(b *testing.B) uts.Store {
	b.Helper()
	store, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "uts.db"))
	if err != nil {
		b.Fatalf("sqlite.Open: %v", err)
	}
	b.Cleanup(func() { store.Close() })
	return store
}

// benchMix commits batches of benchBatch events, of which the last repeated re-send keys
// the previous batch stored: unchanged (duplicates) or with another payload (conflicts).
func benchMix(b *testing.B, repeated int, conflicts bool, commit uts.CommitFunc) {
	ctx := b.Context()
	fresh := benchBatch - repeated
	topics := []string{"bench.orders", "bench.payments", "bench.shipments", "bench.refunds"}
	newEvent := func(seq int) uts.Event {
		return uts.Event{
			Topic:     topics[seq%len(topics)],
			EventID:   fmt.Sprintf("e-%d", seq),
			Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			Source:    "consumer-bench",
			Payload:   json.RawMessage(fmt.Sprintf(`{"amount_cents":%d,"currency":"EUR","customer":"c-88213"}`, seq)),
		}
	}
	seq := 0
	previous := make([]uts.Event, benchBatch) // the new events of the batch before
	for i := range previous {
		previous[i] = newEvent(seq)
		seq++
	}
	if _, err := commit(ctx, previous); err != nil {
		b.Fatalf("seed: %v", err)
	}
	nextBatch := func() []uts.Event {
		batch := make([]uts.Event, 0, benchBatch)
		for range fresh {
			batch = append(batch, newEvent(seq))
			seq++
		}
		for i := range repeated {
			again := previous[i]
			if conflicts {
				again.Payload = json.RawMessage(`{"amount_cents":0,"currency":"EUR","customer":"someone-else"}`)
			}
			batch = append(batch, again)
		}
		previous = batch[:fresh]
		return batch
	}
	wantNew := fresh

	events := 0
	for b.Loop() {
		batch := nextBatch()
		outcomes, err := commit(ctx, batch)
		if err != nil {
			b.Fatalf("commit: %v", err)
		}
		if tally := uts.TallyOf(outcomes); tally.Unique != wantNew {
			b.Fatalf("tally %+v, want %d new", tally, wantNew)
		}
		events += len(batch)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
