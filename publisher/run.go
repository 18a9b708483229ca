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
	client, err := cfg.client()
	if err != nil {
		return Summary{}, err
	}
	summary := Summary{URLs: len(cfg.URLs)}
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
	produceErr := produce(ctx, cfg, src, batches, t)
	workers.Wait()
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

	var errs []error
	if produceErr != nil {
		errs = append(errs, produceErr)
	}
	if summary.Failures > 0 {
		errs = append(errs, fmt.Errorf("%d events not delivered: %d requests failed", summary.FailedEvents, summary.Failures))
	}
	if cfg.Verify {
		if summary.Interrupted {
			errs = append(errs, errors.New("verify: skipped, the run was interrupted"))
		} else {
			wait := time.Duration(0)
			if summary.Queued > 0 {
				wait = cfg.VerifyTimeout // a consumer commits 202-answered events later
			}
			want := Growth{Received: int64(summary.Sent), UniqueProcessed: int64(summary.Distinct)}
			v, err := Verify(ctx, client, before, want, wait)
			summary.Verify = &v
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return summary, errors.Join(errs...)
}

func openSource(cfg *Config, summary *Summary) (source, error) {
	if cfg.File != "" {
		summary.Source = cfg.File
		return openFile(cfg.File, cfg.Events)
	}
	if cfg.Seed == 0 {
		cfg.Seed = NewSeed()
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
