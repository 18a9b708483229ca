package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/storetest"
)

func event(topic, id, content string) uts.Event {
	return uts.Event{
		Topic:     topic,
		EventID:   id,
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Source:    "postgres-test",
		Payload:   []byte(`{"content":"` + content + `"}`),
	}
}

// TestConcurrentOverlappingWriters has 8 writers append overlapping keys, some with their own
// content, so that retries and conflicts race each other. Every outcome must agree with what
// ended up stored, and the counters with the outcomes.
func TestConcurrentOverlappingWriters(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	const (
		writers   = 8
		batches   = 6
		batchSize = 150
		keySpace  = 400
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	type sent struct {
		event   uts.Event
		outcome uts.Outcome
	}
	var (
		mu      sync.Mutex
		results []sent
		wg      sync.WaitGroup
		errs    = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range batches {
				batch := make([]uts.Event, batchSize)
				for i := range batch {
					k := rng.IntN(keySpace)
					content := "same"
					if rng.IntN(10) == 0 {
						content = fmt.Sprintf("writer-%d", w) // a conflicting producer
					}
					batch[i] = event(fmt.Sprintf("topic-%d", k%5), fmt.Sprintf("id-%d", k), content)
				}
				outcomes, err := s.Append(ctx, batch)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for i, o := range outcomes {
					results = append(results, sent{batch[i], o})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}

	// The feed holds back events above the oldest transaction in flight in the database, and
	// other tests' transactions run in it too (a stall test holds one for seconds): the feed
	// is then late, never wrong. So the listing is read again until it holds every key
	// appended, or a minute has passed and the check below names the missing one.
	var stored map[uts.Key]uts.StoredEvent
	listAll := func() error {
		stored = make(map[uts.Key]uts.StoredEvent)
		for q := (uts.EventQuery{Limit: 500}); ; {
			page, err := s.Events(ctx, q)
			if err != nil {
				t.Fatalf("Events: %v", err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				if _, dup := stored[e.Key()]; dup {
					t.Fatalf("%v stored twice", e.Key())
				}
				stored[e.Key()] = e
			}
			q.After = page[len(page)-1].Cursor
		}
		for _, r := range results {
			if _, ok := stored[r.event.Key()]; !ok {
				return fmt.Errorf("%v not listed yet", r.event.Key())
			}
		}
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for listAll() != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}

	var want uts.Counters
	newOf := make(map[uts.Key]int)
	for _, r := range results {
		want.Received++
		st, ok := stored[r.event.Key()]
		if !ok {
			t.Fatalf("%v was appended but is not stored", r.event.Key())
		}
		same := st.ContentHash() == r.event.ContentHash()
		switch r.outcome {
		case uts.OutcomeNew:
			newOf[r.event.Key()]++
			want.UniqueProcessed++
			if !same {
				t.Errorf("%v: new, but another content is stored", r.event.Key())
			}
		case uts.OutcomeDuplicate:
			want.DuplicateDropped++
			if !same {
				t.Errorf("%v: duplicate, but another content is stored", r.event.Key())
			}
		case uts.OutcomeConflict:
			want.DuplicateDropped++
			want.DuplicateConflicts++
			if same {
				t.Errorf("%v: conflict, but the same content is stored", r.event.Key())
			}
		default:
			t.Fatalf("%v: outcome %v", r.event.Key(), r.outcome)
		}
	}
	for key := range stored {
		if newOf[key] != 1 {
			t.Errorf("%v was new %d times", key, newOf[key])
		}
	}
	got, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if got.Counters != want {
		t.Errorf("counters = %+v, want %+v (from the outcomes)", got.Counters, want)
	}
}

// TestNoDeadlock has many batches insert the same new keys at once, each batch in its own
// order, round after round. Batches that locked keys in batch order would deadlock, and
// PostgreSQL would abort one of them.
func TestNoDeadlock(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	s, err := postgres.Open(t.Context(), u+"&pool_max_conns=12")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	const (
		writers   = 12
		rounds    = 8
		batchSize = 300
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, writers*rounds)
	for r := range rounds {
		keys := make([]uts.Event, batchSize)
		for i := range keys {
			keys[i] = event(fmt.Sprintf("t%d", i%7), fmt.Sprintf("r%d-k%d", r, i), "x")
		}
		var wg sync.WaitGroup
		for w := range writers {
			batch := append([]uts.Event(nil), keys...)
			rng := rand.New(rand.NewPCG(uint64(w), uint64(r)))
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			wg.Go(func() {
				if _, err := s.Append(ctx, batch); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Errorf("Append: %v", err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	received := int64(writers * rounds * batchSize)
	unique := int64(rounds * batchSize)
	want := uts.Counters{Received: received, UniqueProcessed: unique, DuplicateDropped: received - unique}
	if st.Counters != want {
		t.Errorf("counters = %+v, want %+v", st.Counters, want)
	}
}

// TestKeyCommittedAfterSnapshot makes the race the package documentation describes happen on
// purpose: another transaction holds a key uncommitted, Append's statement starts (its
// snapshot cannot see the key) and waits on the key, the other transaction commits. Append
// must still tell a retry from a conflict by the content that was committed.
func TestKeyCommittedAfterSnapshot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		stored   string
		outcomes []uts.Outcome
		want     uts.Counters
	}{
		{"retry", "a", []uts.Outcome{uts.OutcomeDuplicate, uts.OutcomeNew},
			uts.Counters{Received: 2, UniqueProcessed: 1, DuplicateDropped: 1}},
		{"conflict", "b", []uts.Outcome{uts.OutcomeConflict, uts.OutcomeNew},
			uts.Counters{Received: 2, UniqueProcessed: 1, DuplicateDropped: 1, DuplicateConflicts: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, u := openStore(t)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()

			// The other writer: a second store's own statement would commit at once, so this
			// one inserts the row by hand and holds it.
			other, tx, xid := holdEvent(t, ctx, u, event("t", "k", tc.stored))

			done := appendAsync(ctx, s, event("t", "k", "a"), event("t", "fresh", "a"))
			waitForLockWaiter(t, ctx, other, xid)
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
			wantAppended(t, ctx, s, done, tc.outcomes, tc.want)
		})
	}
}

// waitForLockWaiter returns once some session waits for transaction xid.
func waitForLockWaiter(t *testing.T, ctx context.Context, conn *pgx.Conn, xid string) {
	t.Helper()
	watcher, err := pgx.ConnectConfig(ctx, conn.Config())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer watcher.Close(context.Background())
	for range 1000 {
		var waiting bool
		err := watcher.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'transactionid' AND NOT granted AND transactionid::text = $1)`, xid).Scan(&waiting)
		if err != nil {
			t.Fatalf("pg_locks: %v", err)
		}
		if waiting {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no session waited for transaction %s", xid)
}

// checkGenericPlan fails the test when the generic plan joins by nested loops.
func checkGenericPlan(t *testing.T, plan string, err error) {
	t.Helper()
	if errors.Is(err, postgres.ErrNoAutoExplain) {
		t.Skipf("the generic plan is read through auto_explain: %v", err)
	}
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	if !strings.Contains(plan, "Insert on events") || !strings.Contains(plan, "rows=10 ") {
		t.Fatalf("not the generic plan of the append (it guesses 10 rows per array):\n%s", plan)
	}
	if strings.Contains(plan, "Nested Loop") {
		t.Fatalf("the plan joins by nested loops:\n%s", plan)
	}
}

// TestAppendPlanIsLinear guards against the planner joining the batch's CTEs by nested loops,
// which a generic plan (it guesses 10 rows per array) chooses and which is quadratic in the
// batch size.
func TestAppendPlanIsLinear(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	plan, err := s.ExplainAppend(t.Context(), []uts.Event{event("t", "a", "x"), event("t", "a", "y")})
	checkGenericPlan(t, plan, err)
}

// TestDeliveryCommittedAfterSnapshot is the race of two replicas committing the same claimed
// entry: another transaction holds the delivery (and its event) uncommitted when Append's
// statement starts. If it commits, Append must leave the event uncounted, and a later event
// of the same key in the batch must still find the stored content; if it rolls back, Append
// must count the event as its own.
func TestDeliveryCommittedAfterSnapshot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		commit   bool
		outcomes []uts.Outcome
		want     uts.Counters
	}{
		{"commit", true, []uts.Outcome{uts.OutcomeDuplicate, uts.OutcomeDuplicate, uts.OutcomeNew},
			uts.Counters{Received: 2, UniqueProcessed: 1, DuplicateDropped: 1}},
		{"rollback", false, []uts.Outcome{uts.OutcomeNew, uts.OutcomeDuplicate, uts.OutcomeNew},
			uts.Counters{Received: 3, UniqueProcessed: 2, DuplicateDropped: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, u := openStore(t)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()

			held := event("t", "k", "a")
			other, tx, xid := holdEvent(t, ctx, u, held)
			if _, err := tx.Exec(ctx, `INSERT INTO deliveries (delivery, topic, event_id) VALUES ('1-0', $1, $2)`,
				held.Topic, held.EventID); err != nil {
				t.Fatalf("insert the held delivery: %v", err)
			}

			redelivered, retry, fresh := held, held, event("t", "fresh", "a")
			redelivered.Delivery, retry.Delivery, fresh.Delivery = "1-0", "1-2", "1-1"
			done := appendAsync(ctx, s, redelivered, retry, fresh)
			waitForLockWaiter(t, ctx, other, xid)
			var err error
			if tc.commit {
				err = tx.Commit(ctx)
			} else {
				err = tx.Rollback(ctx)
			}
			if err != nil {
				t.Fatalf("end the other transaction: %v", err)
			}
			wantAppended(t, ctx, s, done, tc.outcomes, tc.want)
		})
	}
}

// TestAppendWithDeliveriesPlanIsLinear is TestAppendPlanIsLinear for a batch a Redis
// consumer commits.
func TestAppendWithDeliveriesPlanIsLinear(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	a, b := event("t", "a", "x"), event("t", "a", "y")
	a.Delivery, b.Delivery = "1-0", "1-1"
	plan, err := s.ExplainAppend(t.Context(), []uts.Event{a, b})
	checkGenericPlan(t, plan, err)
}

// TestPruneDeliveries: see storetest.PruneForgetsOldDeliveries.
func TestPruneDeliveries(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	storetest.PruneForgetsOldDeliveries(t, s, func(delivery string) {
		if _, err := conn.Exec(t.Context(), `UPDATE deliveries SET recorded_at = now() - interval '25 hours' WHERE delivery = $1`, delivery); err != nil {
			t.Fatalf("age a delivery: %v", err)
		}
	}, func(cutoff time.Time) (int64, error) { return s.PruneDeliveries(t.Context(), cutoff) })
}

// holdEvent inserts e by hand in a transaction of a connection of its own and leaves the
// transaction open, so that a store's insert of the same key waits for it to end. It returns
// the connection (to watch for waiters), the transaction and its id; both are closed when the
// test ends.
func holdEvent(t *testing.T, ctx context.Context, u string, e uts.Event) (*pgx.Conn, pgx.Tx, string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	// The fingerprint is what an append waits on; the event goes with it, as an append's.
	if _, err := tx.Exec(ctx, `INSERT INTO fingerprints (key, content, at)
		VALUES (fingerprint_key($1, $2), content_tag(decode($3, 'hex')), floor(extract(epoch FROM now()) / 60))`,
		e.Topic, e.EventID, e.ContentHash()); err != nil {
		t.Fatalf("insert the held fingerprint: %v", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO events (topic, event_id, ts, ts_nanos, source, payload, content_hash)
		VALUES ($1, $2, $3, 0, $4, $5, decode($6, 'hex'))`,
		e.Topic, e.EventID, e.Timestamp, e.Source, string(e.Payload), e.ContentHash()); err != nil {
		t.Fatalf("insert the held event: %v", err)
	}
	var xid string
	if err := tx.QueryRow(ctx, `SELECT xid(pg_current_xact_id())::text`).Scan(&xid); err != nil {
		t.Fatalf("xid: %v", err)
	}
	return conn, tx, xid
}

// TestContentsOfOneKey has one key appear with several contents in a batch, stored before
// or not, its occurrences redelivered or not: each event is compared with the content that
// won (the stored one, or else the batch's first), and the counters agree with the outcomes.
func TestContentsOfOneKey(t *testing.T) {
	t.Parallel()
	withDelivery := func(e uts.Event, d string) uts.Event { e.Delivery = d; return e }
	for _, tc := range []struct {
		name    string
		before  []uts.Event
		batch   []uts.Event
		want    string
		counted uts.Counters // the batch's alone
	}{
		{"new key", nil,
			[]uts.Event{event("t", "k", "b"), event("t", "k", "a"), event("t", "k", "b"), event("u", "k", "c")},
			"[new conflict duplicate new]",
			uts.Counters{Received: 4, UniqueProcessed: 2, DuplicateDropped: 2, DuplicateConflicts: 1}},
		{"stored key", []uts.Event{event("t", "k", "a")},
			[]uts.Event{event("t", "k", "b"), event("t", "k", "a"), event("t", "k", "b"), event("t", "k", "c"), event("t", "x", "a")},
			"[conflict duplicate conflict conflict new]",
			uts.Counters{Received: 5, UniqueProcessed: 1, DuplicateDropped: 4, DuplicateConflicts: 3}},
		{"redelivered later", []uts.Event{withDelivery(event("t", "k", "a"), "1-0")},
			[]uts.Event{withDelivery(event("t", "k", "b"), "1-1"), withDelivery(event("t", "k", "a"), "1-0"),
				withDelivery(event("t", "k", "a"), "1-2"), withDelivery(event("t", "k", "c"), "1-3")},
			"[conflict duplicate duplicate conflict]",
			uts.Counters{Received: 3, DuplicateDropped: 3, DuplicateConflicts: 2}},
		{"redelivered first", []uts.Event{withDelivery(event("t", "k", "a"), "1-0")},
			[]uts.Event{withDelivery(event("t", "k", "b"), "1-0"), withDelivery(event("t", "k", "b"), "1-1"),
				withDelivery(event("t", "k", "a"), "1-2"), event("t", "k", "a")},
			"[duplicate conflict duplicate duplicate]",
			uts.Counters{Received: 3, DuplicateDropped: 3, DuplicateConflicts: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := openStore(t)
			ctx := t.Context()
			if len(tc.before) > 0 {
				if _, err := s.Append(ctx, tc.before); err != nil {
					t.Fatalf("Append before: %v", err)
				}
			}
			st, err := s.Stats(ctx)
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			before := st.Counters
			outcomes, err := s.Append(ctx, tc.batch)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if fmt.Sprint(outcomes) != tc.want {
				t.Errorf("outcomes = %v, want %s", outcomes, tc.want)
			}
			if st, err = s.Stats(ctx); err != nil {
				t.Fatalf("Stats: %v", err)
			}
			got := uts.Counters{
				Received:           st.Counters.Received - before.Received,
				UniqueProcessed:    st.Counters.UniqueProcessed - before.UniqueProcessed,
				DuplicateDropped:   st.Counters.DuplicateDropped - before.DuplicateDropped,
				DuplicateConflicts: st.Counters.DuplicateConflicts - before.DuplicateConflicts,
			}
			if got != tc.counted {
				t.Errorf("the batch counted %+v, want %+v", got, tc.counted)
			}
		})
	}
}

// TestFailedPruningIsLogged: see storetest.FailedPruningIsLogged.
func TestFailedPruningIsLogged(t *testing.T) {
	t.Parallel()
	storetest.FailedPruningIsLogged(t, func(w io.Writer) (uts.Store, func()) {
		s, err := postgres.Open(t.Context(), testenv.PostgresSchema(t),
			postgres.WithLogger(slog.New(slog.NewTextHandler(w, nil))))
		if err != nil {
			t.Fatal(err)
		}
		return s, func() { s.Prune(t.Context(), time.Now()) }
	})
}

// appendResult is what an Append answered.
type appendResult struct {
	outcomes []uts.Outcome
	err      error
}

// appendAsync runs Append in a goroutine, for a test that holds a row the Append will wait on.
func appendAsync(ctx context.Context, s *postgres.Store, events ...uts.Event) <-chan appendResult {
	done := make(chan appendResult, 1)
	go func() {
		o, err := s.Append(ctx, events)
		done <- appendResult{o, err}
	}()
	return done
}

// wantAppended checks what the Append on done answered, and that the counters hold only its
// events: rows made by hand go around them.
func wantAppended(t *testing.T, ctx context.Context, s *postgres.Store, done <-chan appendResult, outcomes []uts.Outcome, counters uts.Counters) {
	t.Helper()
	r := <-done
	if r.err != nil {
		t.Fatalf("Append: %v", r.err)
	}
	if fmt.Sprint(r.outcomes) != fmt.Sprint(outcomes) {
		t.Fatalf("outcomes = %v, want %v", r.outcomes, outcomes)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Counters != counters {
		t.Fatalf("counters = %+v, want %+v", st.Counters, counters)
	}
}
