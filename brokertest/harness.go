package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
)

// waitLimit bounds every wait in the suite. A broker's redelivery delays must be well
// below it in the brokers that newBroker returns.
const waitLimit = 10 * time.Second

// waitFor polls until check returns nil, and fails the test with check's last error after
// waitLimit.
func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	testenv.Eventually(t, what, waitLimit, 5*time.Millisecond, check)
}

// consumption is one running Consume call.
type consumption struct {
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	err      error
}

// Consume runs b.Consume until stop or the end of the test, and fails the test (when it
// ends) if Consume returned an error or did not return within waitLimit of its context's end.
func Consume(t testing.TB, b uts.Broker, commit uts.CommitFunc) (stop func()) {
	t.Helper()
	c := startConsume(t, b, commit)
	return func() { c.stop() } // startConsume's cleanup reports what Consume returned
}

// startConsume runs b.Consume until stop or the end of the test.
func startConsume(t testing.TB, b uts.Broker, commit uts.CommitFunc) *consumption {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumption{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- b.Consume(ctx, commit) }()
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
	return c
}

// stop cancels Consume's context and returns what Consume returned.
func (c *consumption) stop() error {
	c.stopOnce.Do(func() {
		c.cancel()
		select {
		case c.err = <-c.done:
		case <-time.After(waitLimit):
			c.err = fmt.Errorf("did not return within %v of its context's end", waitLimit)
		}
	})
	return c.err
}

// newEvents returns n distinct events whose ids start with tag.
func newEvents(tag string, n int) []uts.Event {
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	events := make([]uts.Event, n)
	for i := range events {
		events[i] = uts.Event{
			Topic:     "brokertest",
			EventID:   fmt.Sprintf("%s-%d", tag, i),
			Timestamp: base.Add(time.Duration(i) * time.Microsecond),
			Source:    "brokertest",
			Payload:   json.RawMessage(fmt.Sprintf(`{"n":%d,"tag":%q}`, i, tag)),
		}
	}
	return events
}

// publish publishes within waitLimit.
func publish(b uts.Broker, events []uts.Event) (uts.Receipt, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return b.Publish(ctx, events)
}

// checkReceipt checks that a Committed receipt tells what commit answered for these very
// events, and that the commit happened before Publish returned.
func checkReceipt(rec *recorder, events []uts.Event, receipt uts.Receipt) error {
	if !receipt.Committed {
		return nil
	}
	if len(receipt.Outcomes) != len(events) {
		return fmt.Errorf("committed receipt has %d outcomes for %d events", len(receipt.Outcomes), len(events))
	}
	var errs []error
	seen := make(map[uts.Key]int, len(events))
	for i, e := range events {
		nth := seen[e.Key()]
		seen[e.Key()]++
		if _, ok := rec.storedHash(e.Key()); !ok {
			errs = append(errs, fmt.Errorf("event %d (%s) not committed when Publish returned Committed", i, e.EventID))
			continue
		}
		if got, want := receipt.Outcomes[i], rec.lastOutcome(e.Key(), nth); got != want {
			errs = append(errs, fmt.Errorf("event %d (%s): receipt says %v, commit answered %v", i, e.EventID, got, want))
		}
	}
	return errors.Join(errs...)
}

// checkIntact checks that every event reached commit as it was published.
func checkIntact(t *testing.T, rec *recorder, events []uts.Event) {
	t.Helper()
	for _, e := range events {
		got, ok := rec.storedHash(e.Key())
		if !ok {
			t.Errorf("event %s never committed", e.EventID)
		} else if got != e.ContentHash() {
			t.Errorf("event %s committed with other content than published", e.EventID)
		}
	}
}

// waitDepthZero waits until the broker reports nothing in flight.
func waitDepthZero(t *testing.T, b uts.Broker) {
	t.Helper()
	waitFor(t, "Depth to return to 0", func() error {
		depth, err := b.Depth(context.Background())
		if err == nil && depth != 0 {
			err = fmt.Errorf("Depth is %d", depth)
		}
		return err
	})
}
