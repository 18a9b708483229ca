package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/ncruces/go-sqlite3"
)

// schemaVersion is stored in PRAGMA user_version; a file written by a newer version of this
// package is refused rather than misread.
const schemaVersion = 3

// migrations[v] brings a file from version v to v+1.
var migrations = []string{schemaV1, schemaV2, schemaV3}

// schemaV1 creates the events and their counters. Times are unix nanoseconds in UTC:
// integers keep nanoseconds exactly, compare as numbers and cost nothing to parse.
//
// seq is the rowid without AUTOINCREMENT: rows are never deleted, so max(seq)+1 is already
// monotonic, and AUTOINCREMENT would add a write to sqlite_sequence on every insert.
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
		if err := conn.Exec(migrations[v]); err != nil {
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
