package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// TestExpiryByAnotherOpenerKeepsKeys: Open waits for the write lock (busy_timeout) rather
// than refuse a file that another Store, in this process or another, has open. Each Store
// keeps in memory which fingerprints exist; one that did not see them written by the other
// must not let a late duplicate of an expired event in as new.
func TestExpiryByAnotherOpenerKeepsKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	appender := open(t, path)
	defer appender.Close()
	expirer := open(t, path)
	defer expirer.Close()

	if outcomes, err := appender.Append(t.Context(), []uts.Event{event("1")}); err != nil || outcomes[0] != uts.OutcomeNew {
		t.Fatalf("Append: %v, %v", outcomes, err)
	}
	e, err := expirer.Expire(t.Context(), uts.Retention{Events: time.Hour}, time.Now().Add(2*time.Hour), 100)
	if err != nil || e.Events != 1 {
		t.Fatalf("Expire = %+v, %v; want the event", e, err)
	}
	outcomes, err := appender.Append(t.Context(), []uts.Event{event("1")})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	st, err := appender.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if outcomes[0] != uts.OutcomeDuplicate || st.UniqueProcessed != 1 || st.Stored != 0 {
		t.Errorf("a late duplicate appended by the other opener: %v, unique %d, stored %d; want a duplicate, 1 unique, none stored",
			outcomes[0], st.UniqueProcessed, st.Stored)
	}
}
