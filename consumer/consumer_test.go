package consumer_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/sqlite"
)

func openStore(t *testing.T) uts.Store {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "uts.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func newEvents(tag string, n int) []uts.Event {
	events := make([]uts.Event, n)
	for i := range events {
		events[i] = uts.Event{
			Topic:     "orders",
			EventID:   fmt.Sprintf("%s-%d", tag, i),
			Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			Source:    "consumer-test",
			Payload:   json.RawMessage(`{"n":1}`),
		}
	}
	return events
}

// logLines collects a JSON handler's output, one decoded record per line.
type logLines struct{ testenv.Buffer }

func (l *logLines) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: level}))
}

// withMessage returns the records whose msg is message.
func (l *logLines) withMessage(t *testing.T, message string) []map[string]any {
	t.Helper()
	var records []map[string]any
	for line := range strings.Lines(l.String()) {
		var record map[string]any
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if record["msg"] == message {
			records = append(records, record)
		}
	}
	return records
}

// tallies is an Observer that keeps what it was told.
type tallies struct {
	mu      sync.Mutex
	batches []int
	tallies []uts.Tally
}

func (o *tallies) Committed(batch int, t uts.Tally, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches = append(o.batches, batch)
	o.tallies = append(o.tallies, t)
}

func commit(t *testing.T, c *consumer.Consumer, events []uts.Event) []uts.Outcome {
	t.Helper()
	outcomes, err := c.Commit(t.Context(), events)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return outcomes
}

func TestCommitPassesOutcomesThrough(t *testing.T) {
	t.Parallel()
	observer := &tallies{}
	c := consumer.New(openStore(t), nil, consumer.WithObserver(observer))

	first := newEvents("a", 2)
	if got, want := commit(t, c, first), []uts.Outcome{uts.OutcomeNew, uts.OutcomeNew}; !slices.Equal(got, want) {
		t.Errorf("first batch outcomes = %v, want %v", got, want)
	}
	changed := first[1]
	changed.Payload = json.RawMessage(`{"n":2}`)
	fresh := newEvents("b", 1)[0]
	got := commit(t, c, []uts.Event{first[0], fresh, changed, fresh})
	want := []uts.Outcome{uts.OutcomeDuplicate, uts.OutcomeNew, uts.OutcomeConflict, uts.OutcomeDuplicate}
	if !slices.Equal(got, want) {
		t.Errorf("second batch outcomes = %v, want %v", got, want)
	}

	wantTallies := []uts.Tally{{Unique: 2}, {Unique: 1, Duplicates: 3, Conflicts: 1}}
	if !slices.Equal(observer.batches, []int{2, 4}) || !slices.Equal(observer.tallies, wantTallies) {
		t.Errorf("observer heard batches %v with %+v; want [2 4] with %+v", observer.batches, observer.tallies, wantTallies)
	}
}

func TestDuplicatesAreLoggedWhenDebugIsOn(t *testing.T) {
	t.Parallel()
	var logs logLines
	c := consumer.New(openStore(t), logs.logger(slog.LevelDebug))
	events := newEvents("d", 2)
	commit(t, c, events)
	changed := events[1]
	changed.Payload = json.RawMessage(`{"n":2}`)
	commit(t, c, []uts.Event{events[0], changed})

	duplicates := logs.withMessage(t, "duplicate dropped")
	if len(duplicates) != 1 || duplicates[0]["level"] != "DEBUG" ||
		duplicates[0]["topic"] != "orders" || duplicates[0]["event_id"] != "d-0" {
		t.Errorf("duplicate log lines = %v, want one DEBUG line for orders/d-0", duplicates)
	}
	conflicts := logs.withMessage(t, "conflicting duplicate dropped")
	if len(conflicts) != 1 || conflicts[0]["level"] != "WARN" ||
		conflicts[0]["topic"] != "orders" || conflicts[0]["event_id"] != "d-1" {
		t.Errorf("conflict log lines = %v, want one WARN line for orders/d-1", conflicts)
	}
}

func TestDuplicatesAreNotLoggedAtInfo(t *testing.T) {
	t.Parallel()
	var logs logLines
	c := consumer.New(openStore(t), logs.logger(slog.LevelInfo))
	events := newEvents("i", 3)
	commit(t, c, events)
	commit(t, c, events)
	if lines := logs.withMessage(t, "duplicate dropped"); len(lines) != 0 {
		t.Errorf("got %d duplicate lines at INFO, want none", len(lines))
	}
}

func TestDuplicateLogsAreCappedWhenFlooded(t *testing.T) {
	t.Parallel()
	var logs logLines
	c := consumer.New(openStore(t), logs.logger(slog.LevelDebug))
	events := newEvents("f", 500)
	commit(t, c, events)
	outcomes := commit(t, c, events)
	if tally := uts.TallyOf(outcomes); tally.Duplicates != 500 {
		t.Fatalf("second commit tally = %+v, want 500 duplicates", tally)
	}
	// One Commit takes its lines from one window, however slow the machine.
	if lines := logs.withMessage(t, "duplicate dropped"); len(lines) != 100 {
		t.Errorf("500 duplicates gave %d log lines, want the cap of 100", len(lines))
	}
}
