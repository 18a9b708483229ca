package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/storetest"
)

// TestReplicasExpireTogether runs Expire from three replicas of one store at once, while one
// of them appends: every replica runs the expiry loop, and each event must be deleted and
// counted once, whoever deletes it, with every identity kept.
func TestReplicasExpireTogether(t *testing.T) {
	t.Parallel()
	first, u := openStore(t)
	replicas := []*postgres.Store{first}
	for range 2 {
		s, err := postgres.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		replicas = append(replicas, s)
	}
	const batches, batch = 40, 50
	var all []uts.Event
	for b := range batches {
		for i := range batch {
			all = append(all, uts.Event{Topic: fmt.Sprintf("t%d", i%3), EventID: fmt.Sprintf("b%d-%d", b, i),
				Timestamp: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), Source: "replicas", Payload: []byte(`{}`)})
		}
	}
	r := uts.Retention{Events: time.Hour}
	done := make(chan struct{})
	errs := make(chan error, len(replicas)+1)
	var wg sync.WaitGroup
	for _, s := range replicas {
		wg.Go(func() {
			for range 2000 {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.Expire(t.Context(), r, time.Now().Add(2*time.Hour), 20); err != nil {
					errs <- fmt.Errorf("expire: %w", err)
					return
				}
			}
		})
	}
	for b := range batches {
		if _, err := first.Append(t.Context(), all[b*batch:(b+1)*batch]); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	storetest.ExpireAll(t, first, r, time.Now().Add(2*time.Hour), 1000) // what the racing rounds left
	st, err := replicas[2].Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.UniqueProcessed != int64(len(all)) || st.Expired != int64(len(all)) || st.Stored != 0 {
		t.Fatalf("unique %d, expired %d, stored %d; want %d, %d, 0: each event counted once", st.UniqueProcessed, st.Expired, st.Stored, len(all), len(all))
	}
	for _, ts := range st.Topics {
		if ts.Expired != ts.Unique {
			t.Fatalf("topic %+v: expired != unique", ts)
		}
	}
	outcomes, err := replicas[1].Append(t.Context(), all)
	if err != nil {
		t.Fatal(err)
	}
	if got := uts.TallyOf(outcomes); got.Unique != 0 {
		t.Fatalf("%d expired events stored again", got.Unique)
	}
}

// TestStatsWhileEventsAreLocked: the counters do not read the events, and the size on disk
// settles for the catalog's estimate when a table is locked, so /stats, /metrics and a
// shutdown's last word do not wait on a lock held by a migration or a stuck transaction.
func TestStatsWhileEventsAreLocked(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	if _, err := s.Append(t.Context(), []uts.Event{{Topic: "t", EventID: "1", Timestamp: time.Now().UTC(), Source: "s", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	release := testenv.LockTable(t, u, "events", "ACCESS EXCLUSIVE")
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats while the events are locked: %v", err)
	}
	if st.UniqueProcessed != 1 || st.Stored != 1 {
		t.Fatalf("stats %+v, want the one event", st.Counters)
	}
}

// TestFingerprintsWaitForAnotherReplicasChunk: a replica whose chunk finds the events it read
// deleted meanwhile by another replica's chunk, still in flight, must not take the topic for
// done and go on to the fingerprints: the other replica may stop at its limit with expired
// events left, and a fingerprint deleted before its event lets a duplicate of it in again.
func TestFingerprintsWaitForAnotherReplicasChunk(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	conn := connect(t, u)
	var batch []uts.Event
	for i := range 5 {
		batch = append(batch, event("b", fmt.Sprint(i), "x"))
	}
	if _, err := s.Append(t.Context(), batch); err != nil {
		t.Fatalf("Append: %v", err)
	}
	// The first three fingerprints move to the end of the table, so that a scan of it
	// reaches the last two events' first.
	if _, err := conn.Exec(t.Context(), `WITH moved AS (DELETE FROM fingerprints
		WHERE key IN (fingerprint_key('b', '0'), fingerprint_key('b', '1'), fingerprint_key('b', '2')) RETURNING *)
		INSERT INTO fingerprints SELECT * FROM moved`); err != nil {
		t.Fatal(err)
	}

	// The other replica's chunk: the first three events, deleted and not yet committed.
	other, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(context.Background())
	var xid string
	if err := other.QueryRow(t.Context(), `WITH d AS (DELETE FROM events WHERE topic = 'b' AND event_id IN ('0', '1', '2') RETURNING 1)
		SELECT pg_current_xact_id()::text FROM d LIMIT 1`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	r := uts.Retention{Events: time.Hour, Fingerprints: time.Hour}
	done := make(chan error, 1)
	go func() {
		_, err := s.Expire(t.Context(), r, time.Now().Add(2*time.Hour), 3)
		done <- err
	}()
	waitForLockWaiter(t, t.Context(), conn, xid)
	if err := other.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Expire: %v", err)
	}

	outcomes, err := s.Append(t.Context(), batch[3:])
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	var rows int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE event_id IN ('3', '4')`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(outcomes) != "[duplicate duplicate]" || rows > 2 {
		t.Errorf("duplicates of events still stored: %v, %d rows of them; want duplicates, 2 rows", outcomes, rows)
	}
}
