package inproc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/brokertest"
	"github.com/uts-events/uts/inproc"
)

const waitLimit = 10 * time.Second

func TestConformance(t *testing.T) {
	for name, opts := range map[string]inproc.Options{
		"defaults":   {},
		"noLinger":   {Linger: 0, Workers: 1},
		"cohortWait": {Linger: 0, Workers: 1, CohortWait: time.Millisecond},
		// Batches smaller than most requests: whole requests carried over, and requests
		// larger than a batch committed alone.
		"tinyBatches": {BatchEvents: 4, Linger: time.Millisecond, Workers: 3},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			brokertest.Run(t, func(t *testing.T) uts.Broker { return inproc.New(opts) })
		})
	}
}

// heldCommit is a commit func that stores nothing but counts its calls, fails batches that
// hold a poisoned event id, and holds its first call until released, so that tests can
// fill the queue behind it deterministically.
type heldCommit struct {
	release  chan struct{}
	entered  chan struct{}
	once     sync.Once
	poisoned string

	mu    sync.Mutex
	sizes []int
}

var errPoisoned = errors.New("poisoned batch")

func newHeldCommit() *heldCommit {
	return &heldCommit{release: make(chan struct{}), entered: make(chan struct{})}
}

func (h *heldCommit) commit(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	first := false
	h.once.Do(func() { first = true; close(h.entered) })
	if first {
		select {
		case <-h.release:
		case <-time.After(waitLimit):
			return nil, errors.New("never released")
		}
	}
	h.mu.Lock()
	h.sizes = append(h.sizes, len(events))
	h.mu.Unlock()
	outcomes := make([]uts.Outcome, len(events))
	for i, e := range events {
		if h.poisoned != "" && e.EventID == h.poisoned {
			return nil, errPoisoned
		}
		outcomes[i] = uts.OutcomeNew
	}
	return outcomes, nil
}

func (h *heldCommit) calls() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sizes)
}

func events(tag string, n int) []uts.Event {
	out := make([]uts.Event, n)
	for i := range out {
		out[i] = uts.Event{Topic: "inproc", EventID: fmt.Sprintf("%s-%d", tag, i), Source: "test", Payload: []byte(`{}`)}
	}
	return out
}

func waitDepth(t *testing.T, b *inproc.Broker, want int64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		depth, _ := b.Depth(context.Background())
		if depth == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Depth = %d after %v, want %d", depth, waitLimit, want)
		}
		time.Sleep(time.Millisecond)
	}
}

type published struct {
	receipt uts.Receipt
	err     error
}

// publishAsync publishes in the background; the result arrives on the returned channel.
func publishAsync(ctx context.Context, b *inproc.Broker, batch []uts.Event) <-chan published {
	out := make(chan published, 1)
	go func() {
		receipt, err := b.Publish(ctx, batch)
		out <- published{receipt, err}
	}()
	return out
}

func await(t *testing.T, result <-chan published) published {
	t.Helper()
	select {
	case r := <-result:
		return r
	case <-time.After(waitLimit):
		t.Fatalf("Publish did not return within %v", waitLimit)
		return published{}
	}
}

func TestQueueFullTakesNothing(t *testing.T) {
	t.Parallel()
	b := inproc.New(inproc.Options{QueueEvents: 10})
	ctx := context.Background()
	first := publishAsync(ctx, b, events("a", 6))
	waitDepth(t, b, 6)

	_, err := b.Publish(ctx, events("b", 5))
	if uts.KindOf(err) != uts.KindUnavailable {
		t.Fatalf("Publish into a full queue = %v, want KindUnavailable", err)
	}
	if depth, _ := b.Depth(ctx); depth != 6 {
		t.Errorf("Depth after a refused batch = %d, want 6", depth)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready at 60%%: %v", err)
	}
	if _, err := b.Publish(ctx, events("huge", 11)); uts.KindOf(err) != uts.KindTooLarge {
		t.Errorf("Publish of a batch larger than the queue = %v, want KindTooLarge", err)
	}

	second := publishAsync(ctx, b, events("c", 3))
	waitDepth(t, b, 9)
	if err := b.Ready(ctx); uts.KindOf(err) != uts.KindUnavailable {
		t.Errorf("Ready at 90%% = %v, want KindUnavailable", err)
	}

	brokertest.Consume(t, b, newHeldCommit().commitReleased())
	for _, r := range []published{await(t, first), await(t, second)} {
		if r.err != nil || !r.receipt.Committed {
			t.Errorf("Publish = %+v, %v; want committed", r.receipt, r.err)
		}
	}
	waitDepth(t, b, 0)
}

// commitReleased is the commit func with nothing held.
func (h *heldCommit) commitReleased() uts.CommitFunc {
	close(h.release)
	return h.commit
}

// fillBehindHeldCommit publishes first, waits until its commit is held, then publishes the
// rest, which queue up behind it; it returns the results in order.
func fillBehindHeldCommit(t *testing.T, b *inproc.Broker, h *heldCommit, batches [][]uts.Event) []<-chan published {
	t.Helper()
	ctx := context.Background()
	results := []<-chan published{publishAsync(ctx, b, batches[0])}
	select {
	case <-h.entered:
	case <-time.After(waitLimit):
		t.Fatal("the first commit never started")
	}
	total := 0
	for _, batch := range batches[1:] {
		results = append(results, publishAsync(ctx, b, batch))
		total += len(batch)
	}
	waitDepth(t, b, int64(len(batches[0])+total))
	close(h.release)
	return results
}

func TestGroupCommitSharesTransactions(t *testing.T) {
	t.Parallel()
	b := inproc.New(inproc.Options{Workers: 1})
	h := newHeldCommit()
	brokertest.Consume(t, b, h.commit)

	const publishes = 50
	batches := make([][]uts.Event, publishes)
	for i := range batches {
		batches[i] = events(fmt.Sprintf("g%d", i), 1)
	}
	for i, result := range fillBehindHeldCommit(t, b, h, batches) {
		r := await(t, result)
		if r.err != nil || !r.receipt.Committed || len(r.receipt.Outcomes) != 1 {
			t.Errorf("publish %d = %+v, %v", i, r.receipt, r.err)
		}
	}
	if calls := h.calls(); len(calls) >= publishes {
		t.Errorf("%d publishes took %d commits; want fewer (grouped)", publishes, len(calls))
	}
}

func TestFailingRequestDoesNotFailItsGroup(t *testing.T) {
	t.Parallel()
	b := inproc.New(inproc.Options{Workers: 1})
	h := newHeldCommit()
	h.poisoned = "bad-1"
	brokertest.Consume(t, b, h.commit)

	batches := [][]uts.Event{events("first", 1), events("x", 2), events("bad", 3), events("y", 2)}
	results := fillBehindHeldCommit(t, b, h, batches)
	for i, result := range results {
		r := await(t, result)
		if i == 2 {
			if !errors.Is(r.err, errPoisoned) {
				t.Errorf("the poisoned request's Publish = %v, want its commit's error", r.err)
			}
			continue
		}
		if r.err != nil || !r.receipt.Committed || len(r.receipt.Outcomes) != len(batches[i]) {
			t.Errorf("neighbour %d = %+v, %v; want committed", i, r.receipt, r.err)
		}
	}
	if !slices.Contains(h.calls(), 7) {
		t.Errorf("commit calls %v: the three queued requests were never tried as one group of 7", h.calls())
	}
	waitDepth(t, b, 0)
}

func TestRequestLargerThanABatchIsCommittedAlone(t *testing.T) {
	t.Parallel()
	b := inproc.New(inproc.Options{BatchEvents: 4})
	h := newHeldCommit()
	brokertest.Consume(t, b, h.commitReleased())
	receipt, err := b.Publish(context.Background(), events("big", 10))
	if err != nil || len(receipt.Outcomes) != 10 {
		t.Fatalf("Publish = %+v, %v", receipt, err)
	}
	if calls := h.calls(); !slices.Equal(calls, []int{10}) {
		t.Errorf("commit calls %v, want one of 10 events", calls)
	}
}

func TestPublishAfterShutdownIsUnavailable(t *testing.T) {
	t.Parallel()
	b := inproc.New(inproc.Options{})
	stop := brokertest.Consume(t, b, newHeldCommit().commitReleased())
	stop()
	ctx := context.Background()
	if _, err := b.Publish(ctx, events("late", 1)); uts.KindOf(err) != uts.KindUnavailable {
		t.Errorf("Publish after shutdown = %v, want KindUnavailable", err)
	}
	if err := b.Ready(ctx); uts.KindOf(err) != uts.KindUnavailable {
		t.Errorf("Ready after shutdown = %v, want KindUnavailable", err)
	}
}

func TestPublishStopsWaitingWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	b := inproc.New(inproc.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	result := publishAsync(ctx, b, events("impatient", 2))
	waitDepth(t, b, 2)
	cancel()
	if r := await(t, result); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Publish = %v, want context.Canceled", r.err)
	}
	// The request was accepted, so it is still committed: the client's retry will be a
	// duplicate rather than a loss.
	h := newHeldCommit()
	brokertest.Consume(t, b, h.commitReleased())
	waitDepth(t, b, 0)
	if calls := h.calls(); !slices.Equal(calls, []int{2}) {
		t.Errorf("commit calls %v, want the abandoned request's 2 events", calls)
	}
}

// TestShutdownLeavesNoGoroutines runs a broker's whole life in a synctest bubble, which
// fails if any goroutine the broker started is still blocked when the test ends.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := inproc.New(inproc.Options{Workers: 3, BatchEvents: 5})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Consume(ctx, newHeldCommit().commitReleased()) }()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				if _, err := b.Publish(t.Context(), events(fmt.Sprintf("s%d", i), 1+i%7)); err != nil {
					t.Errorf("Publish: %v", err)
				}
			})
		}
		wg.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
}
