package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
	"github.com/uts-events/uts/storetest"
)

// TestMigrateV3 opens a file written by schema version 3, with events, and checks that
// version 4 took their identities over: each is a duplicate (or a conflict) still, its
// counters are intact, a new event's seq comes after them, and retention works on them.
func TestMigrateV3(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	const n = 25_000 // more than one chunk of expiry
	old := make([]uts.Event, n)
	processedAt := time.Now().Add(-2 * time.Hour).UnixNano()
	func() {
		db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=journal_mode(wal)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec(sqlite.SchemaV3 + `PRAGMA user_version = 3;`); err != nil {
			t.Fatal(err)
		}
		insert, err := tx.Prepare(`INSERT INTO events (topic, event_id, ts, source, payload, content_hash, processed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			t.Fatal(err)
		}
		for i := range old {
			old[i] = event(fmt.Sprint(i))
			old[i].Topic = fmt.Sprintf("t%d", i%2)
			if _, err := insert.Exec(old[i].Topic, old[i].EventID, old[i].Timestamp.UnixNano(), old[i].Source,
				string(old[i].Payload), old[i].ContentHash(), processedAt+int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tx.Exec(`UPDATE counters SET received = ?1, unique_processed = ?1`, n); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO topics (topic, unique_processed, last_event_at) VALUES ('t0', ?1, ?2), ('t1', ?1, ?2)`,
			n/2, processedAt); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}()

	s := open(t, path)
	defer s.Close()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.UniqueProcessed != n || st.Stored != n || st.Expired != 0 || st.DiskBytes <= 0 {
		t.Fatalf("stats after migration: %+v", st)
	}
	changed := old[1]
	changed.Payload = []byte(`{"changed":true}`)
	outcomes, err := s.Append(t.Context(), []uts.Event{old[0], changed, old[n-1], event("new")})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(outcomes) != "[duplicate conflict duplicate new]" {
		t.Fatalf("outcomes after migration: %v", outcomes)
	}
	newest, err := s.Events(t.Context(), uts.EventQuery{Newest: true, Limit: 1})
	// The new event comes after the migrated ones, never at or below their seq.
	if err != nil || len(newest) != 1 || newest[0].EventID != "new" || newest[0].Cursor.Seq <= n {
		t.Fatalf("newest after migration: %+v, %v; want the new event after seq %d", newest, err, n)
	}

	// The migrated events expire as new ones do, and their identities outlive them.
	r := uts.Retention{Events: time.Hour}
	if expired := storetest.ExpireAll(t, s, r, time.Now(), 10_000).Events; expired != n {
		t.Fatalf("expired %d migrated events, want %d", expired, n)
	}
	if through, err := s.ExpiredThrough(t.Context(), nil); err != nil || through.Seq != n {
		t.Fatalf("ExpiredThrough = %v, %v; want seq %d", through, err, n)
	}
	outcomes, err = s.Append(t.Context(), []uts.Event{old[2], changed})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(outcomes) != "[duplicate conflict]" {
		t.Fatalf("outcomes after expiry: %v", outcomes)
	}
}
