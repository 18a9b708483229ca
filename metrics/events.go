package metrics

import (
	"context"
	"time"

	"github.com/uts-events/uts"
)

// Committed counts a committed batch's outcomes and observes its size and latency. It makes
// *Metrics a consumer.Observer: pass it with consumer.WithObserver.
func (m *Metrics) Committed(batch int, t uts.Tally, d time.Duration) {
	m.events.WithLabelValues(OutcomeUnique).Add(float64(t.Unique))
	m.events.WithLabelValues(OutcomeDuplicate).Add(float64(t.Duplicates - t.Conflicts))
	m.events.WithLabelValues(OutcomeConflict).Add(float64(t.Conflicts))
	m.batchEvents.Observe(float64(batch))
	m.commitDuration.Observe(d.Seconds())
}

// DeadLetters wraps a dead-letter func (Store.DeadLetter, handed to the Redis broker) so
// that the events it counts are counted here too, once the store has taken them.
func (m *Metrics) DeadLetters(deadLetter func(ctx context.Context, delivery string, n int) error) func(ctx context.Context, delivery string, n int) error {
	dead := m.events.WithLabelValues(OutcomeDeadLettered)
	return func(ctx context.Context, delivery string, n int) error {
		if err := deadLetter(ctx, delivery, n); err != nil {
			return err
		}
		dead.Add(float64(n))
		return nil
	}
}

// Broker registers the queue gauges for b (see watchQueue) and returns b counting every
// event it accepts as received. Call it once per Metrics.
func (m *Metrics) Broker(b uts.Broker) uts.Broker {
	m.watchQueue(b)
	return &countingBroker{Broker: b, received: m.events.WithLabelValues(OutcomeReceived)}
}

// countingBroker counts at Publish, the one place every event passes whichever broker
// carries it. A Publish that fails took nothing (the Broker contract), so only successes
// count. The in-process broker may still commit a batch whose publisher gave up waiting for
// it; such a batch is stored but not counted as received here.
type countingBroker struct {
	uts.Broker
	received interface{ Add(float64) }
}

func (b *countingBroker) Publish(ctx context.Context, events []uts.Event) (uts.Receipt, error) {
	receipt, err := b.Broker.Publish(ctx, events)
	if err == nil {
		b.received.Add(float64(len(events)))
	}
	return receipt, err
}
