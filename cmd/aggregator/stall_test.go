package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
)

// A stalled PostgreSQL answers, so its pings pass, but whatever touches the events table
// waits: here the table is locked in SHARE MODE from a connection of the test's own, on the
// test's own schema, and the aggregator's sessions have a statement_timeout of 200 ms, as in
// the incident of issue #9 (a 75 s lock dead-lettered 886 acknowledged events). These tests
// run the aggregator in this process through run(), so they take seconds.

// stallTimeout is the statement_timeout of the aggregator's sessions.
const stallTimeout = "200"

// startStalledRun starts the aggregator on a schema of the test's own with stallTimeout and
// the extra arguments, and returns its URL and the schema's URL (for LockTable).
func startStalledRun(t *testing.T, args ...string) (url, db string) {
	t.Helper()
	db = testenv.PostgresSchema(t)
	// The schema is migrated first, without the timeout: these tests are about stalls while
	// serving, and under the whole suite's load a migration's statements can take longer
	// than 200 ms, which failed the aggregator's start (CI, 2026-11-30).
	store, err := postgres.Open(context.Background(), db)
	if err != nil {
		t.Fatalf("migrating the schema: %v", err)
	}
	store.Close()
	url, stop := startRun(t, append([]string{"-db", testenv.WithParam(t, db, "statement_timeout", stallTimeout)}, args...)...)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("clean shutdown: %v", err)
		}
	})
	return url, db
}

// stallBatch is size fresh events of batch b, and, when repeat is not nil, repeat again: a
// duplicate of an earlier batch travels with the new ones.
func stallBatch(b, size int, repeat *testEvent) []testEvent {
	events := make([]testEvent, 0, size+1)
	for i := range size {
		events = append(events, newTestEvent(fmt.Sprintf("stall-%d", b%2), fmt.Sprintf("b%d-%d", b, i)))
	}
	if repeat != nil {
		events = append(events, *repeat)
	}
	return events
}

// wantReady waits for /readyz to answer want, and for a 503 to name the store.
func wantReady(t *testing.T, ctx context.Context, url string, want int, during string) {
	t.Helper()
	eventually(t, fmt.Sprintf("/readyz to answer %d %s", want, during), 10*time.Second, func() error {
		status, body, err := getStatus(ctx, url, "/readyz")
		if err == nil && (status != want || want != http.StatusOK && !strings.Contains(body, "the store timed out")) {
			err = fmt.Errorf("%d %s", status, body)
		}
		return err
	})
}

// TestStalledPostgresInProcess: while the store stalls, /publish answers 503 with
// Retry-After and "the store timed out" (it answered 500 "internal error"), and /readyz 503,
// though a ping of the store passes. Once the lock is gone every refused batch, sent again,
// is stored whole (the refused commit stored nothing), and the counters are exact.
func TestStalledPostgresInProcess(t *testing.T) {
	t.Parallel()
	url, db := startStalledRun(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}

	first := stallBatch(0, 20, nil)
	if a, err := postEvents(ctx, client, url, first); err != nil || a.Status != http.StatusOK {
		t.Fatalf("publish before the stall: %+v, %v; want 200", a, err)
	}
	answered := int64(len(first)) // events in batches answered 200
	keys := map[storedKey]bool{}
	for _, k := range keysOf(first) {
		keys[k] = true
	}

	release := testenv.LockTable(t, db, "events", "SHARE")
	var refused [][]testEvent
	for b := 1; b <= 3; b++ {
		batch := stallBatch(b, 20, &first[b])
		a, err := postEvents(ctx, client, url, batch)
		if err != nil || a.Status != http.StatusServiceUnavailable || a.RetryAfter == "" || !a.JSON || a.Error != "the store timed out" {
			t.Errorf("publish with the events table locked: %+v, %v; want 503 with Retry-After and the error \"the store timed out\"", a, err)
		}
		refused = append(refused, batch)
		for _, k := range keysOf(batch) {
			keys[k] = true
		}
	}
	wantReady(t, ctx, url, http.StatusServiceUnavailable, "with the events table locked")
	release()

	for _, batch := range refused {
		var a publishAnswer
		var err error
		// The publisher's retry; the first may still meet a commit that started under the lock.
		for try := 0; try < 50; try++ {
			if a, err = postEvents(ctx, client, url, batch); err == nil && a.Status == http.StatusOK {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || a.Status != http.StatusOK || a.Unique != len(batch)-1 || a.Duplicates != 1 {
			t.Fatalf("resend after the stall: %+v, %v; want 200, %d unique and the repeated key a duplicate: a refused batch stores nothing",
				a, err, len(batch)-1)
		}
		answered += int64(len(batch))
	}
	wantReady(t, ctx, url, http.StatusOK, "once the lock is gone")

	st := waitDrained(t, url)
	stored := allEvents(t, url)
	for k := range keys {
		if stored[k] != 1 {
			t.Errorf("%v stored %d times, want once", k, stored[k])
		}
	}
	want := counts{received: answered, unique: int64(len(keys)), duplicates: answered - int64(len(keys))}
	if got := countsOf(st); got != want || st.DeadLettered != 0 || len(stored) != len(keys) {
		t.Errorf("stats %+v, %d stored; want %+v and nothing dead-lettered", st, len(stored), want)
	}
}

// TestStalledPostgresWithRedis: publishing goes on (202: Redis has the events) while the
// store stalls for longer than -claim-idle × -max-deliveries; the consumers hold their
// entries and wait, since a stall says nothing about the events, and /readyz answers 503.
// Once the lock is gone every event answered 202 is stored once, none is dead-lettered, and
// the counters are exact.
func TestStalledPostgresWithRedis(t *testing.T) {
	t.Parallel()
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t, redisURL)
	rc := testenv.RedisClient(t, redisURL)
	const claimIdle, maxDeliveries = 300 * time.Millisecond, 2
	url, db := startStalledRun(t, "-broker", redisURL, "-redis-prefix", prefix,
		"-claim-idle", claimIdle.String(), "-max-deliveries", fmt.Sprint(maxDeliveries))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}

	var accepted int64
	keys := map[storedKey]bool{}
	publish := func(events []testEvent) {
		t.Helper()
		if a, err := postEvents(ctx, client, url, events); err != nil || a.Status != http.StatusAccepted {
			t.Fatalf("publish: %+v, %v; want 202: Redis takes the events whatever the store does", a, err)
		}
		accepted += int64(len(events))
		for _, k := range keysOf(events) {
			keys[k] = true
		}
	}
	first := stallBatch(0, 20, nil)
	publish(first)
	waitDrained(t, url)

	release := testenv.LockTable(t, db, "events", "SHARE")
	locked := time.Now()
	for b := 1; b <= 6; b++ {
		publish(stallBatch(b, 150, &first[b])) // two entries each: 100 events and the rest
	}
	// Nothing of those batches can be committed, yet /stats counts them from their 202 on
	// (it read the counters of the table the stall does not lock).
	if st, err := readStats(ctx, url); err != nil || st.Received != accepted || st.UniqueProcessed != int64(len(first)) {
		t.Errorf("/stats during the stall: %+v, %v; want received %d (every 202'd event), unique %d",
			st, err, accepted, len(first))
	}
	eventually(t, "the consumers to hold entries", 10*time.Second, func() error {
		if n, err := pendingOf(ctx, rc, prefix, ""); err != nil || n == 0 {
			return fmt.Errorf("%d pending, %v", n, err)
		}
		return nil
	})
	// Long enough for every entry to be claimed and delivered past -max-deliveries, were the
	// stall counted against them.
	time.Sleep(time.Until(locked.Add(4 * maxDeliveries * claimIdle)))
	if n, err := rc.XLen(ctx, prefix+"dead").Result(); err != nil || n != 0 {
		t.Errorf("%d entries dead-lettered during the stall (%v); a stall must not dead-letter", n, err)
	}
	wantReady(t, ctx, url, http.StatusServiceUnavailable, "with the events table locked")
	release()

	st := waitDrained(t, url)
	wantReady(t, ctx, url, http.StatusOK, "once the lock is gone")
	stored := allEvents(t, url)
	for k := range keys {
		if stored[k] != 1 {
			t.Errorf("%v, answered 202, stored %d times; want once", k, stored[k])
		}
	}
	want := counts{received: accepted, unique: int64(len(keys)), duplicates: accepted - int64(len(keys))}
	if got := countsOf(st); got != want || st.DeadLettered != 0 || len(stored) != len(keys) {
		t.Errorf("stats %+v, %d stored; want %+v and nothing dead-lettered", st, len(stored), want)
	}
	if n, err := rc.XLen(ctx, prefix+"dead").Result(); err != nil || n != 0 {
		t.Errorf("%d entries dead-lettered (%v); a stall must not dead-letter", n, err)
	}
}

// TestShutdownWithAReadStuckInAStalledStore: a plain GET /events waits on a table that another
// session holds locked, with no statement_timeout to end it. A shutdown must still finish: past
// -shutdown-timeout the server closes the connection, which cancels the read's query, and the
// store can close.
func TestShutdownWithAReadStuckInAStalledStore(t *testing.T) {
	t.Parallel()
	db := testenv.PostgresSchema(t)
	url, stop := startRun(t, "-db", db, "-shutdown-timeout", "1s")
	release := testenv.LockTable(t, db, "events", "ACCESS EXCLUSIVE")
	defer release()

	read := make(chan error, 1)
	go func() {
		resp, err := http.Get(url + "/events")
		if err == nil {
			resp.Body.Close()
		}
		read <- err
	}()
	time.Sleep(300 * time.Millisecond) // the read is now waiting for the lock
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the shutdown did not finish within 15 s while a read waited on the locked table")
	}
	<-read // answered or cut: either way it ended
}

// TestCommitTimeoutBoundsAStall: with no statement_timeout on the database, a locked table
// would hold every publish for as long as the lock. -commit-timeout answers them 503 "the
// store timed out" instead, and once the lock is gone the same batch is stored once.
func TestCommitTimeoutBoundsAStall(t *testing.T) {
	t.Parallel()
	db := testenv.PostgresSchema(t)
	url, stop := startRun(t, "-db", db, "-commit-timeout", "500ms")
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("clean shutdown: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}

	release := testenv.LockTable(t, db, "events", "SHARE")
	batch := stallBatch(0, 20, nil)
	started := time.Now()
	a, err := postEvents(ctx, client, url, batch)
	if err != nil {
		release()
		t.Fatalf("publish during the stall: %v", err)
	}
	took := time.Since(started)
	release()
	if a.Status != http.StatusServiceUnavailable || a.RetryAfter == "" || !strings.Contains(a.Error, "the store timed out") {
		t.Fatalf("publish during the stall: %d (Retry-After %q) %q after %v; want 503 with Retry-After, the store timed out", a.Status, a.RetryAfter, a.Error, took)
	}
	t.Logf("the stalled publish was answered after %v", took)

	eventually(t, "the batch to be stored once the lock is gone", 10*time.Second, func() error {
		a, err := postEvents(ctx, client, url, batch)
		if err == nil && a.Status != http.StatusOK {
			err = fmt.Errorf("%d: %s", a.Status, a.Error)
		}
		return err
	})
	s := waitDrained(t, url)
	if s.UniqueProcessed != int64(len(batch)) || s.Received != s.UniqueProcessed+s.DuplicateDropped {
		t.Errorf("stats %+v; want %d unique, and received = unique + duplicates", s, len(batch))
	}
}

// TestStoreTimeoutBoundsAStalledRead: with no statement_timeout on the database, a read of a
// table locked ACCESS EXCLUSIVE would wait for as long as the lock. -store-timeout answers it
// 503 "the store timed out" with Retry-After instead, and the same read succeeds once the lock
// is gone.
func TestStoreTimeoutBoundsAStalledRead(t *testing.T) {
	t.Parallel()
	db := testenv.PostgresSchema(t)
	url, stop := startRun(t, "-db", db, "-store-timeout", "500ms")
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("clean shutdown: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	release := testenv.LockTable(t, db, "events", "ACCESS EXCLUSIVE")
	started := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	took := time.Since(started)
	release()
	if err != nil {
		t.Fatalf("GET /events during the stall: %v after %v", err, took)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "the store timed out") {
		t.Fatalf("GET /events during the stall: %d (Retry-After %q) %s after %v; want 503 with Retry-After, the store timed out",
			resp.StatusCode, resp.Header.Get("Retry-After"), body, took)
	}
	t.Logf("the stalled read was answered after %v", took)
	eventually(t, "the read to succeed once the lock is gone", 10*time.Second, func() error {
		status, body, err := getStatus(ctx, url, "/events")
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("%d: %s", status, body)
		}
		return err
	})
}
