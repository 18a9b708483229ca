package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/uts-events/uts"
)

// Expiry (uts.Store.Expire) deletes each topic's expired events oldest first, a chunk per
// write transaction on the store's one writer, so that an Append waits behind one chunk at
// most. Since Append keeps processed_at from going backwards (see schemaV4), a topic's expired
// events are a prefix of its feed: a chunk reads the topic's first rows through the
// (topic, seq) index, stops at the first one that has not expired, and deletes the prefix by
// seq range, with no index on processed_at to maintain on every Append.
//
// Deleted pages go to SQLite's freelist and the next Appends reuse them, so a file under
// retention stays the size of what it holds at its peak (docs/benchmarks.md, "Retention —
// SQLite"); auto_vacuum would give pages back to the file system only to grow the file again.

// expireChunkRows is the most events one write transaction deletes. Appends wait behind one
// chunk at most, and a chunk also writes its events' fingerprints, a page each: at 1000 the
// appends' p50 went from 5 to 52 ms while a backlog expired (18,000 events/s expired); at 250,
// 23 ms (9,400 events/s expired). docs/benchmarks.md, "Retention — SQLite".
const expireChunkRows = 250

// expiryHeadSQL reads a topic's oldest events, oldest first.
const expiryHeadSQL = `SELECT seq, processed_at FROM events WHERE topic = ? ORDER BY seq LIMIT ?`

// expireEventsSQL deletes the prefix of a topic's feed that expiryHeadSQL read, and returns
// what their fingerprints are made of.
const expireEventsSQL = `DELETE FROM events WHERE topic = ? AND seq <= ? RETURNING event_id, content_hash, processed_at`

const addExpiredSQL = `UPDATE topics SET expired = expired + ?, expired_through = max(expired_through, ?) WHERE topic = ?`

// Expire deletes what r says has expired as of now; see uts.Store.
func (s *Store) Expire(ctx context.Context, r uts.Retention, now time.Time, limit int) (uts.Expiry, error) {
	if s.closed.Load() {
		return uts.Expiry{}, uts.Unavailable("the store is closed", nil)
	}
	if err := r.Validate(); err != nil {
		return uts.Expiry{}, err
	}
	if limit <= 0 {
		limit = uts.ExpiryChunk
	}
	// One Expire at a time: the sweep's position and the topic rotation are the store's.
	s.expiring.Lock()
	defer s.expiring.Unlock()

	var out uts.Expiry
	budget := int64(limit)
	if r.ExpiresEvents() {
		topics, err := s.topicsFrom(ctx, s.nextTopic)
		if err != nil {
			return out, err
		}
		for _, topic := range topics {
			d := r.For(topic)
			if d <= 0 {
				continue
			}
			cutoff := now.Add(-d).UnixNano()
			for budget > 0 {
				n, done, err := s.expireChunk(ctx, topic, cutoff, min(budget, expireChunkRows))
				out.Events += n
				budget -= n
				if err != nil {
					return out, err
				}
				if done {
					break
				}
			}
			if budget <= 0 {
				// The next call starts with this topic, so that no topic waits behind others.
				s.nextTopic = topic
				out.More = true
				// The fingerprints wait until every expired event is gone: a fingerprint
				// deleted while its event is still stored would let the key in again and
				// collide with the stored event.
				return out, nil
			}
		}
	}
	if r.Fingerprints > 0 {
		cutoff := minutesOf(now.Add(-r.Fingerprints).UnixNano())
		examined, deleted, err := s.sweepFingerprints(ctx, cutoff, int64(limit))
		out.Fingerprints = deleted
		if err != nil {
			return out, err
		}
		// A sweep that found at least half of what it read expired is in a backlog (after
		// Retention.Fingerprints was first set, or shortened): the caller calls again at once.
		// Otherwise it goes on at the next round; see sweepFingerprints.
		out.More = examined > 0 && 2*deleted >= examined
	}
	return out, nil
}

// topicsFrom lists the topics, those from first on (by name) first.
func (s *Store) topicsFrom(ctx context.Context, first string) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT topic FROM topics ORDER BY topic`)
	if err != nil {
		return nil, classify(ctx, "expire: topics", err)
	}
	defer rows.Close()
	var topics []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, classify(ctx, "expire: topics", err)
		}
		topics = append(topics, t)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "expire: topics", err)
	}
	at, _ := slices.BinarySearch(topics, first)
	return append(topics[at:], topics[:at]...), nil
}

// expireChunk deletes, in one write transaction, up to rows of topic's oldest events that
// were processed before cutoff, and counts them; done reports that none of the rest has
// expired.
func (s *Store) expireChunk(ctx context.Context, topic string, cutoff int64, rows int64) (deleted int64, done bool, err error) {
	err = s.withWriter(ctx, func() error {
		return s.transaction(ctx, func() error {
			deleted, done = 0, false
			head := s.writes.expiryHead
			bind := binder{stmt: head}
			bind.text(topic)
			bind.int64(rows)
			if bind.err != nil {
				return classify(ctx, "expire: bind", bind.err)
			}
			var last, read int64
			for head.Step() {
				read++
				if head.ColumnInt64(1) >= cutoff {
					done = true
					break
				}
				last = head.ColumnInt64(0)
				deleted++
			}
			err := head.Err()
			head.Reset()
			if err != nil {
				return classify(ctx, "expire: read oldest", err)
			}
			if read < rows {
				done = true
			}
			if deleted == 0 {
				return nil
			}
			prints, err := s.writes.deleteExpired(topic, last, deleted)
			if err == nil && int64(len(prints)) != deleted {
				err = fmt.Errorf("deleted %d events of topic %q, read %d", len(prints), topic, deleted)
			}
			if err != nil {
				return classify(ctx, "expire: delete", err)
			}
			// The identities outlive the events, in the same transaction; the filter has them
			// before the commit, under the writer, so the next Append looks them up.
			if err := s.writes.recordFingerprints(prints, s.seen); err != nil {
				return classify(ctx, "expire: record fingerprints", err)
			}
			count := binder{stmt: s.writes.addExpired}
			count.int64(deleted)
			count.int64(last)
			count.text(topic)
			if count.err == nil {
				count.err = s.writes.addExpired.Exec()
			}
			if count.err != nil {
				return classify(ctx, "expire: count", count.err)
			}
			return nil
		})
	})
	if err != nil {
		return 0, false, err
	}
	return deleted, done, nil
}

// deleteExpired deletes topic's events up to seq last, and returns their fingerprints.
func (w *writeStatements) deleteExpired(topic string, last, expect int64) ([]expiredPrint, error) {
	del := w.expireEvents
	defer del.Reset()
	bind := binder{stmt: del}
	bind.text(topic)
	bind.int64(last)
	if bind.err != nil {
		return nil, bind.err
	}
	prints := make([]expiredPrint, 0, expect)
	for del.Step() {
		key := uts.Key{Topic: topic, EventID: del.ColumnText(0)}
		prints = append(prints, expiredPrint{
			Fingerprint: uts.FingerprintOf(key, del.ColumnText(1)),
			minutes:     minutesOf(del.ColumnInt64(2)),
		})
	}
	return prints, del.Err()
}

// sweepFingerprintsChunk is the most fingerprints one write transaction reads.
const sweepFingerprintsChunk = 5000

// sweepFingerprints examines up to budget fingerprints, from where the last sweep stopped,
// and deletes those older than cutoffMinutes.
//
// A sweep rather than an index on minutes: an index would take about as many bytes again as
// the fingerprints themselves (the key is most of a row), and a fingerprint is the one thing
// kept for ever per event. Reading fingerprints in key order is fast (docs/benchmarks.md), so a
// sweep that examines limit rows a call goes round the table in table/limit calls; a
// fingerprint outlives Retention.Fingerprints by at most that, and the caller calls again at
// once while at least half of what a sweep reads has expired (Expire).
func (s *Store) sweepFingerprints(ctx context.Context, cutoffMinutes, budget int64) (examined, deleted int64, err error) {
	for budget > 0 {
		var n, d int64
		rows := min(budget, sweepFingerprintsChunk)
		err = s.withWriter(ctx, func() error {
			return s.transaction(ctx, func() error {
				var err error
				n, d, err = s.writes.sweepChunk(&s.sweep, int(rows), cutoffMinutes, s.writer.Changes)
				if err != nil {
					return classify(ctx, "expire: fingerprints", err)
				}
				return nil
			})
		})
		if err != nil {
			return examined, deleted, err
		}
		examined += n
		deleted += d
		budget -= n
		if n < rows { // went round to the start
			break
		}
	}
	return examined, deleted, nil
}

// ExpiredThrough returns the greatest seq of the topics' expired events; see uts.Store.
func (s *Store) ExpiredThrough(ctx context.Context, topics []string) (uts.Cursor, error) {
	if s.closed.Load() {
		return uts.Cursor{}, uts.Unavailable("the store is closed", nil)
	}
	query, args := `SELECT coalesce(max(expired_through), 0) FROM topics`, []any{}
	if len(topics) > 0 {
		list, err := json.Marshal(topics)
		if err != nil {
			return uts.Cursor{}, err
		}
		query, args = query+` WHERE topic IN (SELECT value FROM json_each(?))`, []any{string(list)}
	}
	var c uts.Cursor
	if err := s.read.QueryRowContext(ctx, query, args...).Scan(&c.Seq); err != nil {
		return uts.Cursor{}, classify(ctx, "expired through", err)
	}
	return c, nil
}
