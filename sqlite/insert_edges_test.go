package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// Adversarial tests of the INSERT OR IGNORE path (insert, markTaken): stored keys at the
// edges of the statement chunks, whole chunks and whole batches stored, on both the implicit
// (SQLite numbers) and explicit (Append numbers, after retention deleted the newest events)
// paths, and keys whose bytes a TEXT comparison could mishandle.

func edgeEvent(topic, id, payload string) uts.Event {
	return uts.Event{Topic: topic, EventID: id, Timestamp: time.Unix(1700000000, 3).UTC(), Source: "r", Payload: []byte(payload)}
}

// appendWanting appends batch and fails the test unless the outcomes are want.
func appendWanting(t *testing.T, ctx context.Context, s *Store, batch []uts.Event, want []uts.Outcome) {
	t.Helper()
	out, err := s.Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out, want) {
		t.Fatalf("outcomes\n%v\nwant\n%v", out, want)
	}
}

// chunkEdges lists, for a batch of n rows, the first and last index of each chunk.
func chunkEdges(n int) []int {
	var edges []int
	at := 0
	for at < n {
		size := chunkSize(n - at)
		edges = append(edges, at, at+size-1)
		at += size
	}
	return edges
}

// chunkRanges lists the [start, end) of each chunk of a batch of n rows.
func chunkRanges(n int) [][2]int {
	var r [][2]int
	at := 0
	for at < n {
		size := chunkSize(n - at)
		r = append(r, [2]int{at, at + size})
		at += size
	}
	return r
}

type seqRow struct {
	seq int64
	key uts.Key
}

// lastSeq is the counters' high-water mark, the greatest seq ever handed out.
func lastSeq(t *testing.T, s *Store) int64 {
	t.Helper()
	last, _, _, err := s.writes.highWater()
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func allRows(t *testing.T, s *Store) []seqRow {
	t.Helper()
	stmt, _, err := s.writer.Prepare(`SELECT seq, topic, event_id FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	var rows []seqRow
	for stmt.Step() {
		rows = append(rows, seqRow{stmt.ColumnInt64(0), uts.Key{Topic: stmt.ColumnText(1), EventID: stmt.ColumnText(2)}})
	}
	if err := stmt.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestInsertAtChunkEdges stores keys at the edges of the statement chunks, whole chunks and
// whole batches, on both seq paths, and checks outcomes, seq order, last_seq and counters.
func TestInsertAtChunkEdges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for _, explicit := range []bool{false, true} {
		for _, n := range []int{1, 2, 32, 33, 64, 65, 256, 257, 1000} {
			ranges := chunkRanges(n)
			patterns := map[string]func(i int) bool{
				"edges":      func(i int) bool { return slices.Contains(chunkEdges(n), i) },
				"first":      func(i int) bool { return i == 0 },
				"last":       func(i int) bool { return i == n-1 },
				"all":        func(i int) bool { return true },
				"lastChunk":  func(i int) bool { return i >= ranges[len(ranges)-1][0] },
				"firstChunk": func(i int) bool { return i < ranges[0][1] },
				"allButLast": func(i int) bool { return i != n-1 },
				"allButOne":  func(i int) bool { return i != 0 },
				"odd":        func(i int) bool { return i%2 == 1 },
			}
			for name, stored := range patterns {
				t.Run(fmt.Sprintf("explicit=%v/n=%d/%s", explicit, n, name), func(t *testing.T) {
					s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
					// Store the keys of the pattern; every third of them with other content.
					var pre []uts.Event
					for i := range n {
						if stored(i) {
							pre = append(pre, edgeEvent(fmt.Sprint("t", i%3), fmt.Sprint(i), `{"v":0}`))
						}
					}
					if len(pre) > 0 {
						if _, err := s.Append(ctx, pre); err != nil {
							t.Fatal(err)
						}
					}
					if explicit {
						// The newest events expire: the next Append numbers rows itself.
						if _, err := s.Append(ctx, []uts.Event{edgeEvent("z", "1", `{}`), edgeEvent("z", "2", `{}`)}); err != nil {
							t.Fatal(err)
						}
						r := uts.Retention{Topics: map[string]time.Duration{"z": time.Hour}}
						for range 10 {
							e, err := s.Expire(ctx, r, time.Now().Add(2*time.Hour), 1000)
							if err != nil {
								t.Fatal(err)
							}
							if !e.More {
								break
							}
						}
					}
					before := allRows(t, s)
					lastBefore := lastSeq(t, s)
					var maxBefore int64
					if len(before) > 0 {
						maxBefore = before[len(before)-1].seq
					}
					if explicit != (maxBefore < lastBefore) {
						t.Fatalf("setup: max(seq) %d, last_seq %d, explicit %v", maxBefore, lastBefore, explicit)
					}
					stBefore, err := s.Stats(ctx)
					if err != nil {
						t.Fatal(err)
					}
					var batch []uts.Event
					var want []uts.Outcome
					var newKeys []uts.Key
					for i := range n {
						switch {
						case stored(i) && i%3 == 2:
							batch = append(batch, edgeEvent(fmt.Sprint("t", i%3), fmt.Sprint(i), `{"v":1}`))
							want = append(want, uts.OutcomeConflict)
						case stored(i):
							batch = append(batch, edgeEvent(fmt.Sprint("t", i%3), fmt.Sprint(i), `{"v":0}`))
							want = append(want, uts.OutcomeDuplicate)
						default:
							batch = append(batch, edgeEvent(fmt.Sprint("t", i%3), fmt.Sprint(i), `{"v":0}`))
							want = append(want, uts.OutcomeNew)
							newKeys = append(newKeys, batch[i].Key())
						}
					}
					appendWanting(t, ctx, s, batch, want)
					after := allRows(t, s)
					if len(after) != len(before)+len(newKeys) {
						t.Fatalf("%d rows after, %d before, %d new", len(after), len(before), len(newKeys))
					}
					fresh := after[len(before):]
					prev := max(maxBefore, lastBefore)
					for j, r := range fresh {
						if r.key != newKeys[j] {
							t.Fatalf("row %d past the old end is %v, want %v (batch order)", j, r.key, newKeys[j])
						}
						if r.seq <= prev {
							t.Fatalf("row %v seq %d not after %d", r.key, r.seq, prev)
						}
						if !explicit && r.seq != prev+1 {
							t.Fatalf("implicit: row %v seq %d, want %d", r.key, r.seq, prev+1)
						}
						prev = r.seq
					}
					lastAfter := lastSeq(t, s)
					if lastAfter < prev || (len(newKeys) == 0 && lastAfter != lastBefore) {
						t.Fatalf("last_seq %d after, %d before, greatest seq %d", lastAfter, lastBefore, prev)
					}
					st, err := s.Stats(ctx)
					if err != nil {
						t.Fatal(err)
					}
					tl := uts.TallyOf(want)
					if st.Received != stBefore.Received+int64(n) || st.UniqueProcessed != stBefore.UniqueProcessed+int64(tl.Unique) ||
						st.DuplicateDropped != stBefore.DuplicateDropped+int64(tl.Duplicates) ||
						st.DuplicateConflicts != stBefore.DuplicateConflicts+int64(tl.Conflicts) {
						t.Fatalf("counters %+v, before %+v, tally %+v", st.Counters, stBefore.Counters, tl)
					}
					// The same batch again: everything a duplicate or conflict now, nothing stored.
					out, err := s.Append(ctx, batch)
					if err != nil {
						t.Fatal(err)
					}
					for i, o := range out {
						w := want[i]
						if w == uts.OutcomeNew {
							w = uts.OutcomeDuplicate
						}
						if o != w {
							t.Fatalf("again: outcome %d %v, want %v", i, o, w)
						}
					}
					if again := allRows(t, s); len(again) != len(after) {
						t.Fatalf("again stored %d rows", len(again)-len(after))
					}
					// A fresh key after: seq past all handed out.
					if _, err := s.Append(ctx, []uts.Event{edgeEvent("n", "n", `{}`)}); err != nil {
						t.Fatal(err)
					}
					end := allRows(t, s)
					if end[len(end)-1].seq <= prev {
						t.Fatalf("next new seq %d not after %d", end[len(end)-1].seq, prev)
					}
				})
			}
		}
	}
}

// TestInsertKeepsOddKeysApart: keys whose bytes differ only in case, in Unicode normalization, by NUL
// bytes, in invalid UTF-8, empty, or long enough to spill onto overflow pages, mixed with
// stored keys so that markTaken compares each read-back row with the batch.
func TestInsertKeepsOddKeysApart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	long := strings.Repeat("x", 9000)
	keys := [][2]string{
		{"t", "a"}, {"t", "A"}, {"T", "a"},
		{"t", "\u00e9"}, {"t", "e\u0301"}, // NFC, NFD
		{"t", "a\x00"}, {"t", "a\x00b"}, {"t", "\x00"}, {"t\x00", "a"}, {"t", "a\x00\x00"},
		{"t", "\xff\xfe"}, {"t", "\xc3"}, {"t", "\xed\xa0\x80"}, // invalid UTF-8, a surrogate
		{"", ""}, {"", "a"}, {"t", ""},
		{long, long}, {long, long + "y"}, {long + "\x00", long},
		{"t", "\ufeffa"}, {"t", " a"}, {"t", "a "},
	}
	for _, explicit := range []bool{false, true} {
		for mask := range 4 {
			t.Run(fmt.Sprintf("explicit=%v/mask=%d", explicit, mask), func(t *testing.T) {
				s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				var pre []uts.Event
				isStored := func(i int) bool { return (i+mask)%3 == 0 }
				for i, k := range keys {
					if isStored(i) {
						pre = append(pre, edgeEvent(k[0], k[1], `{}`))
					}
				}
				if _, err := s.Append(ctx, pre); err != nil {
					t.Fatal(err)
				}
				if explicit {
					if _, err := s.Append(ctx, []uts.Event{edgeEvent("zz", "1", `{}`)}); err != nil {
						t.Fatal(err)
					}
					if _, err := s.Expire(ctx, uts.Retention{Topics: map[string]time.Duration{"zz": time.Hour}}, time.Now().Add(2*time.Hour), 1000); err != nil {
						t.Fatal(err)
					}
				}
				before := allRows(t, s)
				var batch []uts.Event
				var want []uts.Outcome
				for i, k := range keys {
					batch = append(batch, edgeEvent(k[0], k[1], `{}`))
					if isStored(i) {
						want = append(want, uts.OutcomeDuplicate)
					} else {
						want = append(want, uts.OutcomeNew)
					}
				}
				// An in-batch duplicate of each, with other content: a conflict with the first.
				for _, k := range keys {
					batch = append(batch, edgeEvent(k[0], k[1], `{"x":1}`))
					want = append(want, uts.OutcomeConflict)
				}
				appendWanting(t, ctx, s, batch, want)
				after := allRows(t, s)
				var wantKeys []uts.Key
				for i, k := range keys {
					if !isStored(i) {
						wantKeys = append(wantKeys, uts.Key{Topic: k[0], EventID: k[1]})
					}
				}
				var got []uts.Key
				for _, r := range after[len(before):] {
					got = append(got, r.key)
				}
				if !slices.Equal(got, wantKeys) {
					t.Fatalf("stored %q\nwant %q", got, wantKeys)
				}
			})
		}
	}
}

// TestInsertUnderConcurrentAppendsExpiryAndCancels: goroutines append overlapping keys, in large
// batches so that chunks meet stored keys, while one expires the topic holding the newest
// events and others cancel their Appends at random moments; afterwards each key is stored
// at most once, seq strictly increasing, and Received = Unique + Duplicates.
func TestInsertUnderConcurrentAppendsExpiryAndCancels(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 25 {
				n := []int{1, 33, 257, 300}[(w+r)%4]
				events := make([]uts.Event, n)
				for i := range events {
					topic := "a"
					if (i+r)%5 == 0 {
						topic = "z"
					}
					events[i] = edgeEvent(topic, fmt.Sprint((i*7+r*13+w)%700), `{}`)
				}
				actx, acancel := context.WithCancel(ctx)
				if w%2 == 1 && r%3 == 0 {
					time.AfterFunc(time.Duration(r)*100*time.Microsecond, acancel)
				}
				out, err := s.Append(actx, events)
				acancel()
				if err != nil {
					if actx.Err() == nil || ctx.Err() != nil {
						errs <- fmt.Errorf("worker %d round %d: %w", w, r, err)
						return
					}
					continue
				}
				if len(out) != n {
					errs <- fmt.Errorf("%d outcomes for %d", len(out), n)
					return
				}
				if w == 0 && r%4 == 3 {
					if _, err := s.Expire(ctx, uts.Retention{Topics: map[string]time.Duration{"z": time.Hour}}, time.Now().Add(2*time.Hour), 10000); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rows := allRows(t, s)
	seen := make(map[uts.Key]bool)
	for i, r := range rows {
		if seen[r.key] {
			t.Fatalf("%v stored twice", r.key)
		}
		seen[r.key] = true
		if i > 0 && r.seq <= rows[i-1].seq {
			t.Fatalf("seq %d after %d", r.seq, rows[i-1].seq)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != st.UniqueProcessed+st.DuplicateDropped || st.Stored != int64(len(rows)) {
		t.Fatalf("counters %+v, stored %d, rows %d", st.Counters, st.Stored, len(rows))
	}
	if last := lastSeq(t, s); len(rows) > 0 && last < rows[len(rows)-1].seq {
		t.Fatalf("last_seq %d behind max(seq) %d", last, rows[len(rows)-1].seq)
	}
}
