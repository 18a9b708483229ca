package sqlite

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/bloom"
)

// Fingerprints (see schemaV4) keep the identities of the events that retention deleted. An
// event still stored is found by the events' UNIQUE (topic, event_id) index, as it always
// was; a fingerprint is written only when its event expires, in the deleting transaction.
// So an Append with no retention configured costs what it did before version 4, and one
// under retention adds a read of the fingerprints, no write: a fingerprint's key is a hash,
// which puts each new one on a page of its own, and writing one per appended event halved
// Append and fell by up to nine tenths more at 10 million fingerprints (docs/benchmarks.md).

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

// probeSQL reads the fingerprints among rows keys.
func probeSQL(rows int) string {
	var q strings.Builder
	q.WriteString(`SELECT key, content FROM fingerprints WHERE key IN (`)
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
	}
	q.WriteString(`)`)
	return q.String()
}

// recordFingerprintSQL keeps an expired event's fingerprint. A fingerprint of the key may be
// there already only if it outlived an earlier event of the key, which cannot happen while
// Retention.Fingerprints is at least every event retention; the older one is kept then.
const recordFingerprintSQL = `INSERT INTO fingerprints (key, content, minutes) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`

// probeFingerprints finds the batch's keys whose events expired: they are not new, and their
// later occurrences compare with the fingerprint's content tag. Only the keys that the
// in-memory filter may have are read: at 10 million fingerprints the table is far larger
// than the page cache, and a read of each key cost Append half its rate (docs/benchmarks.md).
func (w *writeStatements) probeFingerprints(b *batch, seen *bloom.Filter) error {
	b.fingerprint()
	var maybe []int
	for _, i := range b.distinct {
		if seen.MayContain(b.prints[i]) {
			maybe = append(maybe, i)
		}
	}
	return chunked(maybe, func(rows []int) error {
		stmt, err := w.probe.get(len(rows))
		if err != nil {
			return err
		}
		defer stmt.Reset()
		bind := binder{stmt: stmt}
		for _, i := range rows {
			bind.bytes16(b.prints[i])
		}
		if bind.err != nil {
			return bind.err
		}
		for stmt.Step() {
			i, ok := b.byPrint[[16]byte(stmt.ColumnRawBlob(0))]
			if !ok {
				return errNotInBatch
			}
			b.expired[i] = true
			b.expiredTag[b.events[i].Key()] = uint32(int32(stmt.ColumnInt64(1)))
		}
		return stmt.Err()
	})
}

// recordFingerprints keeps the fingerprints of expired events, in key order, so that the
// pages of the fingerprints' B-tree are visited once each, left to right, and adds them to
// the filter of those that exist.
func (w *writeStatements) recordFingerprints(prints []expiredPrint, seen *bloom.Filter) error {
	slices.SortFunc(prints, func(a, b expiredPrint) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	for _, p := range prints {
		bind := binder{stmt: w.recordFingerprint}
		bind.bytes16(p.Key)
		bind.int64(contentColumn(p.Content))
		bind.int64(p.minutes)
		err := bind.err
		if err == nil {
			err = w.recordFingerprint.Exec()
		}
		if err != nil {
			return err
		}
		seen.Add(p.Key)
	}
	return nil
}

// expiredPrint is the fingerprint of an event being expired, with its processing minute.
type expiredPrint struct {
	uts.Fingerprint
	minutes int64
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

// loadFingerprints fills a filter with the file's fingerprints, sized for a quarter more than
// there are before it first grows: a pass over the keys in order, a few seconds at 10 million.
func loadFingerprints(conn *sqlite3.Conn) (*bloom.Filter, error) {
	count, _, err := conn.Prepare(`SELECT count(*) FROM fingerprints`)
	if err != nil {
		return nil, err
	}
	defer count.Close()
	if !count.Step() {
		return nil, errors.Join(count.Err(), errors.New("no row"))
	}
	n := count.ColumnInt64(0)
	seen := bloom.New(max(n+n/4, 1<<16))
	keys, _, err := conn.Prepare(`SELECT key FROM fingerprints`)
	if err != nil {
		return nil, err
	}
	defer keys.Close()
	for keys.Step() {
		seen.Add([16]byte(keys.ColumnRawBlob(0)))
	}
	return seen, keys.Err()
}
