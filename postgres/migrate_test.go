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
