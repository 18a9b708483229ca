package postgres_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
)

// TestEventsUseTheFeedIndex checks that a page of the feed is read along an index in feed
// order rather than by sorting every event after the cursor, which made each page cost as
// much as the whole rest of the feed: the cast column named xid once took ORDER BY xid away
// from the column.
func TestEventsUseTheFeedIndex(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(t.Context(), testenv.PostgresSchema(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	for _, q := range []uts.EventQuery{
		{Limit: 1000},
		{Limit: 1000, After: uts.Cursor{Tx: 12, Seq: 34}},
		{Limit: 1000, Topics: []string{"orders"}, After: uts.Cursor{Tx: 12, Seq: 34}},
		{Limit: 1000, Newest: true},
	} {
		plan, err := s.ExplainEvents(t.Context(), q)
		if err != nil {
			t.Fatalf("%+v: explain: %v", q, err)
		}
		// Over the partitions, a Merge Append of index scans keeps the order: its "Sort Key"
		// is the order it merges in, not a sort.
		if sortNode.MatchString(plan) || !strings.Contains(plan, "Index") {
			t.Errorf("%+v: the plan sorts instead of reading an index in order:\n%s", q, plan)
		}
	}
}

// sortNode finds a Sort or Incremental Sort node in an EXPLAIN plan.
var sortNode = regexp.MustCompile(`(?m)^\s*(->\s+)?(Incremental )?Sort\s+\(`)
