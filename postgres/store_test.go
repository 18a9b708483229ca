package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) func() (uts.Store, error) {
		u := newSchema(t)
		return func() (uts.Store, error) { return postgres.Open(t.Context(), u) }
	})
}

// newSchema creates an empty schema, drops it when the test ends, and returns a URL whose
// search_path points at it, so that tests run in parallel without seeing each other.
func newSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv("UTS_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("UTS_TEST_POSTGRES_URL is not set")
	}
	var random [6]byte
	rand.Read(random[:])
	schema := "t_" + hex.EncodeToString(random[:])

	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse UTS_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// openStore opens a store in a fresh schema and closes it when the test ends.
func openStore(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	u := newSchema(t)
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, u
}
