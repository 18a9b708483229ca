package uts

import "context"

// CommitFunc stores one batch; the consumer provides it (Store.Append plus logging and
// metrics). A broker calls it with batches it has gathered.
type CommitFunc func(ctx context.Context, events []Event) ([]Outcome, error)

// Receipt says what a broker did with a published batch.
type Receipt struct {
	// Committed is true when the events were stored before Publish returned (the in-process
	// broker: the API answers 200). It is false when they were durably queued for a consumer
	// (the Redis broker: the API answers 202).
	Committed bool
	// Outcomes, when Committed, are the batch's outcomes in order.
	Outcomes []Outcome
}

// Broker carries validated batches from the API to the consumers. inproc/ and redis/ pass the
// brokertest conformance suite.
type Broker interface {
	// Publish hands a batch over. It returns an error of KindUnavailable when the broker cannot
	// take the batch now (a full queue, Redis down): nothing of the batch was taken then.
	Publish(ctx context.Context, events []Event) (Receipt, error)
	// Consume delivers batches to commit until ctx is cancelled, then finishes what it had
	// accepted and returns. It returns nil after a clean drain.
	Consume(ctx context.Context, commit CommitFunc) error
	// Ready reports whether Publish would be accepted now.
	Ready(ctx context.Context) error
	// Depth is the number of events accepted but not yet committed (queue depth, or stream
	// entries pending and not yet delivered).
	Depth(ctx context.Context) (int64, error)
}
