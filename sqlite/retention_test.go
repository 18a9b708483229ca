package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
)

// TestSecondOpenerIsRefused: each Store keeps in memory which fingerprints exist, so a second
// Store of the same file, which would not see the first's expiry, would let a late duplicate
// of an expired event in as new (found in review: unique 2, stored 1). A second Open is
// refused while the first is open, as unavailable, which a starting aggregator waits out,
// and succeeds once the first is closed.
func TestSecondOpenerIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	first := open(t, path)
	second, err := sqlite.Open(t.Context(), path)
	if err == nil {
		second.Close()
		t.Fatal("a second Store of an open file was opened")
	}
	if uts.KindOf(err) != uts.KindUnavailable {
		t.Fatalf("second Open: %v (kind %v), want unavailable", err, uts.KindOf(err))
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(t, path)
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
