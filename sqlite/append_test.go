package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/storetest"
)

// model is what the store must hold: each key's content variant, whether its event expired,
// the deliveries recorded, the counters, and every seq ever handed out.
type model struct {
	t         *testing.T
	keys      map[uts.Key]*modelKey
	delivered map[string]bool
	counters  uts.Counters
	seqs      map[int64]uts.Key // every seq ever seen, with its key
	maxSeq    int64
}

type modelKey struct {
	variant int
	expired bool
}

func newModel(t *testing.T) *model {
	return &model{t: t, keys: make(map[uts.Key]*modelKey), delivered: make(map[string]bool), seqs: make(map[int64]uts.Key)}
}

func variantEvent(topic, id string, variant int) uts.Event {
	return uts.Event{Topic: topic, EventID: id, Timestamp: time.Unix(1700000000, 7).UTC(), Source: "review",
		Payload: []byte(fmt.Sprintf(`{"v":%d}`, variant))}
}

func variantOf(e uts.Event) int {
	var v int
	if _, err := fmt.Sscanf(string(e.Payload), `{"v":%d}`, &v); err != nil {
		panic(err)
	}
	return v
}

// expect computes the outcomes of a batch and applies it to the model.
func (m *model) expect(events []uts.Event) []uts.Outcome {
	out := make([]uts.Outcome, len(events))
	redelivered := make(map[string]bool)
	for _, e := range events {
		if e.Delivery != "" && m.delivered[e.Delivery] {
			redelivered[e.Delivery] = true
		}
	}
	for i, e := range events {
		if redelivered[e.Delivery] {
			out[i] = uts.OutcomeDuplicate
			continue
		}
		m.counters.Received++
		k, ok := m.keys[e.Key()]
		switch {
		case !ok:
			m.keys[e.Key()] = &modelKey{variant: variantOf(e)}
			out[i] = uts.OutcomeNew
			m.counters.UniqueProcessed++
		case k.variant == variantOf(e):
			out[i] = uts.OutcomeDuplicate
			m.counters.DuplicateDropped++
		default:
			out[i] = uts.OutcomeConflict
			m.counters.DuplicateDropped++
			m.counters.DuplicateConflicts++
		}
	}
	for _, e := range events {
		if e.Delivery != "" {
			m.delivered[e.Delivery] = true
		}
	}
	return out
}

// check compares the store with the model: counters, the stored keys and their content, and
// seq that never repeats and only grows (newKeys are the keys the last Append stored).
func (m *model) check(s uts.Store, newKeys []uts.Key) {
	t := m.t
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters != m.counters {
		t.Fatalf("counters %+v, want %+v", st.Counters, m.counters)
	}
	var all []uts.StoredEvent
	q := uts.EventQuery{Limit: 1000}
	for range 1000 {
		page, err := s.Events(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		q.After = page[len(page)-1].Cursor
	}
	var stored int
	for _, k := range m.keys {
		if !k.expired {
			stored++
		}
	}
	if len(all) != stored || st.Stored != int64(stored) {
		t.Fatalf("the feed holds %d events, Stats.Stored %d; the model %d", len(all), st.Stored, stored)
	}
	isNew := make(map[uts.Key]bool, len(newKeys))
	for _, k := range newKeys {
		isNew[k] = true
	}
	prevMax := m.maxSeq
	var last int64
	for _, e := range all {
		k := m.keys[e.Key()]
		if k == nil || k.expired {
			t.Fatalf("stored %v, which the model does not hold", e.Key())
		}
		if variantOf(e.Event) != k.variant {
			t.Fatalf("%v stored with variant %d, want %d", e.Key(), variantOf(e.Event), k.variant)
		}
		seq := e.Cursor.Seq
		if seq <= last {
			t.Fatalf("seq %d after %d in the feed", seq, last)
		}
		last = seq
		if was, ok := m.seqs[seq]; ok && was != e.Key() {
			t.Fatalf("seq %d handed out again: %v, then %v", seq, was, e.Key())
		}
		if isNew[e.Key()] {
			if seq <= prevMax {
				t.Fatalf("new %v got seq %d, not after %d seen before", e.Key(), seq, prevMax)
			}
		} else if _, ok := m.seqs[seq]; !ok {
			t.Fatalf("%v has seq %d, never seen, but was not new", e.Key(), seq)
		}
		m.seqs[seq] = e.Key()
		m.maxSeq = max(m.maxSeq, seq)
	}
}

// expire expires every stored event of topics (all when none) and marks them in the model.
func (m *model) expire(s uts.Store, topics ...string) {
	r := uts.Retention{Events: time.Hour}
	if len(topics) > 0 {
		r = uts.Retention{Topics: map[string]time.Duration{}}
		for _, tp := range topics {
			r.Topics[tp] = time.Hour
		}
	}
	storetest.ExpireAll(m.t, s, r, time.Now().Add(2*time.Hour), 100)
	for k, mk := range m.keys {
		if len(topics) == 0 || slices.Contains(topics, k.Topic) {
			mk.expired = true
		}
	}
}

// randomBatch draws n events from a pool of keys: new ones, stored ones, expired ones, some
// repeated within the batch, some with other content, some in units of a delivery, and
// some units that are redeliveries of earlier ones.
func randomBatch(rng *rand.Rand, n int, topics []string, pool int, round int, earlier [][]uts.Event) []uts.Event {
	events := make([]uts.Event, 0, n)
	for len(events) < n {
		var e uts.Event
		if len(events) > 0 && rng.IntN(6) == 0 {
			e = events[rng.IntN(len(events))] // an in-batch duplicate, perhaps of another chunk
			e.Delivery = ""
			if rng.IntN(4) == 0 {
				e.Payload = []byte(fmt.Sprintf(`{"v":%d}`, 1-variantOf(e)))
			}
		} else {
			v := 0
			if rng.IntN(8) == 0 {
				v = 1
			}
			e = variantEvent(topics[rng.IntN(len(topics))], fmt.Sprint(rng.IntN(pool)), v)
		}
		events = append(events, e)
	}
	// Units of deliveries over part of the batch.
	if rng.IntN(2) == 0 {
		for i := 0; i < len(events); {
			size := 1 + rng.IntN(5)
			if rng.IntN(3) == 0 {
				i += size
				continue
			}
			d := fmt.Sprintf("%d-%d", round, i)
			for j := i; j < min(i+size, len(events)); j++ {
				events[j].Delivery = d
			}
			i += size
		}
	}
	// A redelivery of an earlier batch's units, whole, in front.
	if len(earlier) > 0 && rng.IntN(3) == 0 {
		prev := earlier[rng.IntN(len(earlier))]
		var again []uts.Event
		for i := 0; i < len(prev); i++ {
			if prev[i].Delivery != "" && (i == 0 || prev[i-1].Delivery != prev[i].Delivery) {
				if rng.IntN(2) == 0 {
					for j := i; j < len(prev) && prev[j].Delivery == prev[i].Delivery; j++ {
						again = append(again, prev[j])
					}
				}
			}
		}
		events = append(again, events...)
	}
	return events
}

func runModel(t *testing.T, path string, seed uint64) {
	m := newModel(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	s := open(t, path)
	defer func() { s.Close() }()
	sizes := []int{1, 2, 25, 31, 32, 33, 63, 64, 65, 257, 1000}
	topics := []string{"a", "b", "c"}
	var earlier [][]uts.Event
	for round := range 60 {
		n := sizes[rng.IntN(len(sizes))]
		ts := topics
		if rng.IntN(4) == 0 {
			ts = topics[2:] // only c, so that c holds the newest events
		}
		events := randomBatch(rng, n, ts, 1500, round, earlier)
		want := m.expect(events)
		got, err := s.Append(t.Context(), events)
		if err != nil {
			t.Fatalf("round %d: Append(%d): %v", round, len(events), err)
		}
		if !slices.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("round %d (%d events): outcome %d (%v, delivery %q) = %v, want %v",
						round, len(events), i, events[i].Key(), events[i].Delivery, got[i], want[i])
				}
			}
		}
		var newKeys []uts.Key
		for i, o := range want {
			if o == uts.OutcomeNew {
				newKeys = append(newKeys, events[i].Key())
			}
		}
		m.check(s, newKeys)
		earlier = append(earlier, events)
		switch rng.IntN(6) {
		case 0:
			m.expire(s)
		case 1:
			m.expire(s, "c")
		case 2:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, path)
			m.check(s, nil)
		}
	}
}

// TestAppendAgainstModel appends random batches mixing new keys, retries, conflicts,
// in-batch duplicates across chunks, expired keys and redelivered units, expiring and
// reopening in between, and checks outcomes, counters, stored rows and seq after each.
func TestAppendAgainstModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runModel(t, filepath.Join(t.TempDir(), "events.db"), seed)
		})
	}
}

// TestSixteenKiBPages: a file created by the versions that used 16 KiB pages keeps them, and
// works as a new one does.
func TestSixteenKiBPages(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; CREATE TABLE x (y); DROP TABLE x`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	runModel(t, path, 42)
	db, err = sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil || size != 16384 {
		t.Fatalf("page_size %d, %v; want the file's 16384 kept", size, err)
	}

	// A new file gets 4 KiB pages.
	fresh := filepath.Join(t.TempDir(), "events.db")
	open(t, fresh).Close()
	db2, err := sql.Open("sqlite3", "file:"+fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil || size != 4096 {
		t.Fatalf("page_size of a new file %d, %v; want 4096", size, err)
	}
}

// TestConcurrentOverlappingAppends appends overlapping keys from several goroutines, some as
// redeliveries of each other's units, and checks that every key is stored once, that the
// outcomes and counters add up, and that seq is unique.
func TestConcurrentOverlappingAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path)
	defer s.Close()
	const workers, rounds = 4, 15
	var mu sync.Mutex
	var total uts.Tally
	var received int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for r := range rounds {
				n := []int{3, 31, 33, 65, 257}[rng.IntN(5)] // at least the unit of 3
				events := make([]uts.Event, n)
				for i := range events {
					events[i] = variantEvent("t", fmt.Sprint(rng.IntN(600)), 0)
					// The same delivery in every worker for a round's first unit: one of them
					// records it, the others are redeliveries.
					if i < 3 {
						events[i] = variantEvent("t", fmt.Sprintf("d%d-%d", r, i), 0)
						events[i].Delivery = fmt.Sprintf("r%d", r)
					}
				}
				if w == 0 && r%5 == 4 {
					if _, err := s.Expire(t.Context(), uts.Retention{Events: time.Hour}, time.Now().Add(2*time.Hour), 1000); err != nil {
						errs <- err
						return
					}
				}
				out, err := s.Append(t.Context(), events)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				tl := uts.TallyOf(out)
				total.Unique += tl.Unique
				total.Duplicates += tl.Duplicates
				total.Conflicts += tl.Conflicts
				received += int64(n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Redelivered units are answered duplicate but not counted: 3 events per round for
	// every worker but the one that recorded it.
	skipped := int64(3 * rounds * (workers - 1))
	if st.Received != received-skipped || st.UniqueProcessed != int64(total.Unique) ||
		st.DuplicateDropped != int64(total.Duplicates)-skipped || st.DuplicateConflicts != 0 ||
		st.Received != st.UniqueProcessed+st.DuplicateDropped {
		t.Fatalf("counters %+v; outcomes %+v of %d received, %d of them redelivered", st.Counters, total, received, skipped)
	}
	events, err := s.Events(t.Context(), uts.EventQuery{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(events)) != st.Stored {
		t.Fatalf("feed holds %d, Stored %d", len(events), st.Stored)
	}
	seen := make(map[uts.Key]bool)
	for i, e := range events {
		if seen[e.Key()] {
			t.Fatalf("%v stored twice", e.Key())
		}
		seen[e.Key()] = true
		if i > 0 && e.Cursor.Seq <= events[i-1].Cursor.Seq {
			t.Fatalf("seq %d after %d", e.Cursor.Seq, events[i-1].Cursor.Seq)
		}
	}
}

func (m *model) clone() *model {
	c := *m
	c.keys = make(map[uts.Key]*modelKey, len(m.keys))
	for k, v := range m.keys {
		vv := *v
		c.keys[k] = &vv
	}
	c.delivered = make(map[string]bool, len(m.delivered))
	for k, v := range m.delivered {
		c.delivered[k] = v
	}
	return &c
}

// TestInterruptedAppends cancels Appends of large batches, with deliveries, after random
// delays, so that some are interrupted inside the lookup, the INSERT (whose OR ROLLBACK and
// interrupt give the whole transaction up) or the deliveries' INSERT: each Append either
// committed whole or left nothing, deliveries included, and the next ones go on.
func TestInterruptedAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	m := newModel(t)
	rng := rand.New(rand.NewPCG(9, 9))
	s := open(t, path)
	defer func() { s.Close() }()
	var earlier [][]uts.Event
	var failed, done int
	took := 20 * time.Millisecond
	for round := range 40 {
		events := randomBatch(rng, 1000, []string{"a", "b"}, 20000, round, earlier)
		ctx, cancel := context.WithCancel(t.Context())
		// Up to twice as long as the last committed Append took, longer after each interrupted
		// one, however slow the machine.
		timer := time.AfterFunc(time.Duration(rng.Int64N(int64(2*took)+1)), cancel)
		before := m.clone()
		want := m.expect(events)
		start := time.Now()
		got, err := s.Append(ctx, events)
		timer.Stop()
		cancel()
		if err == nil {
			took = time.Since(start)
		} else {
			took += took / 2
		}
		if err != nil {
			failed++
			m = before
			earlier = append(earlier, events) // its deliveries were not recorded: new next time
		} else {
			done++
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: outcomes differ from the model", round)
			}
			earlier = append(earlier, events)
		}
		var newKeys []uts.Key
		if err == nil {
			for i, o := range want {
				if o == uts.OutcomeNew {
					newKeys = append(newKeys, events[i].Key())
				}
			}
		}
		m.check(s, newKeys)
		if round%10 == 9 {
			m.expire(s)
		}
	}
	t.Logf("%d Appends interrupted, %d committed", failed, done)
	if failed == 0 {
		t.Fatalf("%d interrupted, %d committed: the delays missed", failed, done)
	}
}
