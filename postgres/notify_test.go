package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
)

// replicaWake is how long a test waits for a commit of another store to wake a reader: a
// bound on a wait for a state, not a timed assertion.
const replicaWake = 10 * time.Second

func openAt(t *testing.T, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendNew(t *testing.T, s uts.Store, id string) {
	t.Helper()
	e := uts.Event{Topic: "replicas", EventID: id, Timestamp: time.Now().UTC(), Source: "test", Payload: []byte(`{}`)}
	if _, err := s.Append(t.Context(), []uts.Event{e}); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// listening starts the store's listener: the first reader's Committed returns once it
// LISTENs.
func listening(t *testing.T, s *postgres.Store) {
	t.Helper()
	s.Committed()
}

// listenerPID is the backend of the schema's listener, 0 when there is none.
func listenerPID(t *testing.T, u string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var pid int
	err = conn.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_stat_activity
		WHERE query = 'LISTEN "uts_feed_' || left(encode(sha256(convert_to(current_schema(), 'UTF8')), 'hex'), 16) || '"'`).Scan(&pid)
	if err != nil {
		t.Fatalf("find the listener: %v", err)
	}
	return pid
}

func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(replicaWake):
		return false
	}
}

// TestCommitWakesOtherReplicas: two stores on one schema are two replicas; a reader waiting
// on B is woken by an Append on A, through LISTEN/NOTIFY, and a store in another schema is
// not.
func TestCommitWakesOtherReplicas(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	a, b := openAt(t, u), openAt(t, u)
	other := openAt(t, testenv.PostgresSchema(t))
	listening(t, b)
	listening(t, other)
	otherWait := other.Committed() // taken after its listener's first wake-up, at connecting

	wait := b.Committed()
	appendNew(t, a, "1")
	if !woken(wait) {
		t.Fatal("an Append on replica A did not wake a reader of replica B")
	}
	// The event is B's to read, though perhaps not at once: a transaction of another test in
	// flight on the same database may hold the feed back a little.
	testenv.Eventually(t, "B to read A's event", replicaWake, 10*time.Millisecond, func() error {
		events, err := b.Events(t.Context(), uts.EventQuery{Limit: 10})
		if err == nil && len(events) != 1 {
			err = fmt.Errorf("B reads %d events, want 1", len(events))
		}
		return err
	})
	select {
	case <-otherWait:
		t.Fatal("an Append in one schema woke a reader of another")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestListenerReconnects: when the listener's connection is cut, the store connects again
// and commits of the other replica wake its readers again.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	a, b := openAt(t, u), openAt(t, u)
	listening(t, b)
	pid := listenerPID(t, u)
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	reconnected := b.Committed()
	if _, err := conn.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatalf("terminate the listener: %v", err)
	}
	if !woken(reconnected) {
		t.Fatal("the listener did not wake the readers after connecting again")
	}
	if p := listenerPID(t, u); p == 0 || p == pid {
		t.Fatalf("the listener's backend is %d after %d was terminated", p, pid)
	}
	wait := b.Committed()
	appendNew(t, a, "after-reconnect")
	if !woken(wait) {
		t.Fatal("after the listener reconnected, an Append on A did not wake B's reader")
	}
}
