package postgres_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
)

// TestOtherDatabasesDoNotHoldTheFeedBack: a transaction of another database of the same
// server, holding a transaction id for as long as it likes, can never write this store's
// table, so it must not hold the feed back. One of this database does (TestStore/
// FeedNeverSkips and NewestCursorNeverSkips hold the feed to that).
func TestOtherDatabasesDoNotHoldTheFeedBack(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	other, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	other.Path = "/postgres" // a database every server has
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, other.String())
	if err != nil {
		t.Skipf("cannot reach the database postgres of the test server: %v", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil { // takes a transaction id
		t.Fatal(err)
	}

	if _, err := s.Append(ctx, []uts.Event{{Topic: "t", EventID: "1", Timestamp: time.Now(), Source: "s", Payload: []byte(`{}`)}}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	// The other database's transaction stays open until the test ends, so a feed that waited
	// for it would hand out nothing in any of these reads. A transaction of this database,
	// such as a parallel test's in another schema, may hold the feed back for a while: the
	// reads go on until it has ended, for 10 seconds at most.
	started := time.Now()
	var events []uts.StoredEvent
	for range 40 {
		events, err = s.Events(ctx, uts.EventQuery{Limit: 10})
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		if len(events) == 1 || time.Since(started) > 10*time.Second {
			break
		}
	}
	if len(events) != 1 {
		t.Fatalf("with a transaction of another database open, the feed hands out %d events after %v, want the 1 stored", len(events), time.Since(started))
	}
}
