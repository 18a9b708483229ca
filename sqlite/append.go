package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/uts-events/uts"
)

// Append stores the batch in one transaction; see uts.Store.
//
// The batch's distinct keys go in with multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING:
// the unique index decides what is new, and the returned keys say which rows it took.
// For a key it refused, the stored content hash tells a retry from a conflict. Deliveries
// go in first, the same way, and an event whose delivery was recorded before is left out
// of the rest (see deliveries.go).
func (s *Store) Append(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	if len(events) == 0 {
		return []uts.Outcome{}, nil
	}
	for i, e := range events {
		if e.Timestamp.Before(minTime) || e.Timestamp.After(maxTime) {
			return nil, &uts.Error{Kind: uts.KindInvalid, Message: "timestamp out of range",
				Details: []uts.FieldError{{Index: i, Field: "timestamp", Message: "must be between years 1678 and 2262"}}}
		}
	}
	delivered, err := checkDeliveries(events)
	if err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	if s.closed.Load() {
		return nil, uts.Unavailable("sqlite: store is closed", nil)
	}

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, classify(ctx, "append: begin", err)
	}
	defer tx.Rollback()

	processedAt := time.Now().UnixNano()
	fresh, positions := events, []int(nil)
	if delivered {
		redelivered, err := s.writes.recordDeliveries(ctx, tx, events, processedAt)
		if err != nil {
			return nil, classify(ctx, "append: record deliveries", err)
		}
		fresh, positions = counted(events, redelivered)
	}
	outcomes, err := s.appendFresh(ctx, tx, fresh, processedAt)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, classify(ctx, "append: commit", err)
	}
	if positions == nil {
		return outcomes, nil
	}
	// Delivered before: stored and counted then, a duplicate now.
	all := make([]uts.Outcome, len(events))
	for i := range all {
		all[i] = uts.OutcomeDuplicate
	}
	for j, i := range positions {
		all[i] = outcomes[j]
	}
	return all, nil
}

// appendFresh stores and counts events in tx, none of them delivered before.
func (s *Store) appendFresh(ctx context.Context, tx *sql.Tx, events []uts.Event, processedAt int64) ([]uts.Outcome, error) {
	if len(events) == 0 {
		return nil, nil
	}
	batch := newBatch(events)
	if err := s.writes.insert(ctx, tx, batch, processedAt); err != nil {
		return nil, classify(ctx, "append: insert", err)
	}
	outcomes := batch.outcomes()
	if err := s.writes.addCounts(ctx, tx, events, outcomes, processedAt); err != nil {
		return nil, classify(ctx, "append: count", err)
	}
	return outcomes, nil
}

// Timestamps are stored as int64 unix nanoseconds, which span these instants.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// DeadLetter counts n events that a broker gave up on.
func (s *Store) DeadLetter(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if s.closed.Load() {
		return uts.Unavailable("sqlite: store is closed", nil)
	}
	_, err := s.write.ExecContext(ctx,
		`UPDATE counters SET received = received + ?1, dead_lettered = dead_lettered + ?1 WHERE id = 1`, n)
	if err != nil {
		return classify(ctx, "dead letter", err)
	}
	return nil
}

// lock waits for the writer, or for ctx to end.
func (s *Store) lock(ctx context.Context) error {
	select {
	case s.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sqlite: waiting to write: %w", ctx.Err())
	}
}

func (s *Store) unlock() { <-s.writing }

// batch follows one Append's events through the insert.
type batch struct {
	events []uts.Event
	hashes []string
	// first maps each key to the index of its first occurrence, the one that may be new.
	first map[uts.Key]int
	// distinct lists first occurrences in batch order, the order they are inserted in.
	distinct []int
	// inserted marks the first occurrences that the database took.
	inserted []bool
	// conflicting holds the stored hash of each key the database refused because it holds
	// other content; a refused key missing here holds this batch's content (a retry).
	conflicting map[uts.Key]string
}

func newBatch(events []uts.Event) *batch {
	b := &batch{
		events:      events,
		hashes:      make([]string, len(events)),
		first:       make(map[uts.Key]int, len(events)),
		distinct:    make([]int, 0, len(events)),
		inserted:    make([]bool, len(events)),
		conflicting: make(map[uts.Key]string),
	}
	for i, e := range events {
		b.hashes[i] = e.ContentHash()
		if _, seen := b.first[e.Key()]; !seen {
			b.first[e.Key()] = i
			b.distinct = append(b.distinct, i)
		}
	}
	return b
}

// outcomes compares every occurrence that was not stored with what is stored under its key.
// A later occurrence of a key new in this batch compares with the first occurrence, which
// is what got stored.
func (b *batch) outcomes() []uts.Outcome {
	outcomes := make([]uts.Outcome, len(b.events))
	for i, e := range b.events {
		first := b.first[e.Key()]
		var stored string
		switch {
		case first == i && b.inserted[i]:
			outcomes[i] = uts.OutcomeNew
			continue
		default:
			stored = b.hashes[first] // stored by this batch, or already stored with this content
			if hash, other := b.conflicting[e.Key()]; other {
				stored = hash
			}
		}
		if b.hashes[i] == stored {
			outcomes[i] = uts.OutcomeDuplicate
		} else {
			outcomes[i] = uts.OutcomeConflict
		}
	}
	return outcomes
}

// topicCount is one topic's share of a batch.
type topicCount struct {
	uts.Tally
	last int64
}

// addCounts moves the counters and the per-topic totals in the insert's transaction.
func (w *writeStatements) addCounts(ctx context.Context, tx *sql.Tx, events []uts.Event, outcomes []uts.Outcome, processedAt int64) error {
	total := uts.TallyOf(outcomes)
	_, err := tx.StmtContext(ctx, w.addCounters).ExecContext(ctx, len(events), total.Unique, total.Duplicates, total.Conflicts)
	if err != nil {
		return err
	}

	topics := make(map[string]*topicCount)
	var order []string
	for i, e := range events {
		c := topics[e.Topic]
		if c == nil {
			c = &topicCount{}
			topics[e.Topic] = c
			order = append(order, e.Topic)
		}
		switch outcomes[i] {
		case uts.OutcomeNew:
			c.Unique++
			c.last = processedAt
		case uts.OutcomeConflict:
			c.Conflicts++
			c.Duplicates++
		default:
			c.Duplicates++
		}
	}
	addTopic := tx.StmtContext(ctx, w.addTopic)
	for _, topic := range order {
		c := topics[topic]
		if _, err := addTopic.ExecContext(ctx, topic, c.Unique, c.Duplicates, c.Conflicts, c.last); err != nil {
			return fmt.Errorf("topic %q: %w", topic, err)
		}
	}
	return nil
}
