package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
	"github.com/uts-events/uts/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, commitDelay func() time.Duration) storetest.Opener {
		// A folder that does not exist yet: Open must create it.
		path := filepath.Join(t.TempDir(), "data", "events.db")
		var opts []sqlite.Option
		if commitDelay != nil {
			opts = append(opts, sqlite.WithCommitDelay(commitDelay))
		}
		return func() (uts.Store, error) { return sqlite.Open(context.Background(), path, opts...) }
	})
}

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func event(id string) uts.Event {
	return uts.Event{Topic: "t", EventID: id, Timestamp: time.Unix(1700000000, 1).UTC(), Source: "test", Payload: []byte(`{}`)}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checks := map[string]error{
		"Ping":       s.Ping(t.Context()),
		"DeadLetter": s.DeadLetter(t.Context(), "", 1),
	}
	_, checks["Append"] = s.Append(t.Context(), []uts.Event{event("a")})
	_, checks["Events"] = s.Events(t.Context(), uts.EventQuery{Limit: 10})
	_, checks["Stats"] = s.Stats(t.Context())
	for name, err := range checks {
		if uts.KindOf(err) != uts.KindUnavailable {
			t.Errorf("%s on a closed store: err = %v, want KindUnavailable", name, err)
		}
	}
}

func TestTimestampOutOfRange(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "events.db"))
	defer s.Close()
	late := event("late")
	late.Timestamp = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Append(t.Context(), []uts.Event{event("ok"), late}); uts.KindOf(err) != uts.KindInvalid {
		t.Fatalf("Append of a year-3000 timestamp: err = %v, want KindInvalid", err)
	}
	if st, err := s.Stats(t.Context()); err != nil || st.Received != 0 {
		t.Fatalf("after a refused batch: stats %+v, err %v; want nothing counted", st, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqlite.Open(t.Context(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: err = %v, want a refusal", err)
	}
}

// BenchmarkAppend includes batches of 25: the size of a commit of single events.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{25, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "events.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchmarkAppend(b, s, batch)
		})
	}
}

func BenchmarkAppendDelivered(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "events.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchmarkAppendDelivered(b, s, batch)
		})
	}
}
