// Package inproc is the in-process broker: a bounded queue in memory whose workers commit
// many requests in one transaction (group commit), while each publisher waits for its own
// request's commit. A 2xx therefore means stored, so nothing needs to survive a crash here.
package inproc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uts-events/uts"
)

// Options tune the broker. New takes the default for a zero QueueEvents, BatchEvents or
// Workers; Linger is taken as given, because 0 is a meaningful choice ("do not wait").
type Options struct {
	QueueEvents int           // capacity in events; default 100_000
	BatchEvents int           // max events per commit; default 5_000
	Linger      time.Duration // max wait to fill a batch; default 2ms, 0 = commit whatever is there
	Workers     int           // concurrent committers; default 2
	// CohortWait applies only with no Linger: how long after a commit a worker still waits
	// for the requests that commit answered to come back (see gather); 0, the default, never
	// waits.
	CohortWait time.Duration
}

// DefaultOptions are the options a user gets without setting any.
func DefaultOptions() Options {
	return Options{
		QueueEvents: defaultQueueEvents,
		BatchEvents: defaultBatchEvents,
		Linger:      defaultLinger,
		Workers:     defaultWorkers,
	}
}

const (
	defaultQueueEvents = 100_000
	defaultBatchEvents = 5_000
	defaultLinger      = 2 * time.Millisecond
	defaultWorkers     = 2
)

func (o Options) withDefaults() Options {
	if o.QueueEvents <= 0 {
		o.QueueEvents = defaultQueueEvents
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = defaultBatchEvents
	}
	if o.Linger < 0 {
		o.Linger = 0
	}
	if o.CohortWait < 0 {
		o.CohortWait = 0
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	return o
}

// Broker implements uts.Broker in memory.
type Broker struct {
	opts Options

	// mu makes "not closed, room left, enqueue" one step, so that no request slips into
	// the queue after shutdown has closed it; it is never held during a commit.
	mu     sync.Mutex
	closed bool
	queue  chan *request // capacity QueueEvents: every request holds >= 1 event, so sends never block

	depth atomic.Int64 // events accepted and not yet answered
}

var _ uts.Broker = (*Broker)(nil)

// New returns a broker that accepts events at once and commits them once Consume runs.
func New(opts Options) *Broker {
	opts = opts.withDefaults()
	return &Broker{opts: opts, queue: make(chan *request, opts.QueueEvents)}
}

// request is one Publish call waiting for its commit.
type request struct {
	events   []uts.Event
	outcomes []uts.Outcome
	err      error
	done     chan struct{} // closed once outcomes or err is set
}

// Publish enqueues the batch and waits until it is committed. The receipt is Committed.
func (b *Broker) Publish(ctx context.Context, events []uts.Event) (uts.Receipt, error) {
	if len(events) == 0 {
		return uts.Receipt{Committed: true, Outcomes: []uts.Outcome{}}, nil
	}
	if err := ctx.Err(); err != nil {
		return uts.Receipt{}, uts.Unavailable("publish abandoned", err)
	}
	if len(events) > b.opts.QueueEvents {
		// Retrying cannot help a batch that would not fit an empty queue.
		return uts.Receipt{}, uts.Errorf(uts.KindTooLarge,
			"batch of %d events exceeds the queue capacity of %d", len(events), b.opts.QueueEvents)
	}
	req := &request{events: events, done: make(chan struct{})}
	if err := b.enqueue(req); err != nil {
		return uts.Receipt{}, err
	}
	select {
	case <-req.done:
		if req.err != nil {
			return uts.Receipt{}, req.err
		}
		return uts.Receipt{Committed: true, Outcomes: req.outcomes}, nil
	case <-ctx.Done():
		// The request stays queued and may still commit; the client's retry then shows
		// up as a duplicate, which is what duplicates are for.
		return uts.Receipt{}, uts.Unavailable("gave up waiting for the commit", ctx.Err())
	}
}

func (b *Broker) enqueue(req *request) error {
	n := int64(len(req.events))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return uts.Unavailable("shutting down", nil)
	}
	// Only enqueue raises depth and it holds mu, so check-then-add cannot overshoot.
	if b.depth.Load()+n > int64(b.opts.QueueEvents) {
		return uts.Unavailable("queue full", fmt.Errorf("%d of %d events queued", b.depth.Load(), b.opts.QueueEvents))
	}
	b.depth.Add(n)
	b.queue <- req
	return nil
}

// Ready fails while the queue is nearly full or the broker is shutting down, so that a load
// balancer sends traffic elsewhere before publishers see 503s.
func (b *Broker) Ready(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return uts.Unavailable("shutting down", nil)
	}
	if depth, limit := b.depth.Load(), int64(b.opts.QueueEvents); depth*10 >= limit*9 {
		return uts.Unavailable("queue saturated", fmt.Errorf("%d of %d events queued", depth, limit))
	}
	return nil
}

// Depth is the number of events accepted and not yet committed or failed.
func (b *Broker) Depth(ctx context.Context) (int64, error) {
	return b.depth.Load(), nil
}

// shutdown stops Publish from accepting and lets the workers' range over the queue end
// once it is empty.
func (b *Broker) shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
}
