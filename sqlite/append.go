package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/uts-events/uts"
)

// Append stores the batch in one transaction; see uts.Store.
//
// Once retention has expired events, the batch's keys are looked up among their
// fingerprints first: a key found there is not new (see fingerprints.go). The other distinct
// keys go in with one multi-row INSERT per chunk, which skips those the events' UNIQUE index
// holds; only those are then looked up, for the stored hash (a retry if it is this batch's,
// a conflict if not; see insert). Seq is handed out from the counters' last_seq
// (see schemaV4). Deliveries go in first, and an event whose delivery was recorded before is
// left out of the rest (see deliveries.go).
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
	units := deliveryUnits(events)
	// Hashing and sorting out the batch need no lock: done here, they overlap another
	// Append's commit instead of adding to it.
	b := newBatch(events)
	if !s.seen.Empty() {
		b.fingerprint()
	}

	var outcomes []uts.Outcome
	var positions []int
	err := s.withWriter(ctx, func() error {
		return s.transaction(ctx, func() error {
			lastSeq, lastProcessedAt, maxSeq, err := s.writes.highWater()
			if err != nil {
				return classify(ctx, "append: read counters", err)
			}
			// Never before the last Append's: see schemaV4.
			processedAt := max(time.Now().UnixNano(), lastProcessedAt)
			fresh := b
			if units != nil {
				redelivered, err := s.writes.recordDeliveries(events, units, processedAt)
				if err != nil {
					return classify(ctx, "append: record deliveries", err)
				}
				fresh, positions = b.without(redelivered)
			}
			// SQLite hands out max(seq)+1, which is the next seq unless retention deleted the
			// newest events: then this batch is numbered from the high-water mark, explicitly.
			var explicitFrom int64
			if maxSeq < lastSeq {
				explicitFrom = lastSeq + 1
			}
			outcomes, err = s.appendFresh(ctx, fresh, maxSeq, explicitFrom, processedAt)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	if slices.Contains(outcomes, uts.OutcomeNew) {
		s.committed.Notify()
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

// appendFresh stores and counts the batch, none of it delivered before.
func (s *Store) appendFresh(ctx context.Context, b *batch, maxSeq, explicitFrom, processedAt int64) ([]uts.Outcome, error) {
	if len(b.events) == 0 {
		return nil, nil
	}
	if !s.seen.Empty() {
		if err := s.writes.probeFingerprints(b, s.seen); err != nil {
			return nil, classify(ctx, "append: read fingerprints", err)
		}
	}
	lastSeq, err := s.writes.insert(b, maxSeq, explicitFrom, processedAt)
	if err != nil {
		return nil, classify(ctx, "append: insert", err)
	}
	outcomes := b.outcomes()
	if err := s.writes.addCounts(b.events, outcomes, processedAt, lastSeq); err != nil {
		return nil, classify(ctx, "append: count", err)
	}
	return outcomes, nil
}

// highWater reads the greatest seq handed out, the latest processed_at (see schemaV4), and
// the greatest seq in the table: a seek to the last row.
func (w *writeStatements) highWater() (lastSeq, lastProcessedAt, maxSeq int64, err error) {
	stmt := w.readCounters
	defer stmt.Reset()
	if !stmt.Step() {
		return 0, 0, 0, errors.Join(stmt.Err(), errors.New("no counters row"))
	}
	return stmt.ColumnInt64(0), stmt.ColumnInt64(1), stmt.ColumnInt64(2), nil
}

// Timestamps are stored as int64 unix nanoseconds, which span these instants.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// DeadLetter counts n events that a broker gave up on, once per delivery; see uts.Store.
func (s *Store) DeadLetter(ctx context.Context, delivery string, n int) error {
	if n <= 0 {
		return nil
	}
	return s.withWriter(ctx, func() error {
		return s.transaction(ctx, func() error {
			if delivery != "" {
				bind := binder{stmt: s.writes.recordDeadLetter}
				bind.text(delivery)
				bind.int64(time.Now().UnixNano())
				if bind.err != nil {
					return classify(ctx, "dead letter", bind.err)
				}
				if err := s.writes.recordDeadLetter.Exec(); err != nil {
					return classify(ctx, "dead letter", err)
				}
				if s.writer.Changes() == 0 {
					return nil // counted before
				}
			}
			err := s.writes.deadLetter.BindInt64(1, int64(n))
			if err == nil {
				err = s.writes.deadLetter.Exec()
			}
			if err != nil {
				return classify(ctx, "dead letter", err)
			}
			return nil
		})
	})
}

// batch follows one Append's events through the insert.
type batch struct {
	events []uts.Event
	hashes []string
	// prints are the fingerprint keys of the first occurrences (zero for the others), and
	// byPrint finds a first occurrence by its fingerprint key; nil until fingerprint runs.
	prints  [][16]byte
	byPrint map[[16]byte]int
	// first maps each key to the index of its first occurrence, the one that may be new.
	first map[uts.Key]int
	// distinct lists first occurrences in batch order, the order they are inserted in.
	distinct []int
	// inserted marks the first occurrences that the database took, and stored those whose
	// key it held already.
	inserted []bool
	stored   []bool
	// conflicting holds the stored hash of each key found stored with other content; a key
	// found stored and missing here holds this batch's content (a retry).
	conflicting map[uts.Key]string
	// expired marks the first occurrences whose key has a fingerprint: its event expired, so
	// it is not new; expiredTag holds the fingerprint's content tag, all that is left of it.
	// Both are nil until fingerprint, which only a store with fingerprints calls.
	expired    []bool
	expiredTag map[uts.Key]uint32
}

func newBatch(events []uts.Event) *batch {
	hashes := make([]string, len(events))
	for i := range events {
		hashes[i] = events[i].ContentHash()
	}
	return sortOut(events, hashes)
}

// sortOut finds the first occurrences of events whose hashes are known.
func sortOut(events []uts.Event, hashes []string) *batch {
	b := &batch{
		events:      events,
		hashes:      hashes,
		first:       make(map[uts.Key]int, len(events)),
		distinct:    make([]int, 0, len(events)),
		inserted:    make([]bool, len(events)),
		stored:      make([]bool, len(events)),
		conflicting: make(map[uts.Key]string),
	}
	for i, e := range events {
		if _, seen := b.first[e.Key()]; !seen {
			b.first[e.Key()] = i
			b.distinct = append(b.distinct, i)
		}
	}
	return b
}

// fingerprint computes the first occurrences' fingerprint keys, once: only a store that has
// fingerprints needs them (see probeFingerprints).
func (b *batch) fingerprint() {
	if b.prints != nil {
		return
	}
	b.prints = make([][16]byte, len(b.events))
	b.expired = make([]bool, len(b.events))
	b.expiredTag = make(map[uts.Key]uint32)
	b.byPrint = make(map[[16]byte]int, len(b.distinct))
	for _, i := range b.distinct {
		b.prints[i] = uts.KeyFingerprint(b.events[i].Key())
		b.byPrint[b.prints[i]] = i
	}
}

// outcomes compares every occurrence that was not stored with what is stored under its key.
// A later occurrence of a key new in this batch compares with the first occurrence, which
// is what got stored; one of a key whose event expired compares with its fingerprint's
// content tag, all that is left of it.
func (b *batch) outcomes() []uts.Outcome {
	outcomes := make([]uts.Outcome, len(b.events))
	for i, e := range b.events {
		first := b.first[e.Key()]
		var same bool
		switch {
		case first == i && b.inserted[i]:
			outcomes[i] = uts.OutcomeNew
			continue
		case b.expired != nil && b.expired[first]:
			same = uts.ContentTag(b.hashes[i]) == b.expiredTag[e.Key()]
		default:
			stored := b.hashes[first] // stored by this batch, or already stored with this content
			if hash, other := b.conflicting[e.Key()]; other {
				stored = hash
			}
			same = b.hashes[i] == stored
		}
		if same {
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
func (w *writeStatements) addCounts(events []uts.Event, outcomes []uts.Outcome, processedAt, lastSeq int64) error {
	total := uts.TallyOf(outcomes)
	bind := binder{stmt: w.addCounters}
	bind.int64(int64(len(events)))
	bind.int64(int64(total.Unique))
	bind.int64(int64(total.Duplicates))
	bind.int64(int64(total.Conflicts))
	bind.int64(processedAt)
	bind.int64(lastSeq)
	if bind.err != nil {
		return bind.err
	}
	if err := w.addCounters.Exec(); err != nil {
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
	for _, topic := range order {
		c := topics[topic]
		bind := binder{stmt: w.addTopic}
		bind.text(topic)
		bind.int64(int64(c.Unique))
		bind.int64(int64(c.Duplicates))
		bind.int64(int64(c.Conflicts))
		bind.int64(c.last)
		err := bind.err
		if err == nil {
			err = w.addTopic.Exec()
		}
		if err != nil {
			return fmt.Errorf("topic %q: %w", topic, err)
		}
	}
	return nil
}
