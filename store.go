package uts

import (
	"context"
	"fmt"
	"time"
)

// Outcome is what storing one event did.
type Outcome uint8

const (
	// OutcomeNew: the event's key was not stored before; it is now.
	OutcomeNew Outcome = iota + 1
	// OutcomeDuplicate: the key was stored already, with the same content (a retry).
	OutcomeDuplicate
	// OutcomeConflict: the key was stored already with other content (a producer bug).
	// It is dropped like any duplicate; the first event stored wins.
	OutcomeConflict
)

func (o Outcome) String() string {
	switch o {
	case OutcomeNew:
		return "new"
	case OutcomeDuplicate:
		return "duplicate"
	case OutcomeConflict:
		return "conflict"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Tally counts outcomes.
type Tally struct {
	Unique     int
	Duplicates int // including conflicts
	Conflicts  int
}

// TallyOf counts a batch's outcomes.
func TallyOf(outcomes []Outcome) Tally {
	var t Tally
	for _, o := range outcomes {
		switch o {
		case OutcomeNew:
			t.Unique++
		case OutcomeConflict:
			t.Conflicts++
			t.Duplicates++
		default:
			t.Duplicates++
		}
	}
	return t
}

// EventQuery selects a page of stored events in feed order, or newest first.
type EventQuery struct {
	Topics []string // none for every topic
	After  Cursor   // the zero Cursor for the start
	Limit  int
	// Newest lists the newest first instead, from Before down: the latest events without
	// scanning to the end, which is what a dashboard or a person wants to see.
	Newest bool
	Before Cursor // with Newest: events before it; the zero Cursor for the newest
	// Offset skips that many events, in the chosen order and past the cursor, before the
	// page starts. The store still reads the skipped rows, so it costs what it skips, and
	// while writers commit the events it lands on shift: a cursor is the stable way on.
	Offset int
}

// Counters are the store's running totals. Once nothing is in flight,
// Received == UniqueProcessed + DuplicateDropped + DeadLettered.
type Counters struct {
	Received           int64 `json:"received"`
	UniqueProcessed    int64 `json:"unique_processed"`
	DuplicateDropped   int64 `json:"duplicate_dropped"` // including conflicts
	DuplicateConflicts int64 `json:"duplicate_conflicts"`
	DeadLettered       int64 `json:"dead_lettered"`
}

// TopicStats are one topic's totals.
type TopicStats struct {
	Topic       string    `json:"topic"`
	Unique      int64     `json:"unique"`  // every new event ever, expired ones included
	Stored      int64     `json:"stored"`  // the topic's events held now: Unique - Expired
	Expired     int64     `json:"expired"` // events deleted under retention`
	Duplicates  int64     `json:"duplicates"`
	Conflicts   int64     `json:"conflicts"`
	LastEventAt time.Time `json:"last_event_at"` // processed_at of the topic's latest new event
}

// Stats is a consistent read of the counters and the per-topic totals.
type Stats struct {
	Counters
	// Stored is how many events the store holds now, UniqueProcessed - Expired.
	Stored int64
	// Expired is how many events retention has deleted; their fingerprints may remain.
	Expired int64
	// DiskBytes is the space the store takes on disk: the files, or the tables and indexes.
	DiskBytes int64
	Topics    []TopicStats // sorted by topic
}

// Expiry is what one Expire call deleted.
type Expiry struct {
	Events       int64 // events deleted; their fingerprints stay
	Fingerprints int64 // fingerprints deleted under Retention.Fingerprints
	// More reports that the call stopped at its limit with more already expired, so the
	// caller calls again at once instead of waiting for its next round.
	More bool
}

// Store keeps each (topic, event_id) once and counts what it dropped. Implementations are
// safe for concurrent use; sqlite/ and postgres/ pass the storetest conformance suite.
type Store interface {
	Subscriptions
	// Append commits one batch in ONE transaction: every event whose key is new is stored,
	// the others are dropped as duplicates, and the counters (received, unique, duplicates,
	// conflicts, per topic) move in that same transaction. Duplicates are found by the
	// database's unique key: within the batch, across batches, across concurrent callers and
	// restarts. Outcomes are in batch order; within a batch the first occurrence of a key wins.
	// On error nothing of the batch is stored or counted.
	Append(ctx context.Context, events []Event) ([]Outcome, error)
	// DeadLetter counts n events that a broker gave up on: received and dead_lettered both
	// grow by n, so the totals still add up. A non-empty delivery (the entry given up on) is
	// counted once: the broker counts before it moves the entry aside, and when the move
	// fails it tries both again, which must not count the events twice. The delivery is
	// recorded with an empty key, which no event has, so it cannot pass for an Append's.
	DeadLetter(ctx context.Context, delivery string, n int) error
	// Events returns up to q.Limit stored events with Cursor > q.After, in feed order (see
	// Cursor): read again and again from the last cursor returned, it returns every stored
	// event exactly once, whatever commits concurrently. It may return fewer than are
	// committed, holding back events that a transaction still in flight could precede; a
	// commit wakes the readers then (Committed). With q.Newest, those with Cursor < q.Before
	// (any when zero), newest first, no event held back. A cursor that no event of this store
	// could have is an error of KindInvalid.
	Events(ctx context.Context, q EventQuery) ([]StoredEvent, error)
	// Committed returns a channel that is closed when events may have become readable after
	// the call: a commit of new events by this process or, where the store is shared, by any
	// other. A reader takes the channel, then reads, and waits on it only when it found
	// nothing: no commit between the read and the wait is missed.
	Committed() <-chan struct{}
	// Stats reads the counters and per-topic totals.
	Stats(ctx context.Context) (Stats, error)
	// StoredHash returns the ContentHash of the event stored under key, or "" when none is.
	// With the hash of a conflicting duplicate beside it, the log shows what a producer
	// changed under a reused id. It is one indexed read, off the Append path: the consumer
	// calls it only for the conflicts it logs.
	StoredHash(ctx context.Context, key Key) (string, error)
	// Expire deletes what r says has expired as of now: events whose processing is older than
	// their topic's retention, and fingerprints older than r.Fingerprints. One call does a
	// bounded amount of work, about limit rows (a store that drops a whole partition of
	// expired events counts them all) in short transactions, so that appends never wait on it
	// for long. In the same transactions the per-topic Expired counts grow and the expired
	// events' greatest cursor moves (ExpiredThrough). An event's fingerprint outlives it:
	// Append still answers a late duplicate of an expired event OutcomeDuplicate, a changed
	// one OutcomeConflict, and stores neither. r must be valid (Retention.Validate).
	Expire(ctx context.Context, r Retention, now time.Time, limit int) (Expiry, error)
	// ExpiredThrough returns the greatest cursor of the events of topics (every topic when
	// none) that retention has deleted, the zero Cursor when none was. A reader whose cursor
	// is below it has lost events to retention: its next page starts at the oldest event still
	// held after its cursor, and it must be told so.
	ExpiredThrough(ctx context.Context, topics []string) (Cursor, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}
