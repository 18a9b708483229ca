package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, commitDelay func() time.Duration) storetest.Opener {
		// A connection for every writer of the feed's tests and their reader, so that the
		// pool does not queue them into commit order.
		u := testenv.PostgresSchema(t) + "&pool_max_conns=12"
		var opts []postgres.Option
		if commitDelay != nil {
			opts = append(opts, postgres.WithCommitDelay(commitDelay))
		}
		return func() (uts.Store, error) { return postgres.Open(t.Context(), u, opts...) }
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
