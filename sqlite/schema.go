package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is stored in PRAGMA user_version; a file written by a newer version of this
// package is refused rather than misread.
const schemaVersion = 1

// schema creates version 1. Times are unix nanoseconds in UTC: integers keep nanoseconds
// exactly, compare as numbers and cost nothing to parse.
//
// seq is the rowid without AUTOINCREMENT: rows are never deleted, so max(seq)+1 is already
// monotonic, and AUTOINCREMENT would add a write to sqlite_sequence on every insert.
const schema = `
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

PRAGMA user_version = 1;
`

// migrate brings the file to schemaVersion in one transaction, so a crash mid-way leaves
// the file as it was.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version == schemaVersion:
		return nil
	case version > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this program's %d", version, schemaVersion)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return tx.Commit()
}
