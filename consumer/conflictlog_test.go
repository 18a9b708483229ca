package consumer_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
)

// readCounting is a real store that counts the StoredHash reads made through it.
type readCounting struct {
	uts.Store
	reads atomic.Int64
}

func (s *readCounting) StoredHash(ctx context.Context, key uts.Key) (string, error) {
	s.reads.Add(1)
	return s.Store.StoredHash(ctx, key)
}

// conflicting returns events with the same keys and other payloads.
func conflicting(events []uts.Event) []uts.Event {
	changed := make([]uts.Event, len(events))
	for i, e := range events {
		e.Payload = json.RawMessage(`{"changed":true}`)
		changed[i] = e
	}
	return changed
}

func TestConflictsAreLoggedWithBothHashes(t *testing.T) {
	t.Parallel()
	var logs logLines
	c := consumer.New(openStore(t), logs.logger(slog.LevelInfo))
	stored := newEvents("h", 1)
	commit(t, c, stored)
	incoming := conflicting(stored)
	commit(t, c, incoming)

	lines := logs.withMessage(t, "conflicting duplicate dropped")
	if len(lines) != 1 {
		t.Fatalf("got %d conflict lines, want 1: %v", len(lines), lines)
	}
	line := lines[0]
	if line["level"] != "WARN" || line["topic"] != "orders" || line["event_id"] != "h-0" {
		t.Errorf("conflict line %v, want WARN for orders/h-0", line)
	}
	if line["stored_hash"] != stored[0].ContentHash() || line["incoming_hash"] != incoming[0].ContentHash() {
		t.Errorf("conflict line hashes stored=%v incoming=%v, want stored=%s incoming=%s",
			line["stored_hash"], line["incoming_hash"], stored[0].ContentHash(), incoming[0].ContentHash())
	}
}

// TestStoredHashIsReadOnlyForLoggedConflicts: the read costs nothing on the batch path
// unless a conflict line is written: none for new events or retries, none with WARN off,
// and no more than the line budget however many conflicts a batch holds.
func TestStoredHashIsReadOnlyForLoggedConflicts(t *testing.T) {
	t.Parallel()
	events := newEvents("r", 500)
	for _, tc := range []struct {
		name      string
		level     slog.Level
		batch     []uts.Event
		wantReads int64
	}{
		{"retries", slog.LevelDebug, events, 0},
		{"conflicts with WARN off", slog.LevelError, conflicting(events), 0},
		{"conflicts beyond the line budget", slog.LevelInfo, conflicting(events), 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs logLines
			store := &readCounting{Store: openStore(t)}
			c := consumer.New(store, logs.logger(tc.level))
			commit(t, c, events)
			if tally := uts.TallyOf(commit(t, c, tc.batch)); tally.Duplicates != len(events) {
				t.Fatalf("second batch tally %+v, want %d duplicates", tally, len(events))
			}
			if got := store.reads.Load(); got != tc.wantReads {
				t.Errorf("StoredHash read %d times, want %d", got, tc.wantReads)
			}
			if got := len(logs.withMessage(t, "conflicting duplicate dropped")); int64(got) != tc.wantReads {
				t.Errorf("%d conflict lines, want one per read (%d)", got, tc.wantReads)
			}
		})
	}
}

// readsElsewhere is a store that reads stored hashes from another store.
type readsElsewhere struct {
	uts.Store
	hashes uts.Store
}

func (s readsElsewhere) StoredHash(ctx context.Context, key uts.Key) (string, error) {
	return s.hashes.StoredHash(ctx, key)
}

func TestStoredHashFailureStillLogsTheConflict(t *testing.T) {
	t.Parallel()
	var logs logLines
	closed := openStore(t)
	closed.Close()
	c := consumer.New(readsElsewhere{Store: openStore(t), hashes: closed}, logs.logger(slog.LevelInfo))
	stored := newEvents("e", 1)
	commit(t, c, stored)
	commit(t, c, conflicting(stored))

	lines := logs.withMessage(t, "conflicting duplicate dropped")
	if len(lines) != 1 || lines[0]["incoming_hash"] == nil || lines[0]["stored_hash_error"] == nil {
		t.Errorf("conflict lines %v, want one with the incoming hash and why the stored one is missing", lines)
	}
}
