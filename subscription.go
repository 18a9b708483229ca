package uts

import (
	"context"
	"time"
)

// SubscriptionStart is where a new subscription's cursor begins.
type SubscriptionStart string

const (
	StartEarliest SubscriptionStart = "earliest" // the first stored event
	StartLatest   SubscriptionStart = "latest"   // after the events stored when it is created
)

// MaxSubscriptions bounds how many subscriptions a store holds, and so the label values of
// the lag metric.
const MaxSubscriptions = 1000

// Subscription is a named, durable reader of the feed: the store keeps its committed cursor,
// so that a subscriber resumes where it committed after a crash, from any replica.
type Subscription struct {
	Name   string            `json:"name"`
	Topics []string          `json:"topics"` // sorted, without repeats; empty for every topic
	Start  SubscriptionStart `json:"start"`
	// Cursor is the committed position: the subscriber has handled every event up to it.
	Cursor    Cursor    `json:"cursor"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"` // the last commit (or the creation)
	// Lag is the number of stored events of its topics past Cursor (ListSubscriptions fills it).
	Lag int64 `json:"lag"`
}

// SubscriptionSpec is what creates a subscription; the same spec again finds it.
type SubscriptionSpec struct {
	Name   string
	Topics []string // normalized by the store: sorted, repeats dropped
	Start  SubscriptionStart
}

// Subscriptions keeps durable subscriptions in the store, shared by every replica.
// Implementations pass the storetest conformance suite. Errors: KindNotFound for an unknown
// name, KindConflict for a clash, KindInvalid for a cursor this store never handed out.
type Subscriptions interface {
	// CreateSubscription creates the subscription, or returns the existing one when its spec
	// is the same (created is false then). A different spec under the name is KindConflict,
	// and so is a new one past MaxSubscriptions. A latest start places the cursor after
	// every event readable at creation.
	CreateSubscription(ctx context.Context, spec SubscriptionSpec) (sub Subscription, created bool, err error)
	// Subscription returns one subscription, with its lag.
	Subscription(ctx context.Context, name string) (Subscription, error)
	// CommitSubscription moves the committed cursor to c. Moving it back is KindConflict
	// unless reset is set; committing the cursor it has is a no-op. A cursor past every
	// stored event is KindInvalid: no read of this store handed it out.
	CommitSubscription(ctx context.Context, name string, c Cursor, reset bool) (Subscription, error)
	// ListSubscriptions returns every subscription, sorted by name, each with its lag.
	ListSubscriptions(ctx context.Context) ([]Subscription, error)
	// DeleteSubscription removes it; an unknown name is KindNotFound.
	DeleteSubscription(ctx context.Context, name string) error
}
