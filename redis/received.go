package redis

import (
	"context"

	"github.com/uts-events/uts"
)

// CountingAccepted returns store with its Stats counting, in received, the events this broker
// accepted and no consumer has committed yet, so that /stats counts a batch as soon as its
// 202 is sent. Those events are the queued counter, which Publish raises in the MULTI/EXEC
// that adds their entries and the acknowledgement lowers (see Depth). The store stays the
// authority for everything committed; only received moves.
//
// The counter is read before the store, so no accepted event is ever missed: an event is
// either still counted in the queued counter read first, or it was acknowledged before,
// hence committed before, hence in the store's counters read after. The reverse does not
// hold: an entry the store committed, and Redis has not yet acknowledged, is counted twice,
// for that one round trip (or, when its acknowledgement fails, until a redelivery
// acknowledges it). So received is exact once nothing is in flight, never short of an
// accepted event, and at most the in-flight commits' events over.
func (b *Broker) CountingAccepted(store uts.Store) uts.Store {
	return countingAccepted{Store: store, broker: b}
}

type countingAccepted struct {
	uts.Store
	broker *Broker
}

func (s countingAccepted) Stats(ctx context.Context) (uts.Stats, error) {
	queued, err := s.broker.Depth(ctx)
	if err != nil {
		return uts.Stats{}, err
	}
	stats, err := s.Store.Stats(ctx)
	if err != nil {
		return uts.Stats{}, err
	}
	stats.Received += queued
	return stats, nil
}
