package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// killChildEnv makes the test binary act as the writer that TestAppendSurvivesKill kills.
const killChildEnv = "UTS_SQLITE_KILL_CHILD"

// TestAppendSurvivesKill checks promise 1 at the store: every Append that returned before a
// kill -9 is there after reopening. (Power loss is left to synchronous=FULL.)
func TestAppendSurvivesKill(t *testing.T) {
	if path := os.Getenv(killChildEnv); path != "" {
		appendUntilKilled(path)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	child := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestAppendSurvivesKill$")
	child.Env = append(os.Environ(), killChildEnv+"="+path)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	acked := 0
	lines := bufio.NewScanner(out)
	deadline := time.Now().Add(2 * time.Minute)
	for acked < 2000 && time.Now().Before(deadline) && lines.Scan() {
		if n, ok := strings.CutPrefix(lines.Text(), "acked "); ok {
			acked, _ = strconv.Atoi(n)
		}
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	for lines.Scan() { // acknowledgements written before the kill still count
		if n, ok := strings.CutPrefix(lines.Text(), "acked "); ok {
			acked, _ = strconv.Atoi(n)
		}
	}
	child.Wait()
	if acked == 0 {
		t.Fatal("the child acknowledged nothing before it was killed")
	}

	s := open(t, path)
	defer s.Close()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.UniqueProcessed < int64(acked) {
		t.Fatalf("after kill -9: %d events stored, %d were acknowledged", st.UniqueProcessed, acked)
	}
	if st.Received != st.UniqueProcessed {
		t.Fatalf("after kill -9: counters %+v do not match the stored events", st.Counters)
	}
}

func appendUntilKilled(path string) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	const batchSize = 50
	batch := make([]uts.Event, batchSize)
	for n := 0; n < 200_000; n += batchSize { // bounded even if nobody kills us
		for i := range batch {
			batch[i] = event(strconv.Itoa(n + i))
		}
		if _, err := s.Append(ctx, batch); err != nil {
			fmt.Println("append:", err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", n+batchSize)
	}
	os.Exit(0)
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
