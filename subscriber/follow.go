// Package subscriber follows a durable subscription of UTS aggregators and writes its events
// as NDJSON, at least once: each batch is written, flushed and (to a file) fsynced before its
// cursor is committed, so a crash repeats events but never loses one, and a restart resumes
// from the committed cursor. It is the engine of cmd/subscriber and of tests that read the
// feed.
package subscriber

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/uts-events/uts"
)

// Config is one following run.
type Config struct {
	URLs         []string // aggregators, used round-robin with failover
	Token        string   // the aggregator's read token
	Subscription string   // its name
	Topics       []string // none for every topic
	From         uts.SubscriptionStart
	// Out is the file the events are appended to; "" or "-" for stdout.
	Out string
	// CommitEvery is the most events written between two commits. The aggregator serves a
	// subscription from its committed cursor, so each read is committed before the next: a
	// read asks for at most min(Limit, CommitEvery) events, and a trickle is committed as it
	// comes, as is whatever was written at a clean stop.
	CommitEvery int
	Limit       int           // events per read
	Wait        time.Duration // how long a read waits for the first event
	// ExitIdle stops once a read finds the subscription caught up, after committing.
	ExitIdle bool

	Retry      RetryPolicy
	HTTPClient *http.Client // optional
	Logger     *slog.Logger // optional
}

// DefaultConfig follows every topic of a local aggregator from the earliest event.
func DefaultConfig() Config {
	// The largest page, committed whole: each page costs a read, an fsync and a commit (a
	// write transaction) whatever its size, and once the page is built and split without
	// reflection a page of 10,000 drained fastest on both stores (docs/benchmarks.md,
	// "Draining a subscription").
	return Config{
		URLs:        []string{"http://localhost:8080"},
		From:        uts.StartEarliest,
		CommitEvery: 10000,
		Limit:       10000,
		Wait:        30 * time.Second,
		Retry:       DefaultRetryPolicy(),
	}
}

// maxWait and maxLimit are the aggregator's bounds on one read.
const (
	maxWait  = 60 * time.Second
	maxLimit = 10000
)

// Validate reports every setting that is out of range at once.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(len(c.URLs) == 0, "no aggregator URL")
	check(c.Subscription == "", "a subscription name is needed")
	check(c.From != uts.StartEarliest && c.From != uts.StartLatest, "from must be earliest or latest, got %q", c.From)
	check(c.CommitEvery < 1, "commit-every must be at least 1, got %d", c.CommitEvery)
	check(c.Limit < 1 || c.Limit > maxLimit, "limit must be from 1 to %d, got %d", maxLimit, c.Limit)
	check(c.Wait < 0 || c.Wait > maxWait, "wait must be from 0 to %v, got %v", maxWait, c.Wait)
	if err := c.Retry.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Summary is what a run did.
type Summary struct {
	Subscription string     `json:"subscription"`
	Resumed      uts.Cursor `json:"resumed_from"` // the committed cursor at start
	Cursor       uts.Cursor `json:"cursor"`       // the committed cursor at the end
	Events       int64      `json:"events"`       // lines written
	Commits      int64      `json:"commits"`
	Retries      int64      `json:"retries"`
	// Gaps counts the times the aggregator said that retention deleted events before they
	// were read: zero means the output holds every event of the subscription's topics.
	Gaps int64 `json:"expired_gaps"`

	Elapsed         time.Duration `json:"-"`
	ElapsedSeconds  float64       `json:"elapsed_seconds"`
	EventsPerSecond float64       `json:"events_per_second"`
}

// commitGrace is how long the final commit of a cancelled run may take.
const commitGrace = 10 * time.Second

// Follow creates (or finds) the subscription and follows it from its committed cursor until
// ctx is cancelled, a terminal error, or with ExitIdle until it has caught up. Lines go to
// cfg.Out, or stdout. Progress, when not nil, gets a status line with the lag, redrawn a few
// times a second. On cancellation the events written are made durable and committed before
// it returns; the error is nil then.
func Follow(ctx context.Context, cfg Config, stdout, progress io.Writer) (Summary, error) {
	summary := Summary{Subscription: cfg.Subscription}
	if err := cfg.Validate(); err != nil {
		return summary, fmt.Errorf("config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client, err := NewClient(ClientConfig{URLs: cfg.URLs, Token: cfg.Token, Retry: cfg.Retry, HTTPClient: cfg.HTTPClient, Logger: logger})
	if err != nil {
		return summary, err
	}
	sub, err := client.Subscribe(ctx, uts.SubscriptionSpec{Name: cfg.Subscription, Topics: cfg.Topics, Start: cfg.From})
	if err != nil {
		if ctx.Err() != nil {
			return summary, nil
		}
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			return summary, fmt.Errorf("subscription %q exists with other topics or start (%w); follow it with the same -topic and -from, or pick another name", cfg.Subscription, err)
		}
		return summary, fmt.Errorf("subscribe: %w", err)
	}
	out, err := openOutput(cfg.Out, stdout)
	if err != nil {
		return summary, err
	}
	f := &follower{cfg: cfg, client: client, out: out, logger: logger, position: sub.Cursor, committed: sub.Cursor}
	f.lag.Store(sub.Lag)
	summary.Resumed = sub.Cursor
	logger.Info("following", "subscription", sub.Name, "topics", sub.Topics, "start", sub.Start, "cursor", sub.Cursor, "lag", sub.Lag)

	start := time.Now()
	stopProgress := f.showProgress(ctx, progress, start)
	runErr := f.run(ctx)
	stopProgress()
	if err := out.close(cfg.Out); err != nil {
		runErr = errors.Join(runErr, err)
	}

	summary.Cursor = f.committed
	summary.Events = f.written.Load()
	summary.Commits = f.commits
	summary.Retries = client.Retries()
	summary.Gaps = client.Gaps()
	summary.Elapsed = time.Since(start)
	summary.ElapsedSeconds = summary.Elapsed.Seconds()
	if s := summary.Elapsed.Seconds(); s > 0 {
		summary.EventsPerSecond = float64(summary.Events) / s
	}
	return summary, runErr
}

type follower struct {
	cfg    Config
	client *Client
	out    *output
	logger *slog.Logger

	position  uts.Cursor // the last event written
	committed uts.Cursor // the cursor the aggregator holds
	commits   int64

	// answer is the buffer pages are read into, reused: a page is written out before the
	// next read.
	answer []byte

	written atomic.Int64 // for the progress line
	lag     atomic.Int64 // the aggregator's latest word on the lag
}

// run reads, writes and commits until ctx ends or something fails for good. The aggregator
// reads a subscription from its committed cursor, so each page is committed before the next
// read: written, flushed and made durable first, so that a crash repeats it and never loses it.
func (f *follower) run(ctx context.Context) error {
	limit := min(f.cfg.Limit, f.cfg.CommitEvery)
	for {
		wait := f.cfg.Wait
		if f.cfg.ExitIdle {
			wait = 0
		}
		page, err := f.client.read(ctx, f.cfg.Subscription, limit, wait, &f.answer)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		for _, line := range page.Events {
			if err := f.out.writeLine(line); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		}
		if len(page.Events) > 0 {
			f.position = page.Cursor
			f.written.Add(int64(len(page.Events)))
			// Committed even when ctx is cancelled meanwhile: the page is written, and a
			// clean stop commits what it wrote.
			if err := f.finalCommit(ctx); err != nil {
				return err
			}
		}
		if f.cfg.ExitIdle && len(page.Events) < limit {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// commit makes the written lines durable and only then commits their cursor: a crash between
// the two repeats those lines after a restart, and never loses them.
func (f *follower) commit(ctx context.Context) error {
	if f.position == f.committed {
		return nil
	}
	if err := f.out.durable(); err != nil {
		return err
	}
	_, err := f.client.Commit(ctx, f.cfg.Subscription, f.position, false)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			return fmt.Errorf("commit %s: %w (is another subscriber following %q?)", f.position, err, f.cfg.Subscription)
		}
		return fmt.Errorf("commit %s: %w", f.position, err)
	}
	f.committed = f.position
	f.commits++
	return nil
}

// finalCommit commits what was written. Once ctx is cancelled it goes on for commitGrace on a
// context of its own, so that a clean stop leaves nothing written and uncommitted.
func (f *follower) finalCommit(ctx context.Context) error {
	if ctx.Err() == nil {
		return f.commit(ctx)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitGrace)
	defer cancel()
	if err := f.commit(ctx); err != nil {
		return fmt.Errorf("commit at stop (the events after %s will be delivered again): %w", f.committed, err)
	}
	f.logger.Info("committed at stop", "cursor", f.committed)
	return nil
}
