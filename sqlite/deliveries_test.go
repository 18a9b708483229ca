package sqlite_test

import (
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
	"github.com/uts-events/uts/storetest"
)

// TestPruneDeliveries: deliveries older than the cutoff are forgotten, so their redelivery
// counts again; younger ones are kept.
func TestPruneDeliveries(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path)
	defer s.Close()
	ctx := t.Context()
	old, young := event("old"), event("young")
	old.Delivery, young.Delivery = "1-0", "2-0"
	if _, err := s.Append(ctx, []uts.Event{old, young}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	aged := time.Now().Add(-uts.DeliveryRetention - time.Hour).UnixNano()
	if _, err := db.ExecContext(ctx, `UPDATE deliveries SET recorded_at = ? WHERE delivery = '1-0'`, aged); err != nil {
		t.Fatalf("age a delivery: %v", err)
	}
	n, err := s.PruneDeliveries(ctx, time.Now().Add(-uts.DeliveryRetention))
	if err != nil || n != 1 {
		t.Fatalf("PruneDeliveries = %d, %v; want 1 pruned", n, err)
	}
	outcomes, err := s.Append(ctx, []uts.Event{old, young})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := uts.Counters{Received: 3, UniqueProcessed: 2, DuplicateDropped: 1}
	if fmt.Sprint(outcomes) != "[duplicate duplicate]" || st.Counters != want {
		t.Fatalf("after pruning: outcomes %v, counters %+v; want both duplicates and only the pruned one counted: %+v", outcomes, st.Counters, want)
	}
}

// TestMigratesVersion1 opens a file written by the first schema: the deliveries table is
// added and what was stored stays.
func TestMigratesVersion1(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path)
	if _, err := s.Append(t.Context(), []uts.Event{event("a")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE deliveries; PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = open(t, path)
	defer s.Close()
	a := event("a")
	a.Delivery = "1-0"
	for range 2 {
		if _, err := s.Append(t.Context(), []uts.Event{a}); err != nil {
			t.Fatalf("Append after the migration: %v", err)
		}
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (uts.Counters{Received: 2, UniqueProcessed: 1, DuplicateDropped: 1}); st.Counters != want {
		t.Fatalf("counters %+v, want %+v (the version-1 event, then one delivery counted once)", st.Counters, want)
	}
}

// TestFailedPruningIsLogged: see storetest.FailedPruningIsLogged.
func TestFailedPruningIsLogged(t *testing.T) {
	t.Parallel()
	storetest.FailedPruningIsLogged(t, func(w io.Writer) (uts.Store, func()) {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"),
			sqlite.WithLogger(slog.New(slog.NewTextHandler(w, nil))))
		if err != nil {
			t.Fatal(err)
		}
		return s, func() { s.Prune(t.Context(), time.Now()) }
	})
}
