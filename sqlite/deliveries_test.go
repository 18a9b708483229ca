package sqlite_test

import (
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
	"github.com/uts-events/uts/storetest"
)

// TestPruneDeliveries: see storetest.PruneForgetsOldDeliveries.
func TestPruneDeliveries(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path)
	defer s.Close()
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.PruneForgetsOldDeliveries(t, s, func(delivery string) {
		aged := time.Now().Add(-uts.DeliveryRetention - time.Hour).UnixNano()
		if _, err := db.ExecContext(t.Context(), `UPDATE deliveries SET recorded_at = ? WHERE delivery = ?`, aged, delivery); err != nil {
			t.Fatalf("age a delivery: %v", err)
		}
	}, func(cutoff time.Time) (int64, error) { return s.PruneDeliveries(t.Context(), cutoff) })
}

// TestMigratesVersion1 opens a file written by the first schema: the deliveries and
// subscriptions tables are added, then retention's, and what was stored stays.
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
	if _, err := db.Exec(`DROP TABLE deliveries; DROP TABLE subscriptions; DROP TABLE fingerprints;
		ALTER TABLE topics DROP COLUMN expired; ALTER TABLE topics DROP COLUMN expired_through;
		ALTER TABLE counters DROP COLUMN last_seq; ALTER TABLE counters DROP COLUMN last_processed_at;
		PRAGMA user_version = 1`); err != nil {
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
	if sub, _, err := s.CreateSubscription(t.Context(), uts.SubscriptionSpec{Name: "after-migration"}); err != nil || sub.Lag != 1 {
		t.Fatalf("CreateSubscription after the migration: %+v, %v; want lag 1", sub, err)
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
