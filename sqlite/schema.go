package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/ncruces/go-sqlite3"
)

// schemaVersion is stored in PRAGMA user_version; a file written by a newer version of this
// package is refused rather than misread.
const schemaVersion = 4

// migrations[v] brings a file from version v to v+1, inside migrate's transaction.
var migrations = []func(*sqlite3.Conn) error{execMigration(schemaV1), execMigration(schemaV2), execMigration(schemaV3), migrateV4}

func execMigration(sql string) func(*sqlite3.Conn) error {
	return func(conn *sqlite3.Conn) error { return conn.Exec(sql) }
}

// schemaV1 creates the events and their counters. Times are unix nanoseconds in UTC:
// integers keep nanoseconds exactly, compare as numbers and cost nothing to parse.
//
// seq is the rowid without AUTOINCREMENT. Up to version 3 rows were never deleted, so
// SQLite's max(seq)+1 was monotonic; since retention deletes them (version 4), Append assigns
// seq itself from counters.last_seq (see schemaV4).
const schemaV1 = `
CREATE TABLE events (
	seq          INTEGER PRIMARY KEY,
	topic        TEXT    NOT NULL,
	event_id     TEXT    NOT NULL,
	ts           INTEGER NOT NULL,
	source       TEXT    NOT NULL,
	payload      TEXT    NOT NULL,
	content_hash TEXT    NOT NULL,
	processed_at INTEGER NOT NULL,
	UNIQUE (topic, event_id)
);
-- Paging one topic in processing order.
CREATE INDEX events_topic_seq ON events (topic, seq);

CREATE TABLE counters (
	id                  INTEGER PRIMARY KEY CHECK (id = 1),
	received            INTEGER NOT NULL DEFAULT 0,
	unique_processed    INTEGER NOT NULL DEFAULT 0,
	duplicate_dropped   INTEGER NOT NULL DEFAULT 0,
	duplicate_conflicts INTEGER NOT NULL DEFAULT 0,
	dead_lettered       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO counters (id) VALUES (1);

CREATE TABLE topics (
	topic            TEXT    PRIMARY KEY,
	unique_processed INTEGER NOT NULL DEFAULT 0,
	duplicates       INTEGER NOT NULL DEFAULT 0,
	conflicts        INTEGER NOT NULL DEFAULT 0,
	last_event_at    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`

// schemaV2 adds the broker deliveries already committed (see uts.Event.Delivery). The key
// includes the event's, so that two brokers that happen to number an entry alike cannot
// make one event pass for another's redelivery.
const schemaV2 = `
CREATE TABLE deliveries (
	delivery    TEXT    NOT NULL,
	topic       TEXT    NOT NULL,
	event_id    TEXT    NOT NULL,
	recorded_at INTEGER NOT NULL,
	PRIMARY KEY (delivery, topic, event_id)
) WITHOUT ROWID;
-- Pruning the oldest.
CREATE INDEX deliveries_recorded_at ON deliveries (recorded_at);
`

// schemaV3 adds the durable subscriptions (uts.Subscriptions). topics is a JSON array,
// sorted; cursor_seq is the committed cursor (a cursor's Tx is always 0 here). The name's
// BINARY collation sorts as Go does.
const schemaV3 = `
CREATE TABLE subscriptions (
	name       TEXT    PRIMARY KEY,
	topics     TEXT    NOT NULL,
	start      TEXT    NOT NULL,
	cursor_seq INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`

// schemaV4 adds retention (issue #10).
//
// fingerprints keeps the identity of each event that retention deleted (see uts.Fingerprint
// and fingerprints.go); the events still stored are found by their own UNIQUE index. key is the
// 16-byte uts.KeyFingerprint, content the uts.ContentTag stored as a signed 32-bit integer
// (SQLite stores any int32 in 4 bytes, a uint32 past 2³¹ in 6), minutes the event's
// processed_at in whole minutes since the epoch, for Retention.Fingerprints. WITHOUT ROWID
// makes the key the table's own B-tree: no rowid and no second index, which is what keeps a
// fingerprint under 40 bytes on disk.
//
// topics.expired counts the topic's events deleted by retention and expired_through is the
// greatest seq among them (uts.Store.ExpiredThrough), both moved in the deleting transaction.
//
// counters.last_seq is the greatest seq ever handed out. Expiry may delete the newest events,
// after which SQLite's own choice, max(rowid)+1, would hand their seq out again and a reader
// that had read them would skip the new ones. Append reads last_seq, last_processed_at and
// max(seq) at the start of its transaction (point reads of pages always in cache) and writes
// the marks back in the UPDATE of the counters it did already. While max(seq) is last_seq it
// lets SQLite number the rows; only after the newest events expired does it number a batch
// itself, from last_seq+1, since binding a rowid costs a seek a row (about a tenth of an
// Append of 1000). AUTOINCREMENT would have written sqlite_sequence on every INSERT statement
// (several a batch) and could only be had by copying the whole events table. last_processed_at
// keeps processed_at from going backwards when the clock steps back, so that each topic's
// events in seq order are in processed_at order too: what has expired is always a prefix of
// the topic's feed, which Expire deletes oldest first through the (topic, seq) index and
// without an index on processed_at.
const schemaV4 = `
CREATE TABLE fingerprints (
	key     BLOB    PRIMARY KEY,
	content INTEGER NOT NULL,
	minutes INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE topics ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topics ADD COLUMN expired_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE counters ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE counters ADD COLUMN last_processed_at INTEGER NOT NULL DEFAULT 0;
`

// migrateV4 creates the version 4 tables and sets the counters' high-water marks from the
// events stored. No fingerprint is needed for them: a fingerprint is written when its event
// expires (see fingerprints.go), and nothing expired before version 4.
func migrateV4(conn *sqlite3.Conn) error {
	if err := conn.Exec(schemaV4); err != nil {
		return err
	}
	return conn.Exec(`UPDATE counters SET
		last_seq = (SELECT coalesce(max(seq), 0) FROM events),
		last_processed_at = (SELECT coalesce(max(processed_at), 0) FROM events)
		WHERE id = 1`)
}

// migrate brings the file to schemaVersion in one transaction, so a crash mid-way leaves
// the file as it was.
func migrate(ctx context.Context, conn *sqlite3.Conn) (err error) {
	conn.SetInterrupt(ctx)
	defer conn.SetInterrupt(context.Background())
	if err := conn.Exec(`BEGIN IMMEDIATE`); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			conn.SetInterrupt(context.Background())
			conn.Exec(`ROLLBACK`)
		}
	}()
	version, err := userVersion(conn)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version == schemaVersion:
		return conn.Exec(`COMMIT`)
	case version > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this program's %d", version, schemaVersion)
	}
	for v := version; v < schemaVersion; v++ {
		if err := migrations[v](conn); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no parameters; schemaVersion is a constant.
	if err := conn.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return conn.Exec(`COMMIT`)
}

func userVersion(conn *sqlite3.Conn) (int, error) {
	stmt, _, err := conn.Prepare(`PRAGMA user_version`)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	if !stmt.Step() {
		return 0, errors.Join(stmt.Err(), errors.New("no row"))
	}
	return stmt.ColumnInt(0), nil
}
