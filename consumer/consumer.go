// Package consumer is the idempotent consumer: it commits the batches a broker gathers to
// the store, which decides what is new, and reports what was dropped as a duplicate.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uts-events/uts"
)

// Lines per second for each kind of per-event log line; the rest are summarised.
const (
	linesPerWindow = 100
	lineWindow     = time.Second
)

// storedHashBudget bounds the reads of stored hashes for one batch's conflict lines, so
// that a slow or failing store delays the batch by this much at most; lines past it say
// why their stored hash is missing.
const storedHashBudget = time.Second

// Observer hears of every committed batch; metrics attach here.
type Observer interface {
	// Committed reports a batch of n events, what storing it did, and how long it took.
	Committed(batch int, t uts.Tally, d time.Duration)
}

// Option configures a Consumer.
type Option func(*Consumer)

// WithCommitTimeout bounds each commit: a store that stalls (a table locked, a disk that
// hangs) answers "the store timed out" after d, an outage the brokers retry and the API
// answers 503, instead of holding the batch and its publishers for as long as the stall.
// Zero leaves commits unbounded.
func WithCommitTimeout(d time.Duration) Option {
	return func(c *Consumer) { c.commitTimeout = d }
}

// WithObserver has o told of every committed batch.
func WithObserver(o Observer) Option {
	return func(c *Consumer) { c.observer = o }
}

// Consumer commits batches to a store. It is safe for concurrent use.
type Consumer struct {
	store     uts.Store
	logger    *slog.Logger
	observer  Observer
	dupLines  *lineBudget
	confLines *lineBudget
	health    health
	// commitTimeout bounds one Append; see WithCommitTimeout.
	commitTimeout time.Duration
}

// New returns a consumer on store. A nil logger logs nothing.
func New(store uts.Store, logger *slog.Logger, opts ...Option) *Consumer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{
		store:     store,
		logger:    logger,
		dupLines:  newLineBudget(linesPerWindow, lineWindow),
		confLines: newLineBudget(linesPerWindow, lineWindow),
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

var _ uts.CommitFunc = (*Consumer)(nil).Commit

// Commit stores a batch in one transaction and returns its outcomes in batch order.
func (c *Consumer) Commit(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	var start time.Time
	if c.observer != nil {
		start = time.Now()
	}
	outcomes, err := c.append(ctx, events)
	if err != nil {
		return nil, fmt.Errorf("consumer: append %d events: %w", len(events), err)
	}
	if len(outcomes) != len(events) {
		return nil, uts.Errorf(uts.KindInternal, "consumer: store returned %d outcomes for %d events", len(outcomes), len(events))
	}
	tally := uts.TallyOf(outcomes)
	c.logDropped(ctx, events, outcomes, tally)
	if c.observer != nil {
		c.observer.Committed(len(events), tally, time.Since(start))
	}
	return outcomes, nil
}

// append is the store's Append, its result kept for Ready. An empty batch never reaches the
// store, so it tells nothing about it.
func (c *Consumer) append(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	if len(events) == 0 {
		return c.store.Append(ctx, events)
	}
	if c.commitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.commitTimeout, errCommitTimedOut)
		defer cancel()
	}
	c.health.begin()
	outcomes, err := c.store.Append(ctx, events)
	if err != nil && errors.Is(context.Cause(ctx), errCommitTimedOut) {
		// Whatever the store made of its cancelled statement, this is a stall, not a bad batch.
		err = uts.Unavailable("the store timed out", fmt.Errorf("%w: %w", errCommitTimedOut, err))
	}
	c.health.end(err)
	return outcomes, err
}

// errCommitTimedOut is the cause of a commit's context that WithCommitTimeout ended.
var errCommitTimedOut = errors.New("the commit took longer than the commit timeout")

// logDropped logs dropped events, duplicates at DEBUG (retries are normal) and conflicts at
// WARN with the stored and the incoming content hash (a producer reused an id for other
// content). Each kind has its own line budget so that a flood of one cannot hide the other.
func (c *Consumer) logDropped(ctx context.Context, events []uts.Event, outcomes []uts.Outcome, tally uts.Tally) {
	// The level checks come first: with DEBUG off, the common case costs two calls.
	if c.logger.Enabled(ctx, slog.LevelDebug) {
		c.logEach(ctx, c.dupLines, slog.LevelDebug, "duplicate", uts.OutcomeDuplicate,
			tally.Duplicates-tally.Conflicts, events, outcomes)
	}
	if c.logger.Enabled(ctx, slog.LevelWarn) {
		c.logEach(ctx, c.confLines, slog.LevelWarn, "conflicting duplicate", uts.OutcomeConflict,
			tally.Conflicts, events, outcomes)
	}
}

// logEach logs up to the budget's grant of the count events whose outcome is want, after a
// summary of what the budget suppressed in windows before.
func (c *Consumer) logEach(ctx context.Context, budget *lineBudget, level slog.Level, what string,
	want uts.Outcome, count int, events []uts.Event, outcomes []uts.Outcome) {
	granted, suppressed := budget.take(time.Now(), count)
	if suppressed > 0 {
		c.logger.LogAttrs(ctx, level, fmt.Sprintf("%d %s log lines suppressed", suppressed, what),
			slog.Int("suppressed", suppressed))
	}
	if granted == 0 {
		return
	}
	message := what + " dropped"
	lookupCtx := ctx
	if want == uts.OutcomeConflict {
		var cancel context.CancelFunc
		lookupCtx, cancel = context.WithTimeout(ctx, storedHashBudget)
		defer cancel()
	}
	for i := 0; granted > 0 && i < len(outcomes); i++ {
		if outcomes[i] != want {
			continue
		}
		attrs := []slog.Attr{slog.String("topic", events[i].Topic), slog.String("event_id", events[i].EventID)}
		if want == uts.OutcomeConflict {
			attrs = append(attrs, c.conflictHashes(lookupCtx, events[i])...)
		}
		c.logger.LogAttrs(ctx, level, message, attrs...)
		granted--
	}
}

// conflictHashes are the stored event's content hash and the dropped one's, which tell
// whoever reads the log that the producer really sent other content under the same id.
// Only a conflict that is logged pays for the stored hash's read: the budget has granted
// its line before this is called.
func (c *Consumer) conflictHashes(ctx context.Context, e uts.Event) []slog.Attr {
	incoming := slog.String("incoming_hash", e.ContentHash())
	stored, err := c.store.StoredHash(ctx, e.Key())
	if err != nil {
		return []slog.Attr{incoming, slog.String("stored_hash_error", err.Error())}
	}
	return []slog.Attr{slog.String("stored_hash", stored), incoming}
}
