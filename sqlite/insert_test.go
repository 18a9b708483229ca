package sqlite

import (
	"errors"
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
	plan := queryPlan(t, s, lookupSQL(4))
	if len(plan) != 2 || !strings.HasPrefix(plan[0], "SCAN") ||
		plan[1] != "SEARCH events USING INDEX sqlite_autoindex_events_1 (topic=? AND event_id=?)" {
		t.Errorf("plan of the lookup:\n%s\nwant a scan of the batch, then a search of the UNIQUE index", strings.Join(plan, "\n"))
	}
}

// TestReadBackUsesTheRowid holds the read-back of the rows an insert took to a range of the
// table's rowid, the end the insert wrote: a scan would read the whole table at every Append
// that meets a stored key.
func TestReadBackUsesTheRowid(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plan := queryPlan(t, s, readTakenSQL)
	if len(plan) != 1 || plan[0] != "SEARCH events USING INTEGER PRIMARY KEY (rowid>?)" {
		t.Errorf("plan of the read-back:\n%s\nwant a search of the rowid", strings.Join(plan, "\n"))
	}
}

// queryPlan is SQLite's plan for query on the writer, a step a line.
func queryPlan(t *testing.T, s *Store, query string) []string {
	t.Helper()
	stmt, _, err := s.writer.Prepare(`EXPLAIN QUERY PLAN ` + query)
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
	return plan
}

// TestInsertTellsTakenFromStoredInBatchOrder appends batches that interleave stored and new
// keys, across the chunk sizes (32 rows exactly, then powers of two), with stored keys first,
// last and in runs: every new key is new, in batch order of seq and with no seq skipped, every
// stored key a duplicate, and a stored key with other content a conflict.
func TestInsertTellsTakenFromStoredInBatchOrder(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := func(id int, payload string) uts.Event {
		return uts.Event{Topic: fmt.Sprint("t", id%3), EventID: fmt.Sprint(id), Timestamp: time.Unix(1, 0), Source: "s", Payload: []byte(payload)}
	}
	var stored []uts.Event
	for id := 0; id < 600; id += 3 { // every third key stored
		stored = append(stored, ev(id, `{}`))
	}
	if _, err := s.Append(t.Context(), stored); err != nil {
		t.Fatal(err)
	}
	next := 600
	for _, n := range []int{1, 2, 31, 32, 33, 64, 100, 300} {
		var batch []uts.Event
		var want []uts.Outcome
		for i := range n {
			switch {
			case i%4 == 1 && next < 1200: // a key of the stored run, same content
				batch = append(batch, ev((next/3)*3%600, `{}`))
				want = append(want, uts.OutcomeDuplicate)
			case i%7 == 3: // a stored key with other content
				batch = append(batch, ev((i*3+next)%600/3*3, `{"other":1}`))
				want = append(want, uts.OutcomeConflict)
			default:
				batch = append(batch, ev(1000+next, `{}`))
				want = append(want, uts.OutcomeNew)
			}
			next++
		}
		before := allRows(t, s)
		last := before[len(before)-1].seq
		out, err := s.Append(t.Context(), batch)
		if err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		if fmt.Sprint(out) != fmt.Sprint(want) {
			t.Fatalf("batch of %d:\noutcomes %v\nwant     %v", n, out, want)
		}
		var fresh []seqRow
		for i, e := range batch {
			if want[i] == uts.OutcomeNew {
				fresh = append(fresh, seqRow{last + int64(len(fresh)) + 1, e.Key()})
			}
		}
		if got := allRows(t, s)[len(before):]; fmt.Sprint(got) != fmt.Sprint(fresh) {
			t.Fatalf("batch of %d: stored %v,\nwant the new keys in batch order, seq after seq: %v", n, got, fresh)
		}
	}
}

// TestMarkTakenRefusesARowNeitherTakenNorStored: if the insert took fewer rows than it
// reported, or skipped one it should have taken, Append fails rather than answer for a row
// that is not there.
func TestMarkTakenRefusesARowNeitherTakenNorStored(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := []uts.Event{
		{Topic: "t", EventID: "a", Timestamp: time.Unix(1, 0), Source: "s", Payload: []byte(`{}`)},
		{Topic: "t", EventID: "b", Timestamp: time.Unix(1, 0), Source: "s", Payload: []byte(`{}`)},
	}
	if _, err := s.Append(t.Context(), events[:1]); err != nil {
		t.Fatal(err)
	}
	b := newBatch(events)
	if _, err := s.writes.markTaken(b, b.distinct, 0, 2); !errors.Is(err, errNeitherTakenNorStored) {
		t.Errorf("two reported taken, one there: err = %v", err)
	}
	b = newBatch(events)
	if skipped, err := s.writes.markTaken(b, b.distinct, 0, 1); err != nil || fmt.Sprint(skipped) != "[1]" || !b.inserted[0] {
		t.Errorf("one taken: skipped %v, err %v, inserted %v", skipped, err, b.inserted)
	}
}

// TestFailedInsertGivesTheTransactionUp makes an INSERT OR ROLLBACK fail after the
// transaction recorded a delivery, as an error that is not a conflict fails Append's own
// INSERT: SQLite rolls the whole transaction back, transaction() returns the error without a
// ROLLBACK of its own, the delivery is not recorded, and the writer takes the next Append as
// usual.
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
			stmt, _, err := s.writer.Prepare(strings.Replace(insertSQL(1, false), "OR IGNORE", "OR ROLLBACK", 1))
			if err != nil {
				return err
			}
			defer stmt.Close()
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
