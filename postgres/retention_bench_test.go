package postgres_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/storetest"
)

// The retention benchmarks build millions of rows: they run only with UTS_BENCH_RETENTION=1,
// never in CI. UTS_BENCH_RETENTION_ROWS sets how many (default 10 million fingerprints, a
// million events).
func retentionRows(b *testing.B, def int) int {
	b.Helper()
	if os.Getenv("UTS_BENCH_RETENTION") != "1" {
		b.Skip("set UTS_BENCH_RETENTION=1 to build millions of rows")
	}
	if n, err := strconv.Atoi(os.Getenv("UTS_BENCH_RETENTION_ROWS")); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkAppendFingerprints appends batches of new events into a store that holds no
// fingerprint, and into one that holds millions (random keys, inserted one by one into the
// primary key as appends insert them, so that the index is as full as it would be), in turns,
// three times: the machine drifts, the ratio of each pair is what counts. The large store
// reports its fingerprints' size on disk per fingerprint: heap and primary key.
func BenchmarkAppendFingerprints(b *testing.B) {
	n := retentionRows(b, 10_000_000)
	// Each store's backends are found by their application_name, to read the server's CPU
	// time per event (see BenchmarkAppendServerCPU): steadier than events/s on a busy machine.
	app := "uts-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	openApp := func(name string) (*postgres.Store, string) {
		u := testenv.PostgresSchema(b) + "&application_name=" + app + name
		s, err := postgres.Open(b.Context(), u)
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		b.Cleanup(func() { s.Close() })
		return s, u
	}
	empty, _ := openApp("-empty")
	full, u := openApp("-full")
	pool := benchPool(b, u)
	start := time.Now()
	inChunks(b, n, func(from, to int) error {
		_, err := pool.Exec(b.Context(), `INSERT INTO fingerprints (key, content, at)
			SELECT gen_random_uuid(), (random() * 4294967295 - 2147483648)::int4,
			       floor(extract(epoch FROM now()) / 60)::int4
			FROM generate_series($1::int, $2::int)`, from, to)
		return err
	})
	if _, err := pool.Exec(b.Context(), `VACUUM ANALYZE fingerprints`); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	b.Logf("%d fingerprints built in %v", n, time.Since(start).Round(time.Second))
	var heap, index int64
	if err := pool.QueryRow(b.Context(), `SELECT pg_table_size('fingerprints'), pg_indexes_size('fingerprints')`).Scan(&heap, &index); err != nil {
		b.Fatal(err)
	}
	appendTo := func(s *postgres.Store, name string) func(b *testing.B) {
		return func(b *testing.B) {
			before := backendsCPU(b, app+name)
			storetest.BenchmarkAppend(b, s, 1000)
			// After the appends: the benchmark's loop clears the metrics reported before it.
			if spent := serverCPUSince(b, app+name, before); spent > 0 {
				b.ReportMetric(float64(spent.Microseconds())/float64(b.N*1000), "server-µs/event")
			}
		}
	}
	for try := range 3 {
		b.Run(fmt.Sprintf("fingerprints=0/try=%d", try), appendTo(empty, "-empty"))
		b.Run(fmt.Sprintf("fingerprints=%d/try=%d", n, try), func(b *testing.B) {
			appendTo(full, "-full")(b)
			b.ReportMetric(float64(heap)/float64(n), "heap-B/fingerprint")
			b.ReportMetric(float64(index)/float64(n), "index-B/fingerprint")
		})
	}
}

// BenchmarkAppendDuringExpiry measures the latency of appends (batches of 100, one writer)
// while expiry works: nothing (the baseline), dropping ten partitions that hold the expired
// events, or deleting the same number of events in chunks of uts.ExpiryChunk from a
// partition that cannot be dropped. It reports the appends' p50, p99 and max, and how long
// expiry took. Run it with -benchtime=1x: each run is one expiry.
func BenchmarkAppendDuringExpiry(b *testing.B) {
	rows := retentionRows(b, 1_000_000)
	for _, mode := range []string{"none", "drop", "chunks"} {
		b.Run("expiry="+mode, func(b *testing.B) {
			u := testenv.PostgresSchema(b)
			s, err := postgres.Open(b.Context(), u, postgres.WithPartitionWidth(time.Hour))
			if err != nil {
				b.Fatalf("Open: %v", err)
			}
			defer s.Close()
			pool := benchPool(b, u)
			// Only the prepared events expire: the appends' own must not feed the expiry
			// (the drop needs every topic to expire; the appends' are an hour from it).
			r := uts.Retention{Events: time.Hour}
			now := time.Now()
			switch mode {
			case "drop":
				// Ten hourly partitions two days back, filled alike.
				for h := range 10 {
					name := fmt.Sprintf("events_old%02d", h)
					if _, err := pool.Exec(b.Context(), `CREATE TABLE `+name+` (LIKE events)`); err != nil {
						b.Fatal(err)
					}
					if _, err := pool.Exec(b.Context(), fmt.Sprintf(`ALTER TABLE events ATTACH PARTITION %s
						FOR VALUES FROM (date_trunc('hour', now()) - interval '48 hours' + interval '%d hours')
						TO (date_trunc('hour', now()) - interval '48 hours' + interval '%d hours')`, name, h, h+1)); err != nil {
						b.Fatal(err)
					}
				}
				fillEvents(b, pool, rows, `date_trunc('hour', now()) - interval '48 hours' + (g % 10) * interval '1 hour'`)
			case "chunks":
				// In the partition of the present, which is never dropped: two hours ahead, an
				// hour's retention expires them.
				fillEvents(b, pool, rows, `now()`)
				now = now.Add(2 * time.Hour)
				r = uts.Retention{Topics: map[string]time.Duration{"bench.old": time.Hour}}
			}
			done := make(chan time.Duration, 1)
			if mode == "none" {
				done <- 0
			} else {
				go func() {
					start := time.Now()
					defer func() { done <- time.Since(start) }()
					for range 10_000 {
						e, err := s.Expire(context.Background(), r, now, uts.ExpiryChunk)
						if err != nil {
							b.Error(err)
							return
						}
						if !e.More {
							return
						}
					}
				}()
			}
			events := benchEvents(100)
			var latencies []time.Duration
			var expiry time.Duration
			b.ResetTimer()
		appending:
			for i := 0; i < 100_000; i++ {
				for j := range events {
					events[j].EventID = fmt.Sprintf("d-%d-%d", i, j)
				}
				start := time.Now()
				if _, err := s.Append(b.Context(), events); err != nil {
					b.Fatal(err)
				}
				latencies = append(latencies, time.Since(start))
				select {
				case expiry = <-done:
					if len(latencies) >= 200 {
						break appending
					}
					done <- expiry // not enough appends yet for a p99: go on
				default:
				}
			}
			b.StopTimer()
			slices.Sort(latencies)
			at := func(q float64) float64 {
				return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(at(0.5), "p50-ms")
			b.ReportMetric(at(0.99), "p99-ms")
			b.ReportMetric(at(1), "max-ms")
			b.ReportMetric(float64(len(latencies)), "appends")
			b.ReportMetric(expiry.Seconds(), "expiry-s")
		})
	}
}

// fillEvents inserts rows events of the topic bench.old, processed at the SQL expression
// processedAt of g (1 to rows), with their counters, as appends would have left them: a
// transaction per 1000 events, as batches of 1000 have.
func fillEvents(b *testing.B, pool *pgxpool.Pool, rows int, processedAt string) {
	b.Helper()
	start := time.Now()
	inChunks(b, rows, func(from, to int) error {
		_, err := pool.Exec(b.Context(), `INSERT INTO events (seq, topic, event_id, ts, ts_nanos, source, payload, content_hash, processed_at)
			SELECT nextval('events_seq_seq'), 'bench.old', 'old-' || g, now(), 0, 'bench',
			       '{"amount_cents":129900,"currency":"EUR","customer":"c-88213","items":[{"qty":1,"sku":"KB-01"},{"qty":2,"sku":"MS-07"}],"note":"café"}',
			       sha256(g::text::bytea), `+processedAt+`
			FROM generate_series($1::int, $2::int) g`, from, to)
		return err
	})
	if _, err := pool.Exec(b.Context(), `INSERT INTO topic_counters (topic, shard, unique_count, duplicates, conflicts, last_event_at)
		VALUES ('bench.old', 0, $1, 0, 0, now())`, rows); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(b.Context(), `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events built in %v", rows, time.Since(start).Round(time.Second))
}

// inChunks calls insert for the rows 1 to n, 1000 at a time: each statement is a short
// transaction, as the shared server's other users need (a transaction in flight holds back
// every feed of the database, see feed_horizon).
func inChunks(b *testing.B, n int, insert func(from, to int) error) {
	b.Helper()
	const chunk = 1000
	for from := 1; from <= n; from += chunk {
		if err := insert(from, min(from+chunk-1, n)); err != nil {
			b.Fatalf("insert rows %d to %d: %v", from, min(from+chunk-1, n), err)
		}
	}
}

func benchPool(b *testing.B, u string) *pgxpool.Pool {
	b.Helper()
	pool, err := pgxpool.New(b.Context(), u)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// BenchmarkMigrateToRetention times migration 0006 on a schema at version 5 that holds
// UTS_BENCH_RETENTION_ROWS events (default a million): the old table becomes a partition,
// two of its indexes are built again, and a fingerprint is filled in for every event, in
// the one transaction of Open. Run it with -benchtime 1x.
func BenchmarkMigrateToRetention(b *testing.B) {
	n := retentionRows(b, 1_000_000)
	for range b.N {
		b.StopTimer()
		u := testenv.PostgresSchema(b)
		if err := postgres.MigrateTo(b.Context(), u, 5); err != nil {
			b.Fatalf("migrate to version 5: %v", err)
		}
		fillEvents(b, benchPool(b, u), n, "now() - interval '1 hour'")
		b.StartTimer()
		start := time.Now()
		s, err := postgres.Open(b.Context(), u)
		if err != nil {
			b.Fatalf("Open (migrating): %v", err)
		}
		took := time.Since(start)
		b.StopTimer()
		s.Close()
		b.ReportMetric(took.Seconds(), "s/migration")
		b.ReportMetric(float64(n)/took.Seconds(), "events/s")
		b.Logf("migrated %d events in %v", n, took.Round(time.Millisecond))
	}
}
