package sqlite

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ncruces/go-sqlite3"
)

// maxChunk is the most rows one INSERT carries: 8 parameters a row keeps it far below
// SQLite's limit of 32766, and past a few hundred rows a longer statement gains nothing.
// Up to exactChunk rows, a statement of exactly the batch's size exists: single events
// arrive in commits of 10 – 30, which powers of two alone cut into three statements each
// for the lookup and the insert.
const (
	maxChunk   = 256
	exactChunk = 32
)

// chunkSize is the size of the next chunk of rows left: all of them up to exactChunk, else
// the greatest power of two that fits, up to maxChunk.
func chunkSize(left int) int {
	if left <= exactChunk {
		return left
	}
	n := maxChunk
	for n > left {
		n /= 2
	}
	return n
}

// writeStatements are the writer's statements. The fixed ones are compiled at Open; those
// with one row of parameters per event exist per row count (chunkSize), each compiled the
// first time a batch needs it: any batch is a few of them (25 rows: one; 1000 rows:
// 256×3+128+64+32+8), and compiling all 35 sizes of all five at Open made it take half a
// second under the race detector.
type writeStatements struct {
	conn *sqlite3.Conn // the writer's connection, whose statements these are
	// inserts inserts a batch's rows, numbered by SQLite, and insertsSeq numbered by Append,
	// both skipping the keys stored already; lookup finds the stored hash of those (see
	// insert).
	lookup     *sizedStatements
	inserts    *sizedStatements
	insertsSeq *sizedStatements
	probe      *sizedStatements // fingerprint reads
	record     *sizedStatements // deliveries
	// readCounters reads the high-water marks an Append continues from (see schemaV4).
	readCounters *sqlite3.Stmt
	// readTaken reads back the keys an insert took (see markTaken).
	readTaken   *sqlite3.Stmt
	addCounters *sqlite3.Stmt
	addTopic    *sqlite3.Stmt
	deadLetter  *sqlite3.Stmt
	// recordDeadLetter records a dead-lettered delivery under the empty key, which no event has.
	recordDeadLetter *sqlite3.Stmt
	prune            *sqlite3.Stmt
	// Expire's statements: see expire.go and fingerprints.go.
	expiryHead         *sqlite3.Stmt
	expireEvents       *sqlite3.Stmt
	addExpired         *sqlite3.Stmt
	recordFingerprint  *sqlite3.Stmt
	sweepFingerprints  *sqlite3.Stmt
	deleteFingerprints *sqlite3.Stmt
	begin              *sqlite3.Stmt
	commit             *sqlite3.Stmt
	rollback           *sqlite3.Stmt
	ping               *sqlite3.Stmt
}

func prepareWrites(conn *sqlite3.Conn) (*writeStatements, error) {
	sized := func(sql func(rows int) string) *sizedStatements {
		return &sizedStatements{conn: conn, sql: sql, bySize: make(map[int]*sqlite3.Stmt)}
	}
	w := &writeStatements{conn: conn, lookup: sized(lookupSQL), inserts: sized(func(rows int) string { return insertSQL(rows, false) }),
		insertsSeq: sized(func(rows int) string { return insertSQL(rows, true) }), probe: sized(probeSQL), record: sized(recordSQL)}
	var err error
	prepare := func(query string) *sqlite3.Stmt {
		stmt, _, prepErr := conn.Prepare(query)
		if prepErr != nil && err == nil {
			err = fmt.Errorf("prepare %.40q: %w", query, prepErr)
		}
		return stmt
	}
	w.readCounters = prepare(`SELECT last_seq, last_processed_at, (SELECT coalesce(max(seq), 0) FROM events) FROM counters WHERE id = 1`)
	w.readTaken = prepare(readTakenSQL)
	w.addCounters = prepare(`UPDATE counters SET
		received = received + ?1, unique_processed = unique_processed + ?2,
		duplicate_dropped = duplicate_dropped + ?3, duplicate_conflicts = duplicate_conflicts + ?4,
		last_seq = max(last_seq, ?6), last_processed_at = max(last_processed_at, ?5)
		WHERE id = 1`)
	// last_event_at follows the topic's latest new event even if the clock stepped back.
	w.addTopic = prepare(`INSERT INTO topics (topic, unique_processed, duplicates, conflicts, last_event_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (topic) DO UPDATE SET
			unique_processed = unique_processed + excluded.unique_processed,
			duplicates = duplicates + excluded.duplicates,
			conflicts = conflicts + excluded.conflicts,
			last_event_at = CASE WHEN excluded.unique_processed > 0 THEN excluded.last_event_at ELSE last_event_at END`)
	w.deadLetter = prepare(`UPDATE counters SET received = received + ?1, dead_lettered = dead_lettered + ?1 WHERE id = 1`)
	w.recordDeadLetter = prepare(`INSERT INTO deliveries (delivery, topic, event_id, recorded_at) VALUES (?, '', '', ?)
		ON CONFLICT DO NOTHING`)
	w.prune = prepare(pruneSQL)
	w.expiryHead = prepare(expiryHeadSQL)
	w.expireEvents = prepare(expireEventsSQL)
	w.addExpired = prepare(addExpiredSQL)
	w.recordFingerprint = prepare(recordFingerprintSQL)
	w.sweepFingerprints = prepare(sweepFingerprintsSQL)
	w.deleteFingerprints = prepare(deleteFingerprintsSQL)
	w.begin = prepare(`BEGIN IMMEDIATE`)
	w.commit = prepare(`COMMIT`)
	w.rollback = prepare(`ROLLBACK`)
	w.ping = prepare(`SELECT 1`)
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// readTakenSQL reads back the keys of the rows past a seq, in seq order (see markTaken).
const readTakenSQL = `SELECT topic, event_id FROM events WHERE seq > ? ORDER BY seq`

// lookupSQL finds which of rows keys are stored, and with what content: each row binds the
// key's position in the batch, its topic and its event ID, and comes back with the stored
// hash if the key is stored. The plan is one search of the UNIQUE index a key
// (TestLookupUsesTheUniqueIndex).
func lookupSQL(rows int) string {
	var q strings.Builder
	q.WriteString(`SELECT batch.column1, events.content_hash FROM (VALUES `)
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?)`)
	}
	q.WriteString(`) AS batch CROSS JOIN events ON events.topic = batch.column2 AND events.event_id = batch.column3`)
	return q.String()
}

// insertSQL inserts rows, skipping each whose key the UNIQUE index holds (see insert): the
// writer holds the write lock, so what is skipped was stored before this transaction or by
// it, and never goes in twice. OR IGNORE turns every conflict into a skipped row rather than
// an abort, and without a seq column there is no datatype check that could fail a row, so
// SQLite keeps no statement journal, a copy of every page the statement changes kept to undo
// the statement alone if it fails half-way; an error that is not a conflict gives up the whole
// transaction. An upsert with RETURNING, which an earlier version used, always kept one, and
// cost 30 – 40% more CPU a row (docs/benchmarks.md, issue #11).
//
// Without seq, SQLite numbers the rows it takes max(seq)+1, +2, … in the order of VALUES, a
// skipped row using no number, and LastInsertRowID is the greatest; withSeq binds seq first
// in each row, for Append to number the rows itself after retention deleted the newest events
// (see schemaV4), which costs the journal again but is rare, and leaves the seq of a skipped
// row unused.
func insertSQL(rows int, withSeq bool) string {
	var q strings.Builder
	if withSeq {
		q.WriteString(`INSERT OR IGNORE INTO events (seq, topic, event_id, ts, source, payload, content_hash, processed_at) VALUES `)
	} else {
		q.WriteString(`INSERT OR IGNORE INTO events (topic, event_id, ts, source, payload, content_hash, processed_at) VALUES `)
	}
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		if withSeq {
			q.WriteString(`(?,?,?,?,?,?,?,?)`)
		} else {
			q.WriteString(`(?,?,?,?,?,?,?)`)
		}
	}
	return q.String()
}

func (w *writeStatements) close() error {
	var errs []error
	for _, stmt := range []*sqlite3.Stmt{w.readCounters, w.readTaken, w.addCounters, w.addTopic, w.deadLetter, w.recordDeadLetter, w.prune,
		w.expiryHead, w.expireEvents, w.addExpired, w.recordFingerprint, w.sweepFingerprints, w.deleteFingerprints, w.begin, w.commit, w.rollback, w.ping} {
		errs = append(errs, stmt.Close()) // a nil Stmt closes to nil
	}
	for _, sized := range []*sizedStatements{w.lookup, w.inserts, w.insertsSeq, w.probe, w.record} {
		errs = append(errs, sized.close())
	}
	return errors.Join(errs...)
}

// insert inserts the batch's first occurrences that no fingerprint names and that are not
// stored yet, in batch order, which is also the order of their seq: SQLite's next, or
// explicitFrom, explicitFrom+1, and so on when it is not zero (a skipped row's number then
// stays unused). It marks those it inserted and those stored already, notes the stored hash
// of each stored with other content, and returns the greatest seq it handed out, or 0. after
// is the greatest seq in the table before it.
//
// The rows go in first, with INSERT OR IGNORE: the UNIQUE index skips a stored key in the
// same search that checks every key anyway. Most batches hold no stored key, and then that
// is all. Otherwise the rows taken are read back from the end of the table, in seq order,
// which is batch order, and only the keys skipped are looked up in the index, for their
// stored hash.
func (w *writeStatements) insert(b *batch, after, explicitFrom, processedAt int64) (lastSeq int64, err error) {
	rows := b.distinct
	if len(b.expiredTag) > 0 {
		rows = make([]int, 0, len(b.distinct))
		for _, i := range b.distinct {
			if !b.expired[i] {
				rows = append(rows, i)
			}
		}
	}
	if len(rows) == 0 {
		return 0, nil
	}
	seq := explicitFrom
	inserts := w.inserts
	if explicitFrom > 0 {
		inserts = w.insertsSeq
		after = explicitFrom - 1
	}
	taken := int64(0)
	err = chunked(rows, func(rows []int) error {
		stmt, err := inserts.get(len(rows))
		if err != nil {
			return err
		}
		defer stmt.Reset()
		bind := binder{stmt: stmt}
		for _, i := range rows {
			e := &b.events[i]
			if explicitFrom > 0 {
				bind.int64(seq)
				seq++
			}
			bind.text(e.Topic)
			bind.text(e.EventID)
			bind.int64(e.Timestamp.UnixNano())
			bind.text(e.Source)
			bind.bytes(e.Payload)
			bind.text(b.hashes[i])
			bind.int64(processedAt)
		}
		if bind.err != nil {
			return bind.err
		}
		if err := stmt.Exec(); err != nil {
			return err
		}
		if n := w.conn.Changes(); n > 0 {
			taken += n
			lastSeq = w.conn.LastInsertRowID()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if taken == int64(len(rows)) {
		for _, i := range rows {
			b.inserted[i] = true
		}
		return lastSeq, nil
	}
	skipped, err := w.markTaken(b, rows, after, taken)
	if err != nil {
		return 0, err
	}
	stored, err := w.lookupStored(b, skipped)
	if err != nil {
		return 0, err
	}
	if stored != len(skipped) {
		return 0, errNeitherTakenNorStored
	}
	return lastSeq, nil
}

// markTaken reads back the rows the insert took, the only ones past after, and marks them
// among rows: they come back in seq order, which is the order of rows, so each is the next
// of rows with its key. It returns the rows skipped.
func (w *writeStatements) markTaken(b *batch, rows []int, after, taken int64) (skipped []int, err error) {
	stmt := w.readTaken
	defer stmt.Reset()
	if err := stmt.BindInt64(1, after); err != nil {
		return nil, err
	}
	skipped = make([]int, 0, len(rows)-int(taken))
	next := 0
	for stmt.Step() {
		topic, id := stmt.ColumnRawText(0), stmt.ColumnRawText(1)
		for next < len(rows) && (string(topic) != b.events[rows[next]].Topic || string(id) != b.events[rows[next]].EventID) {
			skipped = append(skipped, rows[next])
			next++
		}
		if next == len(rows) {
			return nil, errNotInBatch
		}
		b.inserted[rows[next]] = true
		next++
	}
	if err := stmt.Err(); err != nil {
		return nil, err
	}
	skipped = append(skipped, rows[next:]...)
	if len(rows)-len(skipped) != int(taken) {
		return nil, errNeitherTakenNorStored
	}
	return skipped, nil
}

// lookupStored marks which of rows (first occurrences) are stored, and notes the stored hash
// of those stored with other content. It returns how many it marked.
func (w *writeStatements) lookupStored(b *batch, rows []int) (stored int, err error) {
	err = chunked(rows, func(rows []int) error {
		stmt, err := w.lookup.get(len(rows))
		if err != nil {
			return err
		}
		defer stmt.Reset()
		bind := binder{stmt: stmt}
		for _, i := range rows {
			bind.int64(int64(i))
			bind.text(b.events[i].Topic)
			bind.text(b.events[i].EventID)
		}
		if bind.err != nil {
			return bind.err
		}
		for stmt.Step() {
			i := int(stmt.ColumnInt64(0))
			if i < 0 || i >= len(b.events) || b.stored[i] {
				return errNotInBatch
			}
			b.stored[i] = true
			stored++
			if hash := stmt.ColumnRawText(1); string(hash) != b.hashes[i] {
				b.conflicting[b.events[i].Key()] = string(hash)
			}
		}
		return stmt.Err()
	})
	return stored, err
}

// sizedStatements holds one statement per row count, compiled from sql the first time it is
// asked for.
type sizedStatements struct {
	conn   *sqlite3.Conn
	sql    func(rows int) string
	bySize map[int]*sqlite3.Stmt
}

func (s *sizedStatements) get(rows int) (*sqlite3.Stmt, error) {
	if stmt := s.bySize[rows]; stmt != nil {
		return stmt, nil
	}
	stmt, _, err := s.conn.Prepare(s.sql(rows))
	if err != nil {
		return nil, fmt.Errorf("prepare for %d rows: %w", rows, err)
	}
	s.bySize[rows] = stmt
	return stmt, nil
}

func (s *sizedStatements) close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, stmt := range s.bySize {
		errs = append(errs, stmt.Close())
	}
	return errors.Join(errs...)
}

// chunked calls insert with rows cut into chunks of the sizes chunkSize gives.
func chunked(rows []int, insert func(rows []int) error) error {
	for len(rows) > 0 {
		n := chunkSize(len(rows))
		if err := insert(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

var (
	errNotInBatch            = errors.New("a lookup returned a row that is not in the batch")
	errNeitherTakenNorStored = errors.New("the insert skipped a row whose key is not stored")
)

// binder binds a statement's parameters in order and keeps the first error, so that a row
// of them reads as a row.
type binder struct {
	stmt *sqlite3.Stmt
	next int
	err  error
}

func (b *binder) text(v string) {
	b.next++
	if err := b.stmt.BindText(b.next, v); err != nil && b.err == nil {
		b.err = err
	}
}

// bytes binds text, an empty one for nil: the columns are NOT NULL.
func (b *binder) bytes(v []byte) {
	if v == nil {
		v = []byte{}
	}
	b.next++
	if err := b.stmt.BindRawText(b.next, v); err != nil && b.err == nil {
		b.err = err
	}
}

func (b *binder) null() {
	b.next++
	if err := b.stmt.BindNull(b.next); err != nil && b.err == nil {
		b.err = err
	}
}

func (b *binder) int64(v int64) {
	b.next++
	if err := b.stmt.BindInt64(b.next, v); err != nil && b.err == nil {
		b.err = err
	}
}
