package storetest

import (
	"io"
	"strings"
	"testing"

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
