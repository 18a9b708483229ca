package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/uts-events/uts"
)

// A consumer that loses the store mid-commit cannot tell whether the batch went in, so its
// broker delivers the batch again. Append records each delivery once, keyed by the delivery
// and the key of its first event, in the batch's transaction, and leaves out of everything the
// events of a delivery recorded already: they were stored and counted by the transaction
// that recorded it. One row per delivery, not per event: a Redis entry carries up to 100.

// deliveryUnits returns, for each event with a delivery, the index of the first event of its
// delivery in the batch, whose key the delivery is recorded with; nil when no event has a
// delivery, so that a batch without them (the in-process broker's) pays only this loop.
func deliveryUnits(events []uts.Event) []int {
	var firstOf map[string]int
	var unit []int
	for i := range events {
		d := events[i].Delivery
		if d == "" {
			continue
		}
		if unit == nil {
			unit = make([]int, len(events))
			firstOf = make(map[string]int)
		}
		f, seen := firstOf[d]
		if !seen {
			f = i
			firstOf[d] = i
		}
		unit[i] = f
	}
	return unit
}

// recordDeliveries records the batch's deliveries, each with the key of its first event (unit
// from deliveryUnits), and returns which events were delivered before: those of a delivery
// the table already held.
func (w *writeStatements) recordDeliveries(events []uts.Event, unit []int, recordedAt int64) ([]bool, error) {
	var rows []int
	for i := range events {
		if events[i].Delivery != "" && unit[i] == i {
			rows = append(rows, i)
		}
	}
	fresh := make(map[string]struct{}, len(rows))
	for len(rows) > 0 {
		n := chunkSize(len(rows))
		if err := w.recordChunk(events, rows[:n], recordedAt, fresh); err != nil {
			return nil, err
		}
		rows = rows[n:]
	}
	redelivered := make([]bool, len(events))
	for i := range events {
		if d := events[i].Delivery; d != "" {
			_, isFresh := fresh[d]
			redelivered[i] = !isFresh
		}
	}
	return redelivered, nil
}

func (w *writeStatements) recordChunk(events []uts.Event, rows []int, recordedAt int64, fresh map[string]struct{}) error {
	stmt, err := w.record.get(len(rows))
	if err != nil {
		return err
	}
	defer stmt.Reset()
	bind := binder{stmt: stmt}
	for _, i := range rows {
		e := &events[i]
		bind.text(e.Delivery)
		bind.text(e.Topic)
		bind.text(e.EventID)
		bind.int64(recordedAt)
	}
	if bind.err != nil {
		return bind.err
	}
	for stmt.Step() {
		fresh[stmt.ColumnText(0)] = struct{}{}
	}
	return stmt.Err()
}

func recordSQL(rows int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO deliveries (delivery, topic, event_id, recorded_at) VALUES `)
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?,?)`)
	}
	q.WriteString(` ON CONFLICT DO NOTHING RETURNING delivery`)
	return q.String()
}

// without returns the batch without the events delivered before, and the positions in b of
// those it kept.
func (b *batch) without(redelivered []bool) (*batch, []int) {
	kept := make([]uts.Event, 0, len(b.events))
	hashes := make([]string, 0, len(b.events))
	at := make([]int, 0, len(b.events))
	for i, again := range redelivered {
		if !again {
			kept = append(kept, b.events[i])
			hashes = append(hashes, b.hashes[i])
			at = append(at, i)
		}
	}
	return sortOut(kept, hashes), at
}

// Pruning (see internal/retention): a delivery needs remembering only until the broker has
// acknowledged its entry, which uts.DeliveryRetention outlasts by far. A ticker started by
// Open deletes what is older, a chunk per write-lock hold, so that an Append waits for one
// chunk at most.
const (
	pruneEvery     = 10 * time.Minute
	pruneChunkRows = 1000
	// pruneChunks bounds one pruning run; what is left waits for the next tick.
	pruneChunks = 1000
)

const pruneSQL = `DELETE FROM deliveries WHERE (delivery, topic, event_id) IN (
	SELECT delivery, topic, event_id FROM deliveries WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?)`

// pruneChunk deletes up to rows deliveries recorded before cutoff, under one write-lock hold.
func (s *Store) pruneChunk(ctx context.Context, cutoff time.Time, rows int) (int64, error) {
	var deleted int64
	err := s.withWriter(ctx, func() error {
		bind := binder{stmt: s.writes.prune}
		bind.int64(cutoff.UnixNano())
		bind.int64(int64(rows))
		if bind.err != nil {
			return classify(ctx, "prune deliveries", bind.err)
		}
		if err := s.writes.prune.Exec(); err != nil {
			return classify(ctx, "prune deliveries", err)
		}
		deleted = s.writer.Changes()
		return nil
	})
	return deleted, err
}
