package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/uts-events/uts"
)

// Subscriptions are written on the writer, in write transactions like any Append, so that
// one process, or several on one file, cannot interleave a read and the write it decides:
// the file's write lock makes each create and commit atomic. They are read through the
// reader pool, which never waits behind a write.

// subscriptionColumns are read in this order by scanSubscription; the last is the lag, when
// counted. Sequence order is feed order here, and the events_topic_seq index counts one
// topic's backlog.
const subscriptionColumns = `name, topics, start, cursor_seq, created_at, updated_at,
	CASE WHEN NOT ? THEN 0
	WHEN topics = '[]' THEN (SELECT count(*) FROM events WHERE seq > s.cursor_seq)
	ELSE (SELECT count(*) FROM events WHERE topic IN (SELECT value FROM json_each(s.topics)) AND seq > s.cursor_seq)
	END`

// CreateSubscription creates the subscription or finds the same one; see uts.Subscriptions.
func (s *Store) CreateSubscription(ctx context.Context, spec uts.SubscriptionSpec) (uts.Subscription, bool, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return uts.Subscription{}, false, err
	}
	topics, err := json.Marshal(spec.Topics)
	if err != nil {
		return uts.Subscription{}, false, err
	}
	created := false
	err = s.withWriter(ctx, func() error {
		return s.transaction(ctx, func() error {
			existing, found, err := s.writerSubscription(spec.Name)
			if err != nil {
				return classify(ctx, "create subscription", err)
			}
			if found {
				if !existing.Matches(spec) {
					return conflictingSpec(existing)
				}
				return nil
			}
			var count, latest int64
			err = s.writerQuery(`SELECT count(*), (SELECT last_seq FROM counters WHERE id = 1) FROM subscriptions`, nil,
				func(stmt *sqlite3.Stmt) { count, latest = stmt.ColumnInt64(0), stmt.ColumnInt64(1) })
			if err != nil {
				return classify(ctx, "create subscription", err)
			}
			if count >= uts.MaxSubscriptions {
				return uts.Errorf(uts.KindConflict, "the store holds %d subscriptions, the most it may; delete one first", uts.MaxSubscriptions)
			}
			cursor := int64(0)
			if spec.Start == uts.StartLatest {
				cursor = latest
			}
			now := time.Now().UnixNano()
			err = s.writerQuery(`INSERT INTO subscriptions (name, topics, start, cursor_seq, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?)`, []any{spec.Name, string(topics), string(spec.Start), cursor, now, now}, nil)
			if err != nil {
				return classify(ctx, "create subscription", err)
			}
			created = true
			return nil
		})
	})
	if err != nil {
		return uts.Subscription{}, false, err
	}
	sub, err := s.Subscription(ctx, spec.Name, true)
	return sub, created, err
}

// conflictingSpec is the error for a create under a name taken by another spec.
func conflictingSpec(existing uts.Subscription) error {
	return uts.Errorf(uts.KindConflict, "subscription %q exists with topics %q and start %q; delete it first to change it",
		existing.Name, existing.Topics, existing.Start)
}

// Subscription returns one subscription; see uts.Subscriptions.
func (s *Store) Subscription(ctx context.Context, name string, countLag bool) (uts.Subscription, error) {
	if s.closed.Load() {
		return uts.Subscription{}, uts.Unavailable("the store is closed", nil)
	}
	row := s.read.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions s WHERE name = ?`, countLag, name)
	sub, err := scanSubscription(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return uts.Subscription{}, notFound(name)
	}
	if err != nil {
		return uts.Subscription{}, classify(ctx, "read subscription", err)
	}
	return sub, nil
}

func notFound(name string) error {
	return uts.Errorf(uts.KindNotFound, "no subscription is named %q", name)
}

// ListSubscriptions returns every subscription with its lag; see uts.Subscriptions.
func (s *Store) ListSubscriptions(ctx context.Context) ([]uts.Subscription, error) {
	if s.closed.Load() {
		return nil, uts.Unavailable("the store is closed", nil)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions s ORDER BY name`, true)
	if err != nil {
		return nil, classify(ctx, "list subscriptions", err)
	}
	defer rows.Close()
	subs := []uts.Subscription{}
	for rows.Next() {
		sub, err := scanSubscription(rows.Scan)
		if err != nil {
			return nil, classify(ctx, "list subscriptions", err)
		}
		subs = append(subs, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "list subscriptions", err)
	}
	return subs, nil
}

func scanSubscription(scan func(...any) error) (uts.Subscription, error) {
	var (
		sub              uts.Subscription
		topics, start    string
		created, updated int64
	)
	if err := scan(&sub.Name, &topics, &start, &sub.Cursor.Seq, &created, &updated, &sub.Lag); err != nil {
		return sub, err
	}
	if err := json.Unmarshal([]byte(topics), &sub.Topics); err != nil {
		return sub, fmt.Errorf("subscription %q: topics: %w", sub.Name, err)
	}
	sub.Start = uts.SubscriptionStart(start)
	sub.CreatedAt, sub.UpdatedAt = fromUnixNano(created), fromUnixNano(updated)
	return sub, nil
}

// CommitSubscription moves the committed cursor; see uts.Subscriptions.
func (s *Store) CommitSubscription(ctx context.Context, name string, c uts.Cursor, reset bool) (uts.Subscription, error) {
	var sub uts.Subscription
	err := s.withWriter(ctx, func() error {
		return s.transaction(ctx, func() error {
			existing, found, err := s.writerSubscription(name)
			if err != nil {
				return classify(ctx, "commit subscription", err)
			}
			if !found {
				return notFound(name)
			}
			var last int64
			// The greatest seq ever handed out, an expired event's included.
			err = s.writerQuery(`SELECT last_seq FROM counters WHERE id = 1`, nil,
				func(stmt *sqlite3.Stmt) { last = stmt.ColumnInt64(0) })
			if err != nil {
				return classify(ctx, "commit subscription", err)
			}
			if c.Tx != 0 || c.Seq > last {
				return &uts.Error{Kind: uts.KindInvalid, Message: fmt.Sprintf("cursor %s is not one of this store's: it is past every stored event", c),
					Details: []uts.FieldError{{Field: "cursor", Message: "must be a cursor that this store handed out"}}}
			}
			sub = existing
			switch n := c.Compare(existing.Cursor); {
			case n == 0:
				return nil
			case n < 0 && !reset:
				return backwards(existing, c)
			}
			now := time.Now().UnixNano()
			err = s.writerQuery(`UPDATE subscriptions SET cursor_seq = ?, updated_at = ? WHERE name = ?`, []any{c.Seq, now, name}, nil)
			if err != nil {
				return classify(ctx, "commit subscription", err)
			}
			sub.Cursor, sub.UpdatedAt = c, fromUnixNano(now)
			return nil
		})
	})
	if err != nil {
		return uts.Subscription{}, err
	}
	return sub, nil
}

// backwards is the error for a commit behind the committed cursor.
func backwards(existing uts.Subscription, c uts.Cursor) error {
	return uts.Errorf(uts.KindConflict, "subscription %q has committed cursor %s; %s is behind it (commit with reset to move it back)",
		existing.Name, existing.Cursor, c)
}

// DeleteSubscription removes it; see uts.Subscriptions.
func (s *Store) DeleteSubscription(ctx context.Context, name string) error {
	return s.withWriter(ctx, func() error {
		return s.transaction(ctx, func() error {
			if err := s.writerQuery(`DELETE FROM subscriptions WHERE name = ?`, []any{name}, nil); err != nil {
				return classify(ctx, "delete subscription", err)
			}
			if s.writer.Changes() == 0 {
				return notFound(name)
			}
			return nil
		})
	})
}

// writerSubscription reads a subscription on the writer, inside its transaction, without lag.
func (s *Store) writerSubscription(name string) (sub uts.Subscription, found bool, err error) {
	var topics string
	err = s.writerQuery(`SELECT name, topics, start, cursor_seq, created_at, updated_at FROM subscriptions WHERE name = ?`,
		[]any{name}, func(stmt *sqlite3.Stmt) {
			found = true
			sub.Name, topics, sub.Start = stmt.ColumnText(0), stmt.ColumnText(1), uts.SubscriptionStart(stmt.ColumnText(2))
			sub.Cursor.Seq = stmt.ColumnInt64(3)
			sub.CreatedAt, sub.UpdatedAt = fromUnixNano(stmt.ColumnInt64(4)), fromUnixNano(stmt.ColumnInt64(5))
		})
	if err == nil && found {
		err = json.Unmarshal([]byte(topics), &sub.Topics)
	}
	return sub, found, err
}

// writerQuery runs one statement on the writer, which the caller holds, calling row for
// each row it returns. Subscriptions change rarely next to events, so their statements are
// compiled when run rather than kept with the writer's.
func (s *Store) writerQuery(query string, args []any, row func(*sqlite3.Stmt)) error {
	stmt, _, err := s.writer.Prepare(query)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, arg := range args {
		switch v := arg.(type) {
		case string:
			err = stmt.BindText(i+1, v)
		case int64:
			err = stmt.BindInt64(i+1, v)
		default:
			err = fmt.Errorf("writerQuery: cannot bind %T", arg)
		}
		if err != nil {
			return err
		}
	}
	for stmt.Step() {
		if row != nil {
			row(stmt)
		}
	}
	return stmt.Err()
}
