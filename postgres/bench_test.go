package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/storetest"
)

func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s, _ := openStore(b)
			storetest.BenchmarkAppend(b, s, batch)
		})
	}
}

func BenchmarkAppendDelivered(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s, _ := openStore(b)
			storetest.BenchmarkAppendDelivered(b, s, batch)
		})
	}
}

// BenchmarkAppendParallel is BenchmarkAppend with several writers, as a consumer with
// several workers (or several replicas) would drive the store.
func BenchmarkAppendParallel(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s, _ := openStore(b)
			var seq atomic.Int64
			b.SetParallelism(2) // 2×GOMAXPROCS writers, within the pool's connections
			b.RunParallel(func(pb *testing.PB) {
				events := benchEvents(batch)
				for pb.Next() {
					for i := range events {
						events[i].EventID = "p-" + strconv.FormatInt(seq.Add(1), 10)
					}
					if _, err := s.Append(b.Context(), events); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(seq.Load())/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func benchEvents(n int) []uts.Event {
	topics := []string{"bench.orders", "bench.payments", "bench.shipments", "bench.refunds"}
	events := make([]uts.Event, n)
	for i := range events {
		events[i] = uts.Event{
			Topic:     topics[i%len(topics)],
			Timestamp: time.Now().UTC(),
			Source:    "postgres-bench",
			Payload:   []byte(`{"amount_cents":129900,"currency":"EUR","customer":"c-88213","items":[{"qty":1,"sku":"KB-01"},{"qty":2,"sku":"MS-07"}],"note":"café ☕"}`),
		}
	}
	return events
}

// BenchmarkCeilingPgx is the ceiling for BenchmarkAppend: pgx inserting the same rows into a
// bare table (a serial key, no unique key, no counters, no outcomes) by each of its ways of
// inserting many rows: COPY, one unnest INSERT, and a pgx.Batch of one INSERT per row sent
// in one round trip. The gap to BenchmarkAppend is the price of deduplication and counting.
func BenchmarkCeilingPgx(b *testing.B) {
	for _, method := range []string{"copy", "unnest", "batch"} {
		for _, batch := range []int{100, 1000} {
			b.Run(method+"/batch="+strconv.Itoa(batch), func(b *testing.B) {
				pool, err := pgxpool.New(b.Context(), testenv.PostgresSchema(b))
				if err != nil {
					b.Fatal(err)
				}
				defer pool.Close()
				if _, err := pool.Exec(b.Context(), `CREATE TABLE bare (
					seq bigserial PRIMARY KEY, topic text NOT NULL, event_id text NOT NULL,
					ts timestamptz NOT NULL, ts_nanos smallint NOT NULL, source text NOT NULL,
					payload text NOT NULL, content_hash bytea NOT NULL,
					processed_at timestamptz NOT NULL DEFAULT now())`); err != nil {
					b.Fatal(err)
				}
				events := benchEvents(batch)
				insert := map[string]func(context.Context, *pgxpool.Pool, []uts.Event) error{
					"copy": copyBare, "unnest": unnestBare, "batch": batchBare,
				}[method]
				seq := 0
				for b.Loop() {
					for i := range events {
						seq++
						events[i].EventID = "c-" + strconv.Itoa(seq)
					}
					if err := insert(b.Context(), pool, events); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

var bareColumns = []string{"topic", "event_id", "ts", "ts_nanos", "source", "payload", "content_hash"}

// bareRow is what Append sends per event, hash included, so that both pay for computing it.
func bareRow(e uts.Event) []any {
	return []any{e.Topic, e.EventID, e.Timestamp, int16(0), e.Source, string(e.Payload), []byte(e.ContentHash())}
}

func copyBare(ctx context.Context, pool *pgxpool.Pool, events []uts.Event) error {
	rows := make([][]any, len(events))
	for i, e := range events {
		rows[i] = bareRow(e)
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"bare"}, bareColumns, pgx.CopyFromRows(rows))
	return err
}

func unnestBare(ctx context.Context, pool *pgxpool.Pool, events []uts.Event) error {
	cols := make([][]any, len(bareColumns))
	for _, e := range events {
		for c, v := range bareRow(e) {
			cols[c] = append(cols[c], v)
		}
	}
	_, err := pool.Exec(ctx, `INSERT INTO bare (topic, event_id, ts, ts_nanos, source, payload, content_hash)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int2[], $5::text[], $6::text[], $7::bytea[])`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6])
	return err
}

// BenchmarkAppendServerCPU is BenchmarkAppend at batch 1000 with ids shaped like the
// publisher's (seed-ordinal, zero-padded, on 5 topics), measured by what it costs the
// PostgreSQL server: the CPU time (utime+stime in /proc) of the store's backends, found by
// their application_name. CPU time is steadier than wall time on a shared machine. It needs
// the server on this host; elsewhere it reports no server-µs/event.
func BenchmarkAppendServerCPU(b *testing.B) {
	for _, delivered := range []bool{false, true} {
		b.Run("delivered="+strconv.FormatBool(delivered), func(b *testing.B) {
			app := "uts-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			s, err := postgres.Open(b.Context(), testenv.PostgresSchema(b)+"&application_name="+app)
			if err != nil {
				b.Fatalf("Open: %v", err)
			}
			defer s.Close()
			backendCPU := func() map[int]time.Duration { return backendsCPU(b, app) }

			const batch = 1000
			topics := []string{"orders", "payments", "shipments", "refunds", "signups"}
			rng := rand.New(rand.NewPCG(1, 2))
			seed, ordinal := rng.Uint64(), 0
			events := benchEvents(batch)
			next := func() {
				for i := range events {
					ordinal++
					events[i].Topic = topics[rng.IntN(len(topics))]
					events[i].EventID = fmt.Sprintf("%016x-%010d", seed, ordinal)
					if delivered {
						events[i].Delivery = fmt.Sprintf("%d-%d", seed, ordinal)
					}
				}
			}
			for range 10 { // past the switch to the generic plan
				next()
				if _, err := s.Append(b.Context(), events); err != nil {
					b.Fatalf("Append: %v", err)
				}
			}
			before, n := backendCPU(), 0
			for b.Loop() {
				b.StopTimer()
				next()
				b.StartTimer()
				if _, err := s.Append(b.Context(), events); err != nil {
					b.Fatalf("Append: %v", err)
				}
				n += batch
			}
			spent := serverCPUSince(b, app, before)
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			if spent > 0 {
				b.ReportMetric(float64(spent.Microseconds())/float64(n), "server-µs/event")
			}
		})
	}
}

// backendsCPU returns the CPU time of each server backend whose application_name is app,
// read from /proc (see processCPU).
func backendsCPU(b *testing.B, app string) map[int]time.Duration {
	b.Helper()
	admin, err := pgx.Connect(b.Context(), testenv.PostgresURL(b))
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	defer admin.Close(context.Background())
	rows, err := admin.Query(b.Context(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	if err != nil {
		b.Fatalf("pg_stat_activity: %v", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatalf("pg_stat_activity: %v", err)
	}
	cpu := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if t, ok := processCPU(int(pid)); ok {
			cpu[int(pid)] = t
		}
	}
	return cpu
}

// serverCPUSince is the CPU time the backends of app spent since before was read.
func serverCPUSince(b *testing.B, app string, before map[int]time.Duration) time.Duration {
	var spent time.Duration
	for pid, t := range backendsCPU(b, app) {
		spent += t - before[pid]
	}
	return spent
}

// processCPU returns a process's CPU time (user and system) from /proc, in clock ticks of
// 10 ms (USER_HZ is 100 on every Linux that matters here).
func processCPU(pid int) (time.Duration, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: the fields follow its end.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

func batchBare(ctx context.Context, pool *pgxpool.Pool, events []uts.Event) error {
	var batch pgx.Batch
	for _, e := range events {
		batch.Queue(`INSERT INTO bare (topic, event_id, ts, ts_nanos, source, payload, content_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, bareRow(e)...)
	}
	return pool.SendBatch(ctx, &batch).Close()
}
