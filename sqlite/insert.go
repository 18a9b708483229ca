package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/uts-events/uts"
)

// maxChunk is the most rows one INSERT carries: 7 parameters a row keeps it far below
// SQLite's limit of 32766, and past a few hundred rows a longer statement gains nothing.
const maxChunk = 256

// writeStatements are the Append path's statements, compiled once at Open (the writer's
// only connection is busy during an Append, so they cannot be prepared then). The INSERT
// exists once per power-of-two row count, so any batch is a few precompiled statements
// (1000 rows: 256×3+128+64+32+8).
type writeStatements struct {
	insertBySize map[int]*sql.Stmt
	recordBySize map[int]*sql.Stmt // deliveries, like insertBySize
	addCounters  *sql.Stmt
	addTopic     *sql.Stmt
	args         []any // reused: only the Append holding the write lock touches it
}

func prepareWrites(ctx context.Context, db *sql.DB) (*writeStatements, error) {
	w := &writeStatements{insertBySize: make(map[int]*sql.Stmt), recordBySize: make(map[int]*sql.Stmt)}
	var err error
	prepare := func(query string) *sql.Stmt {
		stmt, prepErr := db.PrepareContext(ctx, query)
		if prepErr != nil && err == nil {
			err = fmt.Errorf("prepare %.40q: %w", query, prepErr)
		}
		return stmt
	}
	for n := 1; n <= maxChunk; n *= 2 {
		w.insertBySize[n] = prepare(insertSQL(n))
		w.recordBySize[n] = prepare(recordSQL(n))
	}
	w.addCounters = prepare(`UPDATE counters SET
		received = received + ?, unique_processed = unique_processed + ?,
		duplicate_dropped = duplicate_dropped + ?, duplicate_conflicts = duplicate_conflicts + ?
		WHERE id = 1`)
	// last_event_at follows the topic's latest new event even if the clock stepped back.
	w.addTopic = prepare(`INSERT INTO topics (topic, unique_processed, duplicates, conflicts, last_event_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (topic) DO UPDATE SET
			unique_processed = unique_processed + excluded.unique_processed,
			duplicates = duplicates + excluded.duplicates,
			conflicts = conflicts + excluded.conflicts,
			last_event_at = CASE WHEN excluded.unique_processed > 0 THEN excluded.last_event_at ELSE last_event_at END`)
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// insertSQL inserts rows and says what it did with each, with no second query: a new key
// comes back with its own hash; a key stored with other content takes a no-op update (rare:
// a producer bug) that brings back the stored hash; a key stored with the same content, a
// retry, does not come back. Looking the refused keys up instead cost a third of Append.
func insertSQL(rows int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO events (topic, event_id, ts, source, payload, content_hash, processed_at) VALUES `)
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?,?,?,?,?)`)
	}
	q.WriteString(` ON CONFLICT (topic, event_id) DO UPDATE SET content_hash = content_hash
		WHERE content_hash <> excluded.content_hash
		RETURNING topic, event_id, content_hash`)
	return q.String()
}

func (w *writeStatements) close() {
	for _, stmt := range []*sql.Stmt{w.addCounters, w.addTopic} {
		if stmt != nil {
			stmt.Close()
		}
	}
	for _, stmts := range []map[int]*sql.Stmt{w.insertBySize, w.recordBySize} {
		for _, stmt := range stmts {
			if stmt != nil {
				stmt.Close()
			}
		}
	}
}

// run inserts the batch's first occurrences in batch order, which is also the order of
// their seq, and marks those the database took.
func (w *writeStatements) insert(ctx context.Context, tx *sql.Tx, b *batch, processedAt int64) error {
	rows := b.distinct
	for len(rows) > 0 {
		n := maxChunk
		for n > len(rows) {
			n /= 2
		}
		if err := w.insertChunk(ctx, tx, b, rows[:n], processedAt); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func (w *writeStatements) insertChunk(ctx context.Context, tx *sql.Tx, b *batch, rows []int, processedAt int64) error {
	args := w.args[:0]
	for _, i := range rows {
		e := &b.events[i]
		args = append(args, e.Topic, e.EventID, e.Timestamp.UnixNano(), e.Source, string(e.Payload), b.hashes[i], processedAt)
	}
	w.args = args
	defer clear(args) // drop references to the batch's strings

	returned, err := tx.StmtContext(ctx, w.insertBySize[len(rows)]).QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer returned.Close()
	for returned.Next() {
		var key uts.Key
		var hash string
		if err := returned.Scan(&key.Topic, &key.EventID, &hash); err != nil {
			return err
		}
		i, ok := b.first[key]
		if !ok {
			return errors.New("insert returned a key that is not in the batch")
		}
		if hash == b.hashes[i] {
			b.inserted[i] = true
		} else {
			b.conflicting[key] = hash
		}
	}
	return returned.Err()
}
