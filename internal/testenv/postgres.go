package testenv

import (
	"context"
	"net/url"
	"os"
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
