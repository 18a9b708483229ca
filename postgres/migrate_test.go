package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
)

// TestConcurrentOpen starts replicas at once on one empty schema: the advisory lock lets
// one migrate while the others wait and then find nothing to do.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	const replicas = 4
	stores := make([]*postgres.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), u) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	before := appliedMigrations(t, u)
	if len(before) == 0 {
		t.Fatal("schema_migrations is empty")
	}

	s, err := postgres.Open(t.Context(), u)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
	if after := appliedMigrations(t, u); after != before {
		t.Fatalf("reopening changed schema_migrations:\nbefore %s\nafter  %s", before, after)
	}
}

// appliedMigrations lists schema_migrations, applied_at included, so that a migration applied
// again shows.
func appliedMigrations(t *testing.T, u string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("schema_migrations: %v", err)
	}
	type applied struct {
		Version int
		Name    string
		At      time.Time
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[applied])
	if err != nil {
		t.Fatalf("schema_migrations: %v", err)
	}
	return fmt.Sprint(list)
}

// TestUnreachable: a server that does not answer is KindUnavailable, so that callers back off
// and retry rather than give up on the data.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	// Port 1 on the loopback: nothing listens there, the connection is refused at once.
	_, err := postgres.Open(t.Context(), "postgres://root@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if kind := uts.KindOf(err); kind != uts.KindUnavailable {
		t.Fatalf("Open: kind %v, want KindUnavailable: %v", kind, err)
	}
}

// TestFeedMigrationKeepsOldCursors migrates a schema that holds events stored before the
// feed recorded transaction ids. Those events sort first, in their old order, and a cursor
// handed out before the migration (a bare sequence number) goes on exactly after its event:
// no event is skipped or repeated across the upgrade.
func TestFeedMigrationKeepsOldCursors(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	if err := postgres.MigrateTo(t.Context(), u, 2); err != nil {
		t.Fatalf("migrate to version 2: %v", err)
	}
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := conn.Exec(t.Context(), `INSERT INTO events (topic, event_id, ts, ts_nanos, source, payload, content_hash)
			VALUES ('old', $1, now(), 0, 'before', '{}', '\x00')`, fmt.Sprint(i)); err != nil {
			t.Fatalf("insert an old event: %v", err)
		}
	}
	conn.Close(t.Context())

	s, err := postgres.Open(t.Context(), u)
	if err != nil {
		t.Fatalf("Open (migrating): %v", err)
	}
	defer s.Close()
	if _, err := s.Append(t.Context(), []uts.Event{
		{Topic: "new", EventID: "a", Timestamp: time.Now(), Source: "after", Payload: []byte(`{}`)},
		{Topic: "old", EventID: "b", Timestamp: time.Now(), Source: "after", Payload: []byte(`{}`)},
	}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	ids := func(after string) string {
		t.Helper()
		c, err := uts.ParseCursor(after)
		if err != nil {
			t.Fatalf("ParseCursor(%q): %v", after, err)
		}
		events, err := s.Events(t.Context(), uts.EventQuery{After: c, Limit: 100})
		if err != nil {
			t.Fatalf("Events(after %s): %v", after, err)
		}
		var out []string
		for _, e := range events {
			out = append(out, e.Topic+"/"+e.EventID)
		}
		return fmt.Sprint(out)
	}
	if got, want := ids("0"), "[old/1 old/2 old/3 new/a old/b]"; got != want {
		t.Errorf("the whole feed = %s, want %s", got, want)
	}
	if got, want := ids("2"), "[old/3 new/a old/b]"; got != want {
		t.Errorf("after the old cursor 2 = %s, want %s", got, want)
	}
}
