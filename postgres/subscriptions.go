package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
)

// Subscriptions are rows of their own table, shared by every replica. Each commit is one
// conditional UPDATE: the row lock orders concurrent commits, and READ COMMITTED re-checks
// the condition against the row as the commit before left it, so that two replicas
// committing at once cannot move a cursor backwards. Creates queue on an advisory lock, so
// that the count under MaxSubscriptions and the name's check hold until the insert commits.

// subscriptionsLockClass namespaces the creates' advisory lock (the migrations' is 1); the
// other half of the key is the schema, as for the migrations.
const subscriptionsLockClass = 0x75747302 // "uts" 2

// subscriptionColumns are read in this order by scanSubscription; $1 says whether to count
// the lag, the stored events of its topics past its cursor in feed order, which the
// events_feed and events_topic_feed indexes count.
const subscriptionColumns = `name, topics, start, cursor_xid::text::bigint, cursor_seq, created_at, updated_at,
	CASE WHEN NOT $1::boolean THEN 0
	WHEN cardinality(topics) = 0 THEN (SELECT count(*) FROM events e WHERE (e.xid, e.seq) > (s.cursor_xid, s.cursor_seq))
	ELSE (SELECT count(*) FROM events e WHERE e.topic = ANY(s.topics) AND (e.xid, e.seq) > (s.cursor_xid, s.cursor_seq))
	END`

// CreateSubscription creates the subscription or finds the same one; see uts.Subscriptions.
// A latest start is after every event readable now: the newest below the oldest transaction
// in flight. Events that are committed but held back behind such a transaction sort after
// that cursor, so the subscription delivers them.
func (s *Store) CreateSubscription(ctx context.Context, spec uts.SubscriptionSpec) (uts.Subscription, bool, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return uts.Subscription{}, false, err
	}
	var created bool
	var conflict error
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, subscriptionsLockClass); err != nil {
			return err
		}
		existing, err := scanSubscription(tx.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions s WHERE name = $2`, false, spec.Name))
		switch {
		case err == nil:
			if !existing.Matches(spec) {
				conflict = conflictingSpec(existing)
			}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var count int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM subscriptions`).Scan(&count); err != nil {
			return err
		}
		if count >= uts.MaxSubscriptions {
			conflict = uts.Errorf(uts.KindConflict, "the store holds %d subscriptions, the most it may; delete one first", uts.MaxSubscriptions)
			return nil
		}
		var cursor uts.Cursor
		if spec.Start == uts.StartLatest {
			var xid int64
			err := tx.QueryRow(ctx, `SELECT xid::text::bigint AS tx, seq FROM events
				WHERE xid < (SELECT feed_horizon()) ORDER BY xid DESC, seq DESC LIMIT 1`).Scan(&xid, &cursor.Seq)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			cursor.Tx = uint64(xid)
		}
		_, err = tx.Exec(ctx, `INSERT INTO subscriptions (name, topics, start, cursor_xid, cursor_seq) VALUES ($1, $2, $3, $4::text::xid8, $5)`,
			spec.Name, spec.Topics, string(spec.Start), strconv.FormatUint(cursor.Tx, 10), cursor.Seq)
		created = err == nil
		return err
	})
	if err != nil {
		return uts.Subscription{}, false, wrap("create subscription", err)
	}
	if conflict != nil {
		return uts.Subscription{}, false, conflict
	}
	sub, err := s.Subscription(ctx, spec.Name, true)
	return sub, created, err
}

func conflictingSpec(existing uts.Subscription) error {
	return uts.Errorf(uts.KindConflict, "subscription %q exists with topics %q and start %q; delete it first to change it",
		existing.Name, existing.Topics, existing.Start)
}

func notFound(name string) error {
	return uts.Errorf(uts.KindNotFound, "no subscription is named %q", name)
}

// Subscription returns one subscription; see uts.Subscriptions.
func (s *Store) Subscription(ctx context.Context, name string, countLag bool) (uts.Subscription, error) {
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions s WHERE name = $2`, countLag, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return uts.Subscription{}, notFound(name)
	}
	if err != nil {
		return uts.Subscription{}, wrap("read subscription", err)
	}
	return sub, nil
}

// ListSubscriptions returns every subscription with its lag, from one snapshot; see
// uts.Subscriptions.
func (s *Store) ListSubscriptions(ctx context.Context) ([]uts.Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions s ORDER BY name`, true)
	if err != nil {
		return nil, wrap("list subscriptions", err)
	}
	subs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (uts.Subscription, error) { return scanSubscription(row) })
	if err != nil {
		return nil, wrap("list subscriptions", err)
	}
	if subs == nil {
		subs = []uts.Subscription{}
	}
	return subs, nil
}

func scanSubscription(row pgx.Row) (uts.Subscription, error) {
	var sub uts.Subscription
	var xid int64
	var start string
	err := row.Scan(&sub.Name, &sub.Topics, &start, &xid, &sub.Cursor.Seq, &sub.CreatedAt, &sub.UpdatedAt, &sub.Lag)
	sub.Start = uts.SubscriptionStart(start)
	sub.Cursor.Tx = uint64(xid)
	sub.CreatedAt, sub.UpdatedAt = sub.CreatedAt.UTC(), sub.UpdatedAt.UTC()
	if sub.Topics == nil {
		sub.Topics = []string{}
	}
	return sub, err
}

// CommitSubscription moves the committed cursor; see uts.Subscriptions.
func (s *Store) CommitSubscription(ctx context.Context, name string, c uts.Cursor, reset bool) (uts.Subscription, error) {
	foreign := &uts.Error{Kind: uts.KindInvalid, Message: fmt.Sprintf("cursor %s is not one of this store's: it is past every stored event", c),
		Details: []uts.FieldError{{Field: "cursor", Message: "must be a cursor that this store handed out"}}}
	if c.Tx > math.MaxInt64 {
		return uts.Subscription{}, foreign
	}
	tx := strconv.FormatUint(c.Tx, 10)
	if !c.IsZero() {
		var handedOut bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE (xid, seq) >= ($1::text::xid8, $2))`, tx, c.Seq).Scan(&handedOut)
		if err != nil {
			return uts.Subscription{}, wrap("commit subscription", err)
		}
		if !handedOut {
			return uts.Subscription{}, foreign
		}
	}
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `UPDATE subscriptions s
		SET cursor_xid = $3::text::xid8, cursor_seq = $4, updated_at = now()
		WHERE name = $2 AND (cursor_xid, cursor_seq) <> ($3::text::xid8, $4)
			AND ($5 OR (cursor_xid, cursor_seq) < ($3::text::xid8, $4))
		RETURNING `+subscriptionColumns, false, name, tx, c.Seq, reset))
	if err == nil {
		return sub, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return uts.Subscription{}, wrap("commit subscription", err)
	}
	// Nothing moved: the name is unknown, the cursor is the committed one, or behind it.
	existing, err := s.Subscription(ctx, name, false)
	if err != nil {
		return uts.Subscription{}, err
	}
	if existing.Cursor.Compare(c) > 0 {
		return uts.Subscription{}, uts.Errorf(uts.KindConflict, "subscription %q has committed cursor %s; %s is behind it (commit with reset to move it back)",
			existing.Name, existing.Cursor, c)
	}
	return existing, nil
}

// DeleteSubscription removes it; see uts.Subscriptions.
func (s *Store) DeleteSubscription(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM subscriptions WHERE name = $1`, name)
	if err != nil {
		return wrap("delete subscription", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(name)
	}
	return nil
}
