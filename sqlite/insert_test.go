package sqlite

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// TestLookupUsesTheUniqueIndex holds Append's lookup of a batch's keys to one search of the
// events' UNIQUE index a key: a plan that scanned the events instead would still be correct,
// and would make every Append read the whole table.
func TestLookupUsesTheUniqueIndex(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stmt, _, err := s.writer.Prepare(`EXPLAIN QUERY PLAN ` + lookupSQL(4))
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	var plan []string
	for stmt.Step() {
		plan = append(plan, stmt.ColumnText(3))
	}
	if err := stmt.Err(); err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 || !strings.HasPrefix(plan[0], "SCAN") ||
		plan[1] != "SEARCH events USING INDEX sqlite_autoindex_events_1 (topic=? AND event_id=?)" {
		t.Errorf("plan of the lookup:\n%s\nwant a scan of the batch, then a search of the UNIQUE index", strings.Join(plan, "\n"))
	}
}

// TestFailedInsertGivesTheTransactionUp makes the INSERT OR ROLLBACK fail after the
// transaction recorded a delivery: SQLite rolls the whole transaction back, transaction()
// returns the error without a ROLLBACK of its own, the delivery is not recorded, and the
// writer takes the next Append as usual.
func TestFailedInsertGivesTheTransactionUp(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := func(id, delivery string) uts.Event {
		return uts.Event{Topic: "t", EventID: id, Timestamp: time.Unix(1, 0), Source: "s", Payload: []byte(`{}`), Delivery: delivery}
	}
	if _, err := s.Append(t.Context(), []uts.Event{ev("a", "")}); err != nil {
		t.Fatal(err)
	}
	events := []uts.Event{ev("a", "d1")}
	err = s.withWriter(t.Context(), func() error {
		return s.transaction(t.Context(), func() error {
			if _, err := s.writes.recordDeliveries(events, deliveryUnits(events), 1); err != nil {
				return err
			}
			b := newBatch(events)
			// Skip the lookup: insert a stored key, as a lookup that missed it would.
			stmt, err := s.writes.inserts.get(1)
			if err != nil {
				return err
			}
			defer stmt.Reset()
			bind := binder{stmt: stmt}
			bind.text("t")
			bind.text("a")
			bind.int64(1)
			bind.text("s")
			bind.bytes([]byte(`{}`))
			bind.text(b.hashes[0])
			bind.int64(1)
			if bind.err != nil {
				return bind.err
			}
			return stmt.Exec()
		})
	})
	if err == nil {
		t.Fatal("the INSERT of a stored key succeeded")
	}
	if !s.writer.GetAutocommit() {
		t.Fatal("a transaction is still open")
	}
	out, err := s.Append(t.Context(), []uts.Event{ev("a", "d1"), ev("b", "")})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != "[duplicate new]" {
		t.Fatalf("outcomes %v: the delivery of the failed transaction was kept", out)
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != 3 || st.UniqueProcessed != 2 || st.DuplicateDropped != 1 {
		t.Fatalf("counters %+v", st.Counters)
	}
}
