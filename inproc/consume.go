package inproc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uts-events/uts"
)

// Consume runs the workers until ctx ends, then refuses new batches, commits every batch it
// had accepted and returns nil. Commits run on a context that ctx's cancellation does not
// reach: an accepted request is a promise to its waiting publisher, so shutdown keeps it.
func (b *Broker) Consume(ctx context.Context, commit uts.CommitFunc) error {
	commitCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range b.opts.Workers {
		w := &worker{
			queue:       b.queue,
			depth:       &b.depth,
			commit:      commit,
			ctx:         commitCtx,
			batchEvents: b.opts.BatchEvents,
			linger:      b.opts.Linger,
			cohortLimit: b.opts.CohortWait,
		}
		wg.Go(w.run)
	}
	<-ctx.Done()
	b.shutdown()
	wg.Wait()
	return nil
}

// worker gathers whole requests into one batch and commits them together. Its buffers are
// reused from batch to batch, so a commit allocates nothing here but what commit itself does.
type worker struct {
	queue       <-chan *request
	depth       *atomic.Int64
	commit      uts.CommitFunc
	ctx         context.Context
	batchEvents int
	linger      time.Duration
	cohortLimit time.Duration // Options.CohortWait

	batch  []*request
	events []uts.Event
	carry  *request // taken from the queue but did not fit the last batch
	timer  *time.Timer
	// lastAnswered is how many requests the last commit answered, lastTook how long it took
	// and lastEnded when: the cohort that the next group waits for, and until when (see
	// gather).
	lastAnswered int
	lastTook     time.Duration
	lastEnded    time.Time
}

func (w *worker) run() {
	for {
		first := w.carry
		w.carry = nil
		if first == nil {
			var ok bool
			if first, ok = <-w.queue; !ok {
				return
			}
		}
		w.gather(first)
		w.commitBatch()
	}
}

// gather adds queued requests after first until the batch is full, the linger has passed
// (or, with no linger, the queue is momentarily empty), or the queue is closed and drained.
//
// With no linger, a queue found empty while the group holds fewer than half the requests the
// last commit answered is waited on once more, for the rest of that cohort: publishers send
// their next request when their answer comes, so a commit that answered many is followed by
// a wave of requests a moment later. Committing the few that came first would make the wave
// wait a whole commit behind them and pay a commit of its own; waiting for it costs the few
// part of one. The wait ends as soon as the group holds half the cohort, and at the latest
// cohortLimit after the last commit ended, or as long after it as that commit took, whichever
// is sooner: beyond that a second commit is the cheaper choice, and a cohort that has not
// come back by then (publishers that stopped, or back off) is not waited for. At light load
// the cohort is one request, the one that starts the group, so nothing waits
// (docs/benchmarks.md, issue #11, fifth round).
func (w *worker) gather(first *request) {
	defer w.stopTimer()
	w.batch = append(w.batch, first)
	size := len(first.events)
	var expired <-chan time.Time
	if w.linger > 0 && size < w.batchEvents {
		expired = w.startTimer(w.linger)
	}
	cohort := 0 // the group size waited for, while the cohort wait runs
	for size < w.batchEvents {
		req, ok := w.next(expired)
		if !ok {
			if expired != nil {
				return // the linger or the cohort wait ran out, or the queue is closed
			}
			wait := w.cohortWait()
			if wait <= 0 {
				return
			}
			cohort = w.halfCohort()
			expired = w.startTimer(wait)
			continue
		}
		if size+len(req.events) > w.batchEvents {
			w.carry = req
			return
		}
		w.batch = append(w.batch, req)
		size += len(req.events)
		if cohort > 0 && len(w.batch) >= cohort {
			// The cohort is here: take what else has queued, without waiting. The group now
			// holds half the cohort, so cohortWait says no from here on: one wait a group.
			w.timer.Stop()
			expired, cohort = nil, 0
		}
	}
}

// cohortWait is how long a group that found the queue empty should wait for the rest of the
// last commit's cohort (see gather), or 0 or less for not at all.
func (w *worker) cohortWait() time.Duration {
	if w.linger > 0 || w.cohortLimit <= 0 || len(w.batch) >= w.halfCohort() {
		return 0
	}
	return min(w.cohortLimit, w.lastTook) - time.Since(w.lastEnded)
}

// halfCohort is the group size that ends a cohort wait: half the requests the last commit
// answered, rounded up.
func (w *worker) halfCohort() int { return (w.lastAnswered + 1) / 2 }

func (w *worker) startTimer(d time.Duration) <-chan time.Time {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	return w.timer.C
}

func (w *worker) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// next returns the next queued request, or false once expired fires (or, when expired is
// nil, as soon as the queue is empty) or the queue is closed and empty.
func (w *worker) next(expired <-chan time.Time) (*request, bool) {
	if expired == nil {
		select {
		case req, ok := <-w.queue:
			return req, ok
		default:
			return nil, false
		}
	}
	select {
	case req, ok := <-w.queue:
		return req, ok
	case <-expired:
		return nil, false
	}
}

func (w *worker) commitBatch() {
	w.lastAnswered = len(w.batch)
	start := time.Now()
	defer func() {
		w.lastEnded = time.Now()
		w.lastTook = w.lastEnded.Sub(start)
		clear(w.batch)
		w.batch = w.batch[:0]
	}()
	if len(w.batch) == 1 {
		w.commitAlone(w.batch[0])
		return
	}
	events := w.events[:0]
	for _, req := range w.batch {
		events = append(events, req.events...)
	}
	outcomes, err := w.call(events)
	clear(events) // drop references to payloads until the buffer is reused
	w.events = events[:0]
	if err != nil {
		if uts.KindOf(err) == uts.KindUnavailable {
			// The store is down, or its answer was lost and the batch may have committed:
			// committing each request again would count it twice though its publisher sent
			// it once. A 503 leaves the retry, and so the count, to each publisher.
			for _, req := range w.batch {
				w.finish(req, nil, err)
			}
			return
		}
		// Retry alone, so that one bad request does not fail its neighbours.
		for _, req := range w.batch {
			w.commitAlone(req)
		}
		return
	}
	offset := 0
	for _, req := range w.batch {
		end := offset + len(req.events)
		// A full slice expression, so that a publisher appending to its outcomes cannot
		// overwrite its neighbour's.
		w.finish(req, outcomes[offset:end:end], nil)
		offset = end
	}
}

func (w *worker) commitAlone(req *request) {
	outcomes, err := w.call(req.events)
	w.finish(req, outcomes, err)
}

func (w *worker) call(events []uts.Event) ([]uts.Outcome, error) {
	outcomes, err := w.commit(w.ctx, events)
	if err != nil {
		return nil, fmt.Errorf("inproc: commit %d events: %w", len(events), err)
	}
	if len(outcomes) != len(events) {
		return nil, uts.Errorf(uts.KindInternal, "inproc: commit returned %d outcomes for %d events", len(outcomes), len(events))
	}
	return outcomes, nil
}

func (w *worker) finish(req *request, outcomes []uts.Outcome, err error) {
	req.outcomes, req.err = outcomes, err
	w.depth.Add(-int64(len(req.events)))
	close(req.done)
}
