package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"os"
	"time"

	"github.com/uts-events/uts"
)

// Events returns a page of stored events in processing order; see uts.Store.
func (s *Store) Events(ctx context.Context, q uts.EventQuery) ([]uts.StoredEvent, error) {
	if s.closed.Load() {
		return nil, uts.Unavailable("the store is closed", nil)
	}
	if q.Limit <= 0 {
		return []uts.StoredEvent{}, nil
	}
	// One writer commits at a time, so sequence order is commit order: the feed is seq order,
	// and a cursor's Tx is always 0 here.
	after, before := q.After, q.Before
	for _, c := range []uts.Cursor{after, before} {
		if c.Tx != 0 {
			return nil, uts.Errorf(uts.KindInvalid, "cursor %s is not one of this store's", c)
		}
	}
	const columns = `SELECT seq, topic, event_id, ts, source, payload, processed_at FROM events `
	from, order, cursor := `seq > ?`, `seq`, after.Seq
	if q.Newest {
		from, order, cursor = `seq < ?`, `seq DESC`, before.Seq
		if cursor <= 0 {
			cursor = math.MaxInt64
		}
	}
	offset := max(q.Offset, 0)
	args := []any{cursor, q.Limit, offset}
	switch len(q.Topics) {
	case 0:
	case 1:
		from, args = `topic = ? AND `+from, []any{q.Topics[0], cursor, q.Limit, offset}
	default:
		// json_each keeps the statement one shape whatever the number of topics.
		topics, _ := json.Marshal(q.Topics)
		from, args = `topic IN (SELECT value FROM json_each(?)) AND `+from, []any{string(topics), cursor, q.Limit, offset}
	}
	rows, err := s.read.QueryContext(ctx, columns+`WHERE `+from+` ORDER BY `+order+` LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, classify(ctx, "events", err)
	}
	defer rows.Close()

	events := make([]uts.StoredEvent, 0, min(q.Limit, 1000))
	for rows.Next() {
		var (
			e                      uts.StoredEvent
			payload                []byte
			timestamp, processedAt int64
		)
		if err := rows.Scan(&e.Cursor.Seq, &e.Topic, &e.EventID, &timestamp, &e.Source, &payload, &processedAt); err != nil {
			return nil, classify(ctx, "events", err)
		}
		e.Payload = payload
		e.Timestamp = fromUnixNano(timestamp)
		e.ProcessedAt = fromUnixNano(processedAt)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "events", err)
	}
	return events, nil
}

// Stats reads the counters and per-topic totals from one snapshot, so they agree.
func (s *Store) Stats(ctx context.Context) (uts.Stats, error) {
	if s.closed.Load() {
		return uts.Stats{}, uts.Unavailable("the store is closed", nil)
	}
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return uts.Stats{}, classify(ctx, "stats", err)
	}
	defer tx.Rollback()

	var st uts.Stats
	c := &st.Counters
	err = tx.QueryRowContext(ctx, `SELECT received, unique_processed, duplicate_dropped, duplicate_conflicts, dead_lettered
		FROM counters WHERE id = 1`).Scan(&c.Received, &c.UniqueProcessed, &c.DuplicateDropped, &c.DuplicateConflicts, &c.DeadLettered)
	if err != nil {
		return uts.Stats{}, classify(ctx, "stats: counters", err)
	}

	// The topics table's key uses SQLite's default BINARY collation: byte order, as Go sorts.
	rows, err := tx.QueryContext(ctx, `SELECT topic, unique_processed, duplicates, conflicts, last_event_at, expired
		FROM topics ORDER BY topic`)
	if err != nil {
		return uts.Stats{}, classify(ctx, "stats: topics", err)
	}
	defer rows.Close()
	st.Topics = []uts.TopicStats{}
	for rows.Next() {
		var t uts.TopicStats
		var last int64
		if err := rows.Scan(&t.Topic, &t.Unique, &t.Duplicates, &t.Conflicts, &last, &t.Expired); err != nil {
			return uts.Stats{}, classify(ctx, "stats: topics", err)
		}
		t.LastEventAt = fromUnixNano(last)
		t.Stored = t.Unique - t.Expired
		st.Expired += t.Expired
		st.Topics = append(st.Topics, t)
	}
	if err := rows.Err(); err != nil {
		return uts.Stats{}, classify(ctx, "stats: topics", err)
	}
	st.Stored = st.UniqueProcessed - st.Expired
	st.DiskBytes = s.diskBytes()
	return st, nil
}

// diskBytes is the size of the file and of its write-ahead log; the WAL holds pages until a
// checkpoint copies them into the file, and is the store's as much as the file is. Each
// file's error leaves it out: a WAL may be missing between connections.
func (s *Store) diskBytes() int64 {
	var total int64
	for _, name := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(name); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// StoredHash returns the stored event's content hash; see uts.Store. It reads through the
// reader pool, so it never waits behind an Append. An expired event's key finds nothing:
// only its fingerprint is left, which holds no hash.
func (s *Store) StoredHash(ctx context.Context, key uts.Key) (string, error) {
	if s.closed.Load() {
		return "", uts.Unavailable("the store is closed", nil)
	}
	var hash string
	err := s.read.QueryRowContext(ctx, `SELECT content_hash FROM events WHERE topic = ? AND event_id = ?`,
		key.Topic, key.EventID).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", classify(ctx, "stored hash", err)
	}
	return hash, nil
}

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }
