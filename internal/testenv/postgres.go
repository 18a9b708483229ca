package testenv

import (
	"context"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// adminLimit bounds each statement run on a test server to set a test up or clean it up.
const adminLimit = 30 * time.Second

// PostgresURL is UTS_TEST_POSTGRES_URL; the test is skipped when it is not set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("UTS_TEST_POSTGRES_URL")
	if u == "" {
		t.Skip("UTS_TEST_POSTGRES_URL is not set (e.g. postgres://root@127.0.0.1:5432/test?sslmode=disable)")
	}
	return u
}

// PostgresSchema creates an empty schema of the test's own and returns UTS_TEST_POSTGRES_URL
// with search_path set to it. The schema is dropped when the test ends, after whatever the
// test opens on it later is closed (cleanups run last-in, first-out).
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse UTS_TEST_POSTGRES_URL: %v", err)
	}
	schema := "t_" + randomHex()
	if err := execAdmin(base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if err := execAdmin(base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// execAdmin runs sql on a connection of its own: the test's own pools may be closed already.
func execAdmin(base, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminLimit)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// WithParam returns the postgres:// URL u with the query parameter name set to value. pgx
// sends a parameter it does not know itself (statement_timeout, lock_timeout, …) to the
// server as a setting of each connection: a test can tune its own sessions that way without
// touching the shared server.
func WithParam(t testing.TB, u, name, value string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse %q: %v", u, err)
	}
	q := parsed.Query()
	q.Set(name, value)
	parsed.RawQuery = q.Encode()
	return parsed.String()
}

// LockTable takes LOCK TABLE table IN mode on a connection of its own to u (a URL from
// PostgresSchema, so the table is the test's own) and holds it until release is called or
// the test ends. A stalled database, as its clients see it: it answers, but whatever
// conflicts with the lock waits.
func LockTable(t testing.TB, u, table, mode string) (release func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminLimit)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to lock %s: %v", table, err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN "+mode+" MODE")
	}
	if err != nil {
		conn.Close(context.Background())
		t.Fatalf("lock %s in %s mode: %v", table, mode, err)
	}
	release = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminLimit)
		defer cancel()
		if err := tx.Rollback(ctx); err != nil {
			t.Errorf("release the lock on %s: %v", table, err)
		}
		conn.Close(ctx)
	})
	t.Cleanup(release)
	return release
}
