package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
)

// TestErrorsAreClassified provokes real SQLite errors: a locked, full or read-only database
// is uts.Unavailable, retry later, with a message that says what is wrong with the store,
// and the driver's error stays wrapped for the log.
func TestErrorsAreClassified(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "errors.db")
	open := func(t *testing.T) *sqlite3.Conn {
		t.Helper()
		conn, err := sqlite3.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	if err := open(t).Exec("CREATE TABLE t (a)"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, setup, sql, message string
		code                      sqlite3.ErrorCode
	}{
		{"read-only", "PRAGMA query_only = 1", "INSERT INTO t VALUES (1)", "the store is read-only", sqlite3.READONLY},
		{"full", "PRAGMA max_page_count = 2", "INSERT INTO t SELECT randomblob(100000)", "the store is out of disk space", sqlite3.FULL},
		{"busy", "PRAGMA busy_timeout = 0", "BEGIN IMMEDIATE", "the store is busy", sqlite3.BUSY},
	}
	holder := open(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.code == sqlite3.BUSY {
				if err := holder.Exec("BEGIN IMMEDIATE"); err != nil {
					t.Fatal(err)
				}
				defer holder.Exec("ROLLBACK")
			}
			conn := open(t)
			if err := conn.Exec(c.setup); err != nil {
				t.Fatal(err)
			}
			raw := conn.Exec(c.sql)
			if !errors.Is(raw, c.code) {
				t.Fatalf("%s: %v; want code %v", c.sql, raw, c.code)
			}
			err := sqlite.Classify(context.Background(), "append", raw)
			var e *uts.Error
			if !errors.As(err, &e) || e.Kind != uts.KindUnavailable || e.Message != c.message {
				t.Fatalf("%v: want uts.Unavailable with the message %q", err, c.message)
			}
			if !strings.Contains(err.Error(), "sqlite: append") || !errors.Is(err, raw) {
				t.Errorf("%q: the operation and the driver's error must stay in the error for the log", err)
			}
		})
	}
}
