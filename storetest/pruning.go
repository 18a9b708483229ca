package storetest

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
)

// FailedPruningIsLogged holds a store's background pruning of deliveries to logging a
// failure, which no caller is there to hear. open returns a store whose logger writes to w,
// and a func that runs one pruning as the store's ticker does. Pruning is not part of
// uts.Store, so this runs beside Run rather than in it.
func FailedPruningIsLogged(t *testing.T, open func(w io.Writer) (s uts.Store, prune func())) {
	var logs testenv.Buffer
	s, prune := open(&logs)
	prune() // nothing to prune, nothing to say
	if logs.String() != "" {
		t.Fatalf("a pruning run that worked logged %q", logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	prune()
	if got := logs.String(); !strings.Contains(got, "pruning deliveries failed") || !strings.Contains(got, "closed") {
		t.Fatalf("a failed pruning run logged %q, want the failure and its error", got)
	}
}

// PruneForgetsOldDeliveries holds a store's pruning to forgetting exactly the deliveries
// older than the retention: one delivery is aged past it, a pruning run deletes it alone,
// and then its redelivery counts again while the young one's still counts nothing. age
// moves the named delivery's recorded time back past uts.DeliveryRetention; prune runs one
// pruning with the given cutoff and says how many it deleted.
func PruneForgetsOldDeliveries(t *testing.T, s uts.Store, age func(delivery string), prune func(cutoff time.Time) (int64, error)) {
	old, young := newEvent("t", "old"), newEvent("t", "young")
	old.Delivery, young.Delivery = "1-0", "2-0"
	appendOK(t, s, old, young)
	age(old.Delivery)
	if n, err := prune(time.Now().Add(-uts.DeliveryRetention)); err != nil || n != 1 {
		t.Fatalf("pruning = %d, %v; want 1 pruned", n, err)
	}
	wantOutcomes(t, appendOK(t, s, old, young), duplicate, duplicate)
	// Only the pruned one counted again.
	wantCounters(t, s, uts.Counters{Received: 3, UniqueProcessed: 2, DuplicateDropped: 1})
}
