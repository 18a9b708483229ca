package sqlite

import (
	"bytes"
	"strings"
	"time"

	"github.com/uts-events/uts"
)

// Fingerprints (see schemaV4) decide at Append what is new: a key is new when its
// fingerprint is, whether or not the key's event is still stored.

// minutesOf is a processed_at, in unix nanoseconds, in the fingerprints' whole minutes.
func minutesOf(processedAt int64) int64 { return processedAt / int64(time.Minute) }

// contentColumn stores a content tag as a signed 32-bit integer: 4 bytes in a record for
// any tag, where an unsigned one past 2³¹ would take 6.
func contentColumn(tag uint32) int64 { return int64(int32(tag)) }

func (b *binder) bytes16(v [16]byte) {
	b.next++
	if err := b.stmt.BindBlob(b.next, v[:]); err != nil && b.err == nil {
		b.err = err
	}
}

// fingerprintSQL inserts fingerprints and says what it did with each, as the events' INSERT
// did before version 4: a new key comes back with its own content tag; a key stored with
// another tag takes a no-op update (rare: a producer bug) that brings back the stored tag; a
// key stored with the same tag, a retry, does not come back.
func fingerprintSQL(rows int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO fingerprints (key, content, minutes) VALUES `)
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?)`)
	}
	q.WriteString(` ON CONFLICT (key) DO UPDATE SET content = content
		WHERE content <> excluded.content
		RETURNING key, content`)
	return q.String()
}

// insertFingerprints inserts the batch's first occurrences' fingerprints and marks those that
// were new; for the keys stored with other content it keeps the stored tag.
func (w *writeStatements) insertFingerprints(b *batch, minutes int64) error {
	return chunked(b.distinct, func(rows []int) error {
		stmt := w.fingerprintBySize[len(rows)]
		defer stmt.Reset()
		bind := binder{stmt: stmt}
		for _, i := range rows {
			bind.bytes16(b.prints[i].Key)
			bind.int64(contentColumn(b.prints[i].Content))
			bind.int64(minutes)
		}
		if bind.err != nil {
			return bind.err
		}
		for stmt.Step() {
			i, ok := b.byPrint[[16]byte(stmt.ColumnRawBlob(0))]
			if !ok {
				return errNotInBatch
			}
			if tag := uint32(int32(stmt.ColumnInt64(1))); tag == b.prints[i].Content {
				b.inserted[i] = true
			} else {
				b.conflicting[b.events[i].Key()] = tag
			}
		}
		return stmt.Err()
	})
}

// sweepFingerprintsSQL reads the next keys of the sweep (see Store.sweepFingerprints).
const sweepFingerprintsSQL = `SELECT key, minutes FROM fingerprints WHERE key > ? ORDER BY key LIMIT ?`

// deleteFingerprintsSQL deletes the expired fingerprints of a range the sweep read.
const deleteFingerprintsSQL = `DELETE FROM fingerprints WHERE key > ? AND key <= ? AND minutes < ?`

// fingerprintSweep is where the sweep over the fingerprints' keys goes on from; nil for the
// start. Only the writer's holder touches it.
type fingerprintSweep struct{ after []byte }

// sweepChunk examines up to rows fingerprints from where the last chunk ended, deletes those
// older than cutoffMinutes, and says how many it examined and deleted. At the end of the keys
// the sweep starts over.
func (w *writeStatements) sweepChunk(sweep *fingerprintSweep, rows int, cutoffMinutes int64, changes func() int64) (examined, deleted int64, err error) {
	after := sweep.after
	if after == nil {
		after = []byte{}
	}
	read := w.sweepFingerprints
	defer read.Reset()
	if err := read.BindBlob(1, after); err != nil {
		return 0, 0, err
	}
	if err := read.BindInt64(2, int64(rows)); err != nil {
		return 0, 0, err
	}
	var last []byte
	expired := false
	for read.Step() {
		examined++
		last = append(last[:0], read.ColumnRawBlob(0)...)
		if read.ColumnInt64(1) < cutoffMinutes {
			expired = true
		}
	}
	if err := read.Err(); err != nil {
		return 0, 0, err
	}
	if examined < int64(rows) {
		sweep.after = nil // the end: start over next time
	} else {
		sweep.after = bytes.Clone(last)
	}
	if !expired {
		return examined, 0, nil
	}
	del := w.deleteFingerprints
	bind := binder{stmt: del}
	bind.blob(after)
	bind.blob(last)
	bind.int64(cutoffMinutes)
	if bind.err != nil {
		return 0, 0, bind.err
	}
	if err := del.Exec(); err != nil {
		return 0, 0, err
	}
	return examined, changes(), nil
}

func (b *binder) blob(v []byte) {
	b.next++
	if err := b.stmt.BindBlob(b.next, v); err != nil && b.err == nil {
		b.err = err
	}
}

// fingerprintOf is what Append keeps of an event's identity; see uts.FingerprintOf.
func fingerprintOf(e *uts.Event, hash string) uts.Fingerprint {
	return uts.FingerprintOf(e.Key(), hash)
}
