// Package publisher generates events and delivers them to UTS aggregators over HTTP, at least
// once: whatever may not have arrived is sent again, and the aggregator's deduplication turns
// the repeats into counted duplicates. It is the engine of cmd/publisher and of tests that
// need traffic.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Run publishes the events cfg describes and summarises what happened. Progress, when not
// nil, gets a status line redrawn a few times a second. Cancelling ctx stops generating; the
// requests in flight get cfg.Grace to finish, and the summary covers what was done. The
// error reports undelivered events, a failed verification, or a bad config; the summary is
// valid alongside it.
func Run(ctx context.Context, cfg Config, progress io.Writer) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, fmt.Errorf("config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = logger
	client, err := cfg.client()
	if err != nil {
		return Summary{}, err
	}
	if cfg.GiveUpAfter > 0 {
		client.failures = &failureClock{}
	}
	summary := Summary{URLs: len(cfg.URLs)}
	// A random seed makes ids no earlier run made; a given seed or a file may repeat a run.
	freshIDs := cfg.File == "" && cfg.Seed == 0
	src, err := openSource(&cfg, &summary)
	if err != nil {
		return summary, err
	}
	defer src.Close()

	var before Stats
	if cfg.Verify {
		if before, err = client.Stats(ctx); err != nil {
			return summary, fmt.Errorf("verify: before the run: %w", err)
		}
	}

	t := &tally{}
	start := time.Now()
	stopProgress := showProgress(progress, t, cfg.Events, start)
	sendCtx, cancelSend := drainContext(ctx, cfg.Grace)
	defer cancelSend()
	// Giving up stops generating and ends the requests in flight at once: they are failing.
	produceCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var gaveUp atomic.Int64 // how long requests had failed, once the run gave up
	watchDone := make(chan struct{})
	if client.failures != nil {
		go client.failures.watch(cfg.GiveUpAfter, watchDone, func(failingFor time.Duration) {
			gaveUp.Store(int64(failingFor))
			logger.Error("giving up: no request has succeeded for -give-up-after", "failing_for", failingFor.Round(time.Millisecond), "give_up_after", cfg.GiveUpAfter)
			stopProducing()
			cancelSend()
		})
	}

	batches := make(chan []item) // unbuffered: a cancelled run leaves nothing half-queued
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Go(func() {
			for items := range batches {
				reply, err := client.Publish(sendCtx, body(items, cfg.Batch == 1))
				if err != nil {
					logger.Warn("request failed", "events", len(items), "attempts", reply.Attempts, "err", err)
				}
				t.record(items, reply, err)
			}
		})
	}
	produceErr := produce(produceCtx, cfg, src, batches, t)
	workers.Wait()
	close(watchDone)
	stopProgress()

	t.mu.Lock()
	summary.Generated = int(t.generated.Load())
	summary.Sent = int(t.sent.Load())
	summary.Distinct = t.delivered.count
	summary.Duplicates = summary.Sent - summary.Distinct
	summary.FailedEvents = int(t.failed.Load())
	summary.Requests = int(t.requests.Load())
	summary.Retries = int(t.retries.Load())
	summary.Failures = int(t.failures.Load())
	summary.Committed, summary.Queued = t.committed, t.queued
	summary.ServerUnique, summary.ServerDuplicates = t.serverUnique, t.serverDuplicates
	summary.Errors = t.errors
	summary.Latency = latencyOf(t.latencies)
	t.mu.Unlock()
	summary.Elapsed = time.Since(start)
	summary.ElapsedSeconds = summary.Elapsed.Seconds()
	if s := summary.Elapsed.Seconds(); s > 0 {
		summary.EventsPerSecond = float64(summary.Sent) / s
	}
	summary.Interrupted = ctx.Err() != nil
	summary.GaveUp = gaveUp.Load() > 0

	var errs []error
	if produceErr != nil {
		errs = append(errs, produceErr)
	}
	if summary.GaveUp {
		errs = append(errs, fmt.Errorf("gave up: no request succeeded for %s (-give-up-after %s); %d events acknowledged, %d in failed requests not known to be taken%s",
			time.Duration(gaveUp.Load()).Round(time.Millisecond), cfg.GiveUpAfter, summary.Sent, summary.FailedEvents, notSent(cfg, summary)))
	} else if summary.Failures > 0 {
		errs = append(errs, fmt.Errorf("%d events not delivered: %d requests failed", summary.FailedEvents, summary.Failures))
	}
	if cfg.Verify {
		if summary.Interrupted || summary.GaveUp {
			errs = append(errs, errors.New("verify: skipped, the run did not finish"))
		} else {
			wait := time.Duration(0)
			if summary.Queued > 0 {
				wait = cfg.VerifyTimeout // a consumer commits 202-answered events later
			}
			want := Growth{Received: int64(summary.Sent), UniqueProcessed: int64(summary.Distinct)}
			atMost := false
			if !freshIDs {
				// The events may be stored already (a repeated seed, a replayed file). The
				// 200 answers said how many were new; 202 answers do not, so then anything
				// up to the distinct events sent will do.
				if summary.Queued == 0 {
					want.UniqueProcessed = int64(summary.ServerUnique)
				} else {
					atMost = true
				}
			}
			v, err := Verify(ctx, client, before, want, atMost, wait)
			summary.Verify = &v
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return summary, errors.Join(errs...)
}

// notSent describes the generated events never handed to a request, when the run was to
// send a known number.
func notSent(cfg Config, s Summary) string {
	if cfg.File != "" || cfg.Events == 0 {
		return ""
	}
	return fmt.Sprintf(", %d of the %d never sent", cfg.Events-s.Generated, cfg.Events)
}

func openSource(cfg *Config, summary *Summary) (source, error) {
	if cfg.File != "" {
		summary.Source = cfg.File
		return openFile(cfg.File, cfg.Events)
	}
	if cfg.Seed == 0 {
		cfg.Seed = NewSeed()
		cfg.Logger.Info("random seed; pass -seed to repeat this run", "seed", cfg.Seed)
	}
	summary.Source, summary.Seed = "generator", cfg.Seed
	g, err := NewGenerator(cfg.Seed, cfg.Events, cfg.Duplicates, cfg.Topics)
	if err != nil {
		return nil, err
	}
	return generatorSource{g}, nil
}

// produce cuts the source into batches and hands them to the workers, paced to cfg.Rate,
// until the source ends, cfg.Duration passes or ctx is cancelled. It closes out.
func produce(ctx context.Context, cfg Config, src source, out chan<- []item, t *tally) error {
	defer close(out)
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	handed := 0
	for {
		items := make([]item, 0, cfg.Batch)
		var srcErr error
		for len(items) < cfg.Batch {
			it, ok, err := src.next()
			if err != nil {
				srcErr = err
				break
			}
			if !ok {
				break
			}
			items = append(items, it)
		}
		if len(items) == 0 {
			return srcErr
		}
		if cfg.Rate > 0 {
			// Due times follow from the events handed out so far, so pauses never add up
			// to drift.
			due := start.Add(time.Duration(float64(handed) / cfg.Rate * float64(time.Second)))
			if sleepContext(ctx, time.Until(due)) != nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case out <- items:
			t.generated.Add(int64(len(items)))
			handed += len(items)
		case <-ctx.Done():
			return nil
		}
		if srcErr != nil || len(items) < cfg.Batch {
			return srcErr
		}
	}
}

// drainContext outlives parent by grace, so that requests in flight when the user presses
// Ctrl-C can still be answered and counted instead of ending in doubt.
func drainContext(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	go func() {
		select {
		case <-parent.Done():
			timer := time.NewTimer(grace)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
