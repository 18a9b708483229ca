package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
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
