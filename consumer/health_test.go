package consumer_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
)

// failingAppends is a store whose Append of events fails with err while err is set.
type failingAppends struct {
	uts.Store
	err error
}

func (s *failingAppends) Append(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	if s.err != nil && len(events) > 0 {
		return nil, s.err
	}
	return s.Store.Append(ctx, events)
}

// TestReadyFollowsTheLatestCommit: a store can answer pings while its writes time out, so
// the consumer is not ready while its latest commit failed with uts.Unavailable, and ready
// again once one goes through. A rejected batch says nothing about the store.
func TestReadyFollowsTheLatestCommit(t *testing.T) {
	t.Parallel()
	store := &failingAppends{Store: openStore(t)}
	c := consumer.New(store, nil)
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready before any commit: %v", err)
	}

	store.err = uts.Unavailable("the store timed out", errors.New("postgres: append: statement timeout"))
	if _, err := c.Commit(t.Context(), newEvents("a", 1)); uts.KindOf(err) != uts.KindUnavailable {
		t.Fatalf("Commit: %v; want the store's uts.Unavailable", err)
	}
	if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "the store timed out") {
		t.Errorf("Ready after a timed-out commit: %v; want the store's error", err)
	}
	if _, err := c.Commit(t.Context(), nil); err != nil {
		t.Fatalf("Commit of nothing: %v", err)
	}
	if err := c.Ready(); err == nil {
		t.Errorf("Ready after an empty batch, which never reaches the store: nil; want the last failure")
	}

	store.err = nil
	commit(t, c, newEvents("b", 1))
	if err := c.Ready(); err != nil {
		t.Errorf("Ready after a commit went through: %v", err)
	}

	store.err = errors.New("rejected for good")
	if _, err := c.Commit(t.Context(), newEvents("c", 1)); err == nil {
		t.Fatal("Commit: nil; want the rejection")
	}
	if err := c.Ready(); err != nil {
		t.Errorf("Ready after a rejected batch: %v; a rejection is not an outage", err)
	}
}
