package postgres_test

import (
	"context"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) func() (uts.Store, error) {
		u := testenv.PostgresSchema(t)
		return func() (uts.Store, error) { return postgres.Open(t.Context(), u) }
	})
}

// openStore opens a store in a fresh schema and closes it when the test ends.
func openStore(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	u := testenv.PostgresSchema(t)
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, u
}
