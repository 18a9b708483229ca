package http

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uts-events/uts"
)

// defaultStoreTimeout bounds each store call a request makes, unless Config.StoreTimeout says
// otherwise.
const defaultStoreTimeout = 30 * time.Second

// errStoreTimedOut is the cause of a store call's context that boundedStore ended.
var errStoreTimedOut = errors.New("the store call took longer than the store timeout")

// boundedStore gives each store call of a request a deadline: a stalled store (a table
// locked with no statement_timeout, a disk that hangs) then answers 503 "the store timed
// out", instead of holding the request, its waiting slot and a graceful shutdown for as long
// as the stall lasts. A wait= or a stream waits between reads, not inside one, so the bound
// is per read, whatever the wait.
type boundedStore struct {
	uts.Store
	limit time.Duration
}

func (s boundedStore) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.limit, errStoreTimedOut)
}

// timedOut names a call that the bound ended for what it is, whatever the store made of its
// cancelled statement.
func timedOut(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errStoreTimedOut) {
		return uts.Unavailable("the store timed out", fmt.Errorf("%w: %w", errStoreTimedOut, err))
	}
	return err
}

func (s boundedStore) Events(ctx context.Context, q uts.EventQuery) ([]uts.StoredEvent, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	events, err := s.Store.Events(ctx, q)
	return events, timedOut(ctx, err)
}

func (s boundedStore) ExpiredThrough(ctx context.Context, topics []string) (uts.Cursor, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	c, err := s.Store.ExpiredThrough(ctx, topics)
	return c, timedOut(ctx, err)
}

func (s boundedStore) Stats(ctx context.Context) (uts.Stats, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	stats, err := s.Store.Stats(ctx)
	return stats, timedOut(ctx, err)
}

func (s boundedStore) CreateSubscription(ctx context.Context, spec uts.SubscriptionSpec) (uts.Subscription, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	sub, created, err := s.Store.CreateSubscription(ctx, spec)
	return sub, created, timedOut(ctx, err)
}

func (s boundedStore) Subscription(ctx context.Context, name string, countLag bool) (uts.Subscription, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	sub, err := s.Store.Subscription(ctx, name, countLag)
	return sub, timedOut(ctx, err)
}

func (s boundedStore) CommitSubscription(ctx context.Context, name string, c uts.Cursor, reset bool) (uts.Subscription, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	sub, err := s.Store.CommitSubscription(ctx, name, c, reset)
	return sub, timedOut(ctx, err)
}

func (s boundedStore) ListSubscriptions(ctx context.Context) ([]uts.Subscription, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	subs, err := s.Store.ListSubscriptions(ctx)
	return subs, timedOut(ctx, err)
}

func (s boundedStore) DeleteSubscription(ctx context.Context, name string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return timedOut(ctx, s.Store.DeleteSubscription(ctx, name))
}
