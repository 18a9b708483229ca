package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uts-events/uts"
)

// WithCommitDelay holds each Append's transaction open for delay() after its statement ran.
func WithCommitDelay(delay func() time.Duration) Option {
	return func(s *Store) { s.commitDelay = delay }
}

// WithLockTimeout sets how long expiry and partition creation wait for a lock on the events
// table.
func WithLockTimeout(d time.Duration) Option {
	return func(s *Store) { s.lockTimeout = d }
}

// MigrateTo brings the schema of url up to version last only.
func MigrateTo(ctx context.Context, url string, last int) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = migrateTo(ctx, pool, last)
	return err
}

// ErrNoAutoExplain says the server would not load auto_explain for this user.
var ErrNoAutoExplain = errors.New("auto_explain cannot be loaded (it needs a superuser)")

// ExplainAppend returns the plan the store's sessions use for a batch: the generic one that
// prepared statements end up with, forced at once. EXPLAIN of the statement itself would
// plan it for these very arguments instead, so the plan is read from auto_explain, which
// sends it as a notice when the prepared statement runs (in a transaction rolled back, so
// nothing is stored). A connection of its own, configured as the store's pool is.
func (s *Store) ExplainAppend(ctx context.Context, events []uts.Event) (string, error) {
	config := s.pool.Config().ConnConfig.Copy()
	var plans []string
	config.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if strings.Contains(n.Message, "plan:") {
			plans = append(plans, n.Message)
		}
	}
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LOAD 'auto_explain'"); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoAutoExplain, err)
	}
	for _, set := range []string{"SET auto_explain.log_min_duration = 0", "SET auto_explain.log_level = notice",
		"SET plan_cache_mode = force_generic_plan"} {
		if _, err := conn.Exec(ctx, set); err != nil {
			return "", err
		}
	}
	query, args, err := appendStatement(events)
	if err != nil {
		return "", err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, query, args...); err != nil {
		return "", err
	}
	if len(plans) == 0 {
		return "", errors.New("auto_explain sent no plan")
	}
	return strings.Join(plans, "\n"), nil
}

// Prune runs one pruning as the store's ticker does, logging a failure.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) { s.pruner.Prune(ctx, cutoff) }

// PruneDeliveries runs one pruning of the deliveries recorded before cutoff.
func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.pruner.Delete(ctx, cutoff)
}

// Wrap gives err a kind and a client's message as the store does with each of its errors.
func Wrap(op string, err error) error { return wrap(op, err) }

// ExplainEvents returns the plan of the statement Events runs for q, with sorting made as
// costly as the planner allows, so that a plan sorts only when no index gives the order.
func (s *Store) ExplainEvents(ctx context.Context, q uts.EventQuery) (string, error) {
	query, args, err := eventsStatement(q, math.MaxInt64)
	if err != nil {
		return "", err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET LOCAL enable_sort = off"); err != nil {
		return "", err
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}
