package postgres_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
)

// TestFingerprintFunctionsMatchGo: the migration backfills fingerprints in SQL, which must
// compute the very bytes uts.KeyFingerprint and uts.ContentTag do, or the events stored
// before it would be stored again. Topic lengths around the varint's byte boundaries and
// multi-byte text included.
func TestFingerprintFunctionsMatchGo(t *testing.T) {
	t.Parallel()
	_, u := openStore(t)
	conn := connect(t, u)
	for _, key := range []uts.Key{
		{Topic: "t", EventID: "1"},
		{Topic: "orders", EventID: "café ☕ 🚀"},
		{Topic: strings.Repeat("x", 127), EventID: "a"},
		{Topic: strings.Repeat("x", 128), EventID: "a"},
		{Topic: strings.Repeat("é", 200), EventID: ""},
		{Topic: strings.Repeat("y", 20000), EventID: "z"},
	} {
		var got string
		if err := conn.QueryRow(t.Context(), `SELECT replace(fingerprint_key($1, $2)::text, '-', '')`,
			key.Topic, key.EventID).Scan(&got); err != nil {
			t.Fatalf("fingerprint_key: %v", err)
		}
		want := uts.KeyFingerprint(key)
		if got != hex.EncodeToString(want[:]) {
			t.Errorf("fingerprint_key(%.20q…, %q) = %s, want %x", key.Topic, key.EventID, got, want)
		}
	}
	for _, e := range []uts.Event{event("t", "1", "a"), event("t", "1", "b"), event("t", "2", "c"), event("u", "9", "zz")} {
		var got int32
		if err := conn.QueryRow(t.Context(), `SELECT content_tag(decode($1, 'hex'))`, e.ContentHash()).Scan(&got); err != nil {
			t.Fatalf("content_tag: %v", err)
		}
		if want := uts.ContentTag(e.ContentHash()); uint32(got) != want {
			t.Errorf("content_tag(%s) = %08x, want %08x", e.ContentHash(), uint32(got), want)
		}
	}
}

// TestRetentionMigrationKeepsEvents migrates a schema at version 5 that holds events and
// counters: the events become the first partition of the partitioned table, readable in the
// same order with the same cursors; their keys are still duplicates (retries) or conflicts
// (changed) through the backfilled fingerprints; the counters go on; and they expire.
func TestRetentionMigrationKeepsEvents(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	if err := postgres.MigrateTo(t.Context(), u, 5); err != nil {
		t.Fatalf("migrate to version 5: %v", err)
	}
	old := []uts.Event{event("a", "1", "x"), event("b", "2", "x"), event("a", "3", "x")}
	conn := connect(t, u)
	type cursor struct {
		Tx  string
		Seq int64
	}
	var before []cursor
	for _, e := range old {
		var c cursor
		if err := conn.QueryRow(t.Context(), `INSERT INTO events (topic, event_id, ts, ts_nanos, source, payload, content_hash)
			VALUES ($1, $2, $3, $4, $5, $6, decode($7, 'hex')) RETURNING xid::text, seq`,
			e.Topic, e.EventID, e.Timestamp.Truncate(time.Microsecond), int16(e.Timestamp.Nanosecond()%1000),
			e.Source, string(e.Payload), e.ContentHash()).Scan(&c.Tx, &c.Seq); err != nil {
			t.Fatalf("insert an event at version 5: %v", err)
		}
		before = append(before, c)
	}
	if _, err := conn.Exec(t.Context(), `INSERT INTO topic_counters (topic, shard, unique_count, duplicates, conflicts, last_event_at)
		VALUES ('a', 0, 2, 1, 0, now()), ('b', 3, 1, 0, 0, now())`); err != nil {
		t.Fatalf("insert counters at version 5: %v", err)
	}

	s, err := postgres.Open(t.Context(), u)
	if err != nil {
		t.Fatalf("Open (migrating): %v", err)
	}
	defer s.Close()

	// The old table is the first partition, up to the next day; a default partition and the
	// partitions ahead follow.
	var legacyBound string
	if err := conn.QueryRow(t.Context(), `SELECT pg_get_expr(relpartbound, oid) FROM pg_class
		WHERE relname = 'events_legacy' AND relnamespace = current_schema()::regnamespace`).Scan(&legacyBound); err != nil {
		t.Fatalf("the old table is not a partition: %v", err)
	}
	if !strings.HasPrefix(legacyBound, "FOR VALUES FROM (MINVALUE) TO (") {
		t.Errorf("the old table's bound = %s", legacyBound)
	}
	var partitions int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass`).Scan(&partitions); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	if partitions < 2+3 {
		t.Errorf("%d partitions; want the old table, the default and three ahead", partitions)
	}

	all := readEvents(t, s, uts.Cursor{})
	if len(all) != len(old) {
		t.Fatalf("after the migration the feed holds %d events, want %d", len(all), len(old))
	}
	for i, e := range all {
		if e.Key() != old[i].Key() || string(e.Payload) != string(old[i].Payload) || e.ContentHash() != old[i].ContentHash() {
			t.Errorf("event %d = %v %s, want %v %s", i, e.Key(), e.Payload, old[i].Key(), old[i].Payload)
		}
		if got := fmt.Sprint(e.Cursor.Tx); got != before[i].Tx || e.Cursor.Seq != before[i].Seq {
			t.Errorf("event %d: cursor %s, want %s-%d", i, e.Cursor, before[i].Tx, before[i].Seq)
		}
	}
	if rest := readEvents(t, s, all[0].Cursor); len(rest) != 2 || rest[0].Key() != old[1].Key() {
		t.Errorf("after the first old cursor: %d events, want the other two", len(rest))
	}

	changed := event("a", "1", "changed")
	fresh := event("b", "new", "x")
	outcomes, err := s.Append(t.Context(), []uts.Event{old[0], changed, old[1], fresh})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got, want := fmt.Sprint(outcomes), "[duplicate conflict duplicate new]"; got != want {
		t.Errorf("outcomes of old keys = %s, want %s", got, want)
	}
	if page := readEvents(t, s, all[len(all)-1].Cursor); len(page) != 1 || page[0].Key() != fresh.Key() {
		t.Errorf("after the last old cursor: %d events, want the new one", len(page))
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := uts.Counters{Received: 4 + 4, UniqueProcessed: 4, DuplicateDropped: 1 + 3, DuplicateConflicts: 1}
	if st.Counters != want || st.Stored != 4 || st.Expired != 0 {
		t.Errorf("stats = %+v stored %d expired %d, want %+v, 4 stored", st.Counters, st.Stored, st.Expired, want)
	}

	// The old events expire like any others, and their keys stay taken.
	expiry, err := s.Expire(t.Context(), uts.Retention{Events: time.Hour}, time.Now().Add(2*time.Hour), 100)
	if err != nil || expiry.Events != 4 {
		t.Fatalf("Expire = %+v, %v; want the 4 events", expiry, err)
	}
	outcomes, err = s.Append(t.Context(), []uts.Event{old[2], changed})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got, want := fmt.Sprint(outcomes), "[duplicate conflict]"; got != want {
		t.Errorf("outcomes of expired old keys = %s, want %s", got, want)
	}
}

// TestExpireDropsWholePartitions: a partition whose events have all expired is dropped, all
// its events counted at once whatever the limit, per topic, with their greatest cursor; the
// partition of the database's present is not dropped, however far ahead the `now` given
// is: its expired events are deleted row by row instead.
func TestExpireDropsWholePartitions(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	conn := connect(t, u)
	var old []uts.Event
	for i := range 5 {
		old = append(old, event("a", fmt.Sprint(i), "x"))
	}
	old = append(old, event("b", "1", "x"), event("b", "2", "x"))
	young := event("a", "young", "x")
	if _, err := s.Append(t.Context(), append(old, young)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	stored := readEvents(t, s, uts.Cursor{})
	ageEvents(t, conn, "events_old", old)

	r := uts.Retention{Events: 24 * time.Hour}
	expiry, err := s.Expire(t.Context(), r, time.Now(), 1)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if expiry.Events != int64(len(old)) {
		t.Fatalf("Expire(limit 1) = %+v, want the %d events of the dropped partition", expiry, len(old))
	}
	if exists(t, conn, "events_old") {
		t.Fatal("the expired partition is still there")
	}
	wantExpired(t, s, map[string]int64{"a": 5, "b": 2})
	for _, topic := range []string{"a", "b"} {
		var want uts.Cursor
		for _, e := range stored {
			if e.Topic == topic && e.Key() != young.Key() {
				want = e.Cursor
			}
		}
		if got, err := s.ExpiredThrough(t.Context(), []string{topic}); err != nil || got != want {
			t.Errorf("ExpiredThrough(%s) = %s, %v; want %s", topic, got, err, want)
		}
	}
	if page := readEvents(t, s, uts.Cursor{}); len(page) != 1 || page[0].Key() != young.Key() {
		t.Fatalf("after the drop the feed holds %d events, want the young one", len(page))
	}
	outcomes, err := s.Append(t.Context(), old[:2])
	if err != nil || fmt.Sprint(outcomes) != "[duplicate duplicate]" {
		t.Fatalf("the dropped events' keys: %v, %v; want duplicates", outcomes, err)
	}

	// Two days ahead everything has expired, but the partition holding the present is kept.
	var current string
	if err := conn.QueryRow(t.Context(), `SELECT tableoid::regclass::text FROM events`).Scan(&current); err != nil {
		t.Fatalf("the young event's partition: %v", err)
	}
	expiry, err = s.Expire(t.Context(), uts.Retention{Events: time.Hour}, time.Now().Add(48*time.Hour), 100)
	if err != nil || expiry.Events != 1 {
		t.Fatalf("Expire two days ahead = %+v, %v; want the young event", expiry, err)
	}
	if !exists(t, conn, current) {
		t.Fatalf("the partition of the present, %s, was dropped", current)
	}
	wantExpired(t, s, map[string]int64{"a": 6, "b": 2})
}

// TestPartitionDropWaitsForReaders: a drop that cannot have its lock within the lock timeout
// (a reader holds the table) gives up without an error, and the next round drops the
// partition; events deleted row by row meanwhile are counted once.
func TestPartitionDropWaitsForReaders(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	s, err := postgres.Open(t.Context(), u, postgres.WithLockTimeout(20*time.Millisecond))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	conn := connect(t, u)
	old := []uts.Event{event("a", "1", "x"), event("a", "2", "x"), event("a", "3", "x")}
	if _, err := s.Append(t.Context(), old); err != nil {
		t.Fatalf("Append: %v", err)
	}
	ageEvents(t, conn, "events_old", old)
	r := uts.Retention{Events: 24 * time.Hour}

	// The reader's transaction takes no transaction id, so it holds no feed back; it lasts
	// one Expire call.
	reader := connect(t, u)
	tx, err := reader.Begin(t.Context())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(t.Context(), `SELECT count(*) FROM events`); err != nil {
		t.Fatalf("read: %v", err)
	}
	first, err := s.Expire(t.Context(), r, time.Now(), 1)
	tx.Rollback(context.Background())
	if err != nil {
		t.Fatalf("Expire while a reader holds the table: %v", err)
	}
	if !exists(t, conn, "events_old") {
		t.Fatal("the partition was dropped while a reader held the table")
	}
	if first.Events > 1 || !first.More {
		t.Fatalf("Expire(limit 1) while the drop waits = %+v, want at most one event, and more", first)
	}
	second, err := s.Expire(t.Context(), r, time.Now(), 1)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if exists(t, conn, "events_old") {
		t.Fatal("the partition was not dropped once the reader was gone")
	}
	if first.Events+second.Events != 3 {
		t.Fatalf("Expire deleted %d + %d events, want 3", first.Events, second.Events)
	}
	wantExpired(t, s, map[string]int64{"a": 3})
}

// ageEvents moves events into a partition of their own, created by hand two to three days in
// the past, as if processed there.
func ageEvents(t *testing.T, conn *pgx.Conn, partition string, events []uts.Event) {
	t.Helper()
	ident := pgx.Identifier{partition}.Sanitize()
	if _, err := conn.Exec(t.Context(), `CREATE TABLE `+ident+` (LIKE events)`); err != nil {
		t.Fatalf("create %s: %v", partition, err)
	}
	var from, to time.Time
	if err := conn.QueryRow(t.Context(), `SELECT now() - interval '3 days', now() - interval '2 days'`).Scan(&from, &to); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), fmt.Sprintf(`ALTER TABLE events ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`,
		ident, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))); err != nil {
		t.Fatalf("attach %s: %v", partition, err)
	}
	for _, e := range events {
		tag, err := conn.Exec(t.Context(), `UPDATE events SET processed_at = now() - interval '60 hours'
			WHERE topic = $1 AND event_id = $2`, e.Topic, e.EventID)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("age %v: %v, %d rows", e.Key(), err, tag.RowsAffected())
		}
	}
}

func exists(t *testing.T, conn *pgx.Conn, table string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func wantExpired(t *testing.T, s *postgres.Store, want map[string]int64) {
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	var total int64
	for _, ts := range st.Topics {
		if ts.Expired != want[ts.Topic] || ts.Stored != ts.Unique-ts.Expired {
			t.Errorf("topic %s: expired %d stored %d unique %d, want %d expired", ts.Topic, ts.Expired, ts.Stored, ts.Unique, want[ts.Topic])
		}
		total += want[ts.Topic]
	}
	if st.Expired != total || st.Stored != st.UniqueProcessed-total {
		t.Errorf("expired %d stored %d, want %d expired of %d", st.Expired, st.Stored, total, st.UniqueProcessed)
	}
}

// readEvents reads the whole feed after a cursor, in pages, bounded.
func readEvents(t *testing.T, s *postgres.Store, after uts.Cursor) []uts.StoredEvent {
	t.Helper()
	var all []uts.StoredEvent
	for range 100 {
		page, err := s.Events(t.Context(), uts.EventQuery{After: after, Limit: 100})
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Cursor
	}
	t.Fatal("the feed did not end")
	return nil
}

// connect opens a connection of the test's own to the store's schema.
func connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestDefaultPartitionCatchesWhatNoPartitionCovers: with the partitions missing (creation
// fell behind), an append still stores its events, in the default partition; the next
// Expire creates partitions ahead around those rows instead of failing on them, and expires
// them like any others.
func TestDefaultPartitionCatchesWhatNoPartitionCovers(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	conn := connect(t, u)
	rows, err := conn.Query(t.Context(), `SELECT inhrelid::regclass::text FROM pg_inherits
		WHERE inhparent = 'events'::regclass AND inhrelid <> 'events_default'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	partitions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(partitions) == 0 {
		t.Fatalf("partitions: %v, %v", partitions, err)
	}
	for _, p := range partitions {
		if _, err := conn.Exec(t.Context(), `DROP TABLE `+pgx.Identifier{p}.Sanitize()); err != nil {
			t.Fatalf("drop %s: %v", p, err)
		}
	}

	e := event("t", "1", "x")
	if outcomes, err := s.Append(t.Context(), []uts.Event{e}); err != nil || outcomes[0] != uts.OutcomeNew {
		t.Fatalf("Append with no partition but the default: %v, %v", outcomes, err)
	}
	var in string
	if err := conn.QueryRow(t.Context(), `SELECT tableoid::regclass::text FROM events`).Scan(&in); err != nil || in != "events_default" {
		t.Fatalf("the event is in %q (%v), want events_default", in, err)
	}
	r := uts.Retention{Events: time.Hour}
	if expiry, err := s.Expire(t.Context(), r, time.Now(), 100); err != nil || expiry.Events != 0 {
		t.Fatalf("Expire with rows in the default partition = %+v, %v", expiry, err)
	}
	var created int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass`).Scan(&created); err != nil || created < 2 {
		t.Fatalf("%d partitions after Expire (%v), want the default and those ahead", created, err)
	}
	if page := readEvents(t, s, uts.Cursor{}); len(page) != 1 || page[0].Key() != e.Key() {
		t.Fatalf("the feed holds %d events, want the one in the default partition", len(page))
	}
	if expiry, err := s.Expire(t.Context(), r, time.Now().Add(2*time.Hour), 100); err != nil || expiry.Events != 1 {
		t.Fatalf("Expire two hours on = %+v, %v; want the event of the default partition", expiry, err)
	}
	wantExpired(t, s, map[string]int64{"t": 1})
}

// TestFingerprintOutlivesAnEventLeftBehind: processed_at is the time a transaction began and
// the feed's order is that of the transaction ids, taken at its first write, so an append
// that began first (its processed_at older) can sort after one that began later, by as long
// as it waited for a lock before its first write. Expiry stops each topic at the first event
// not yet expired and leaves an expired one behind it for a later round; the fingerprints
// must then not go before that event, or a duplicate of it is stored a second time.
func TestFingerprintOutlivesAnEventLeftBehind(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	conn := connect(t, u)
	young, late := event("t", "young", "x"), event("t", "late", "x")
	for _, e := range []uts.Event{young, late} { // two transactions: young's id is the smaller
		if outcomes, err := s.Append(t.Context(), []uts.Event{e}); err != nil || outcomes[0] != uts.OutcomeNew {
			t.Fatalf("Append %v: %v, %v", e.Key(), outcomes, err)
		}
	}
	// late's transaction began two minutes before young's, as if it had waited that long.
	var began time.Time
	if err := conn.QueryRow(t.Context(), `SELECT processed_at FROM events WHERE event_id = 'young'`).Scan(&began); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `UPDATE events SET processed_at = $1 WHERE event_id = 'late'`,
		began.Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if tag, err := conn.Exec(t.Context(), `UPDATE fingerprints SET at = $1 WHERE key = fingerprint_key('t', 'late')`,
		int32(began.Add(-2*time.Minute).Unix()/60)); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("age the fingerprint: %v", err)
	}

	// An hour on, less a minute: late has expired, young has not.
	r := uts.Retention{Events: time.Hour, Fingerprints: time.Hour}
	for range 10 {
		e, err := s.Expire(t.Context(), r, began.Add(time.Hour-time.Minute), 100)
		if err != nil {
			t.Fatalf("Expire: %v", err)
		}
		if !e.More {
			break
		}
	}
	outcomes, err := s.Append(t.Context(), []uts.Event{late})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	var rows int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE event_id = 'late'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if outcomes[0] != uts.OutcomeDuplicate || rows > 1 {
		t.Errorf("a duplicate of an event expiry left behind: %v, and %d rows of it stored; want a duplicate, stored once at most",
			outcomes[0], rows)
	}
}
