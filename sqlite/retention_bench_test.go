package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
	"github.com/uts-events/uts/storetest"
)

// The retention benchmarks of docs/benchmarks.md ("Retention — SQLite") take minutes and
// gigabytes: they run only with UTS_BENCH_RETENTION=1, never in go test ./... .
//
//	UTS_BENCH_RETENTION=1 UTS_BENCH_FINGERPRINTS_FILE=/tmp/fp10m.db go test -run TestBuildFingerprintsFile ./sqlite/
//	UTS_BENCH_RETENTION=1 UTS_BENCH_FINGERPRINTS_FILE=/tmp/fp10m.db go test -run '^$' -bench AppendAtFingerprints ./sqlite/
//	UTS_BENCH_RETENTION=1 go test -run TestSteadyStateDisk -v -timeout 30m ./sqlite/
//	UTS_BENCH_RETENTION=1 go test -run TestAppendLatencyUnderExpiry -v ./sqlite/
func skipUnlessRetentionBench(tb testing.TB) {
	if os.Getenv("UTS_BENCH_RETENTION") != "1" {
		tb.Skip("a retention benchmark: set UTS_BENCH_RETENTION=1 to run it")
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// TestBuildFingerprintsFile builds the file of UTS_BENCH_FINGERPRINTS_FILE: a store holding
// UTS_BENCH_FINGERPRINTS (default 10 million) fingerprints and no events, as one is after
// its events expired. The keys are random and go in in random order, a million a
// transaction, as Appends would put them: the B-tree's pages are as full as Appends leave
// them, and the bytes per fingerprint it reports are those of a real file.
func TestBuildFingerprintsFile(t *testing.T) {
	skipUnlessRetentionBench(t)
	path := os.Getenv("UTS_BENCH_FINGERPRINTS_FILE")
	if path == "" {
		t.Skip("set UTS_BENCH_FINGERPRINTS_FILE to the file to build")
	}
	n := envInt("UTS_BENCH_FINGERPRINTS", 10_000_000)
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=cache_size(-131072)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	minutes := time.Now().Unix() / 60
	const perTx = 1_000_000
	start := time.Now()
	for done := 0; done < n; done += perTx {
		rows := min(perTx, n-done)
		// random() >> 32 is a signed 32-bit content tag, as Append stores them.
		_, err := db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
			INSERT INTO fingerprints (key, content, minutes) SELECT randomblob(16), random() >> 32, ? FROM c`, rows, minutes)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	var pages, free, pageSize int64
	if err := db.QueryRow(`SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count),
		(SELECT page_size FROM pragma_page_size)`).Scan(&pages, &free, &pageSize); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d fingerprints in %s: file %d bytes, %d pages in use of %d bytes: %.1f bytes a fingerprint",
		n, time.Since(start).Round(time.Second), fi.Size(), pages-free, pageSize, float64((pages-free)*pageSize)/float64(n))
}

// TestFingerprintBytesByAppend measures the bytes a fingerprint takes when Appends put it in,
// events expired: UTS_BENCH_FINGERPRINT_EVENTS (default a million) events are appended in
// batches of 1000, all expired, and the pages left in use are divided by their number.
func TestFingerprintBytesByAppend(t *testing.T) {
	skipUnlessRetentionBench(t)
	n := envInt("UTS_BENCH_FINGERPRINT_EVENTS", 1_000_000)
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path)
	defer s.Close()
	empty := pagesInUse(t, path)
	batch := make([]uts.Event, 1000)
	for done := 0; done < n; done += len(batch) {
		for i := range batch {
			batch[i] = event(fmt.Sprintf("%x-%d", time.Now().UnixNano(), done+i))
		}
		if _, err := s.Append(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	for range 10_000 {
		e, err := s.Expire(t.Context(), uts.Retention{Events: time.Hour}, time.Now().Add(2*time.Hour), uts.ExpiryChunk)
		if err != nil {
			t.Fatal(err)
		}
		if !e.More {
			break
		}
	}
	used := pagesInUse(t, path) - empty
	t.Logf("%d fingerprints by Append, events expired: %d bytes in use, %.1f bytes a fingerprint", n, used, float64(used)/float64(n))
}

// pagesInUse is the bytes of the file's pages that are not free, the WAL's included.
func pagesInUse(t *testing.T, path string) int64 {
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages, free, pageSize int64
	if err := db.QueryRow(`SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count),
		(SELECT page_size FROM pragma_page_size)`).Scan(&pages, &free, &pageSize); err != nil {
		t.Fatal(err)
	}
	return (pages - free) * pageSize
}

// BenchmarkAppendAtFingerprints is storetest.BenchmarkAppend on an empty store and on the file
// of UTS_BENCH_FINGERPRINTS_FILE (TestBuildFingerprintsFile), which grows by what it appends.
func BenchmarkAppendAtFingerprints(b *testing.B) {
	skipUnlessRetentionBench(b)
	stores := map[string]string{"fingerprints=0": filepath.Join(b.TempDir(), "events.db")}
	if path := os.Getenv("UTS_BENCH_FINGERPRINTS_FILE"); path != "" {
		stores["fingerprints=file"] = path
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range stores {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, batch := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				s, err := sqlite.Open(b.Context(), stores[name])
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				storetest.BenchmarkAppend(b, s, batch)
			})
		}
	}
}

// TestSteadyStateDisk appends at a constant rate under a short retention, expiring every
// second as uts.RunExpiry does, and logs the size on disk every 10 seconds: it must level off
// once the first events expire. Two files side by side: one reusing freed pages from
// SQLite's freelist (the store's default), one with auto_vacuum=INCREMENTAL and an
// incremental_vacuum after every expiry, which gives freed pages back to the file system.
func TestSteadyStateDisk(t *testing.T) {
	skipUnlessRetentionBench(t)
	duration := time.Duration(envInt("UTS_BENCH_SECONDS", 300)) * time.Second
	rate := envInt("UTS_BENCH_RATE", 2000) // events a second
	r := uts.Retention{Events: 30 * time.Second, Fingerprints: 2 * time.Minute}
	for _, vacuum := range []string{"freelist", "incremental"} {
		t.Run(vacuum, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "events.db")
			var db *sql.DB
			if vacuum == "incremental" {
				// auto_vacuum takes effect only when set before the first table is created.
				var err error
				db, err = sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)")
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec(`PRAGMA page_size = 4096; PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL`); err != nil {
					t.Fatal(err)
				}
			}
			s := open(t, path)
			defer s.Close()
			ctx, cancel := context.WithTimeout(t.Context(), duration)
			defer cancel()
			var wg sync.WaitGroup
			wg.Go(func() { // the expirer
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					for range 100 {
						e, err := s.Expire(ctx, r, time.Now(), uts.ExpiryChunk)
						if err != nil || !e.More {
							break
						}
					}
					if db != nil {
						if _, err := db.ExecContext(ctx, `PRAGMA incremental_vacuum`); err != nil && ctx.Err() == nil {
							t.Errorf("incremental_vacuum: %v", err)
						}
					}
				}
			})
			const batch = 100
			every := time.Second * batch / time.Duration(rate)
			wg.Go(func() { // the appender
				tick := time.NewTicker(every)
				defer tick.Stop()
				events := make([]uts.Event, batch)
				for n := 0; ; n += batch {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					for i := range events {
						events[i] = event(strconv.Itoa(n + i))
						events[i].Topic = []string{"a", "b", "c", "d"}[i%4]
						events[i].Payload = []byte(`{"amount_cents":129900,"currency":"EUR","customer":"c-88213","items":[{"qty":1,"sku":"KB-01"},{"qty":2,"sku":"MS-07"}]}`)
					}
					if _, err := s.Append(ctx, events); err != nil && ctx.Err() == nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			})
			start := time.Now()
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
				}
				st, err := s.Stats(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				db, wal := fileSize(path), fileSize(path+"-wal")
				t.Logf("%s t=%3.0fs disk %6.2f MB (db %6.2f + wal %5.2f) stored %7d expired %8d unique %8d",
					vacuum, time.Since(start).Seconds(), mb(st.DiskBytes), mb(db), mb(wal), st.Stored, st.Expired, st.UniqueProcessed)
			}
			wg.Wait()
		})
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// TestAppendLatencyUnderExpiry times Appends of 100 events without expiry, then while Expire
// deletes a backlog of a million events in chunks (as uts.RunExpiry does, calling again at
// once while More), then without again, and logs the percentiles of each phase.
func TestAppendLatencyUnderExpiry(t *testing.T) {
	skipUnlessRetentionBench(t)
	backlog := envInt("UTS_BENCH_BACKLOG", 1_000_000)
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	defer s.Close()
	fill := make([]uts.Event, 1000)
	for done := 0; done < backlog; done += len(fill) {
		for i := range fill {
			fill[i] = event(fmt.Sprintf("old-%d", done+i))
			fill[i].Topic = []string{"a", "b", "c", "d"}[i%4]
		}
		if _, err := s.Append(t.Context(), fill); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	// Expire as of an hour after now with a retention of an hour: the backlog expires, and
	// none of what the phases append.
	cutoff := time.Now()
	r := uts.Retention{Events: time.Hour}
	n := 0
	phase := func(name string, until func() bool) {
		var lat []time.Duration
		events := make([]uts.Event, 100)
		for len(lat) < 3000 && !until() {
			for i := range events {
				n++
				events[i] = event(fmt.Sprintf("new-%d", n))
				events[i].Topic = []string{"a", "b", "c", "d"}[i%4]
			}
			start := time.Now()
			if _, err := s.Append(t.Context(), events); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))].Round(10 * time.Microsecond) }
		t.Logf("%-14s %5d appends of 100: p50 %v p90 %v p99 %v max %v", name, len(lat), p(0.5), p(0.9), p(0.99), lat[len(lat)-1])
	}
	never := func() bool { return false }
	phase("without expiry", never)
	var expired int64
	done := make(chan struct{})
	start := time.Now()
	var took time.Duration
	go func() {
		defer close(done)
		for range 100_000 {
			e, err := s.Expire(t.Context(), r, cutoff.Add(time.Hour), uts.ExpiryChunk)
			if err != nil {
				t.Error(err)
				return
			}
			expired += e.Events
			if !e.More {
				break
			}
		}
		took = time.Since(start)
	}()
	phase("during expiry", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	<-done
	t.Logf("expired %d events in %v: %.0f events/s", expired, took.Round(time.Millisecond), float64(expired)/took.Seconds())
	phase("without expiry", never)
}
