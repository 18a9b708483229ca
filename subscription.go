package uts

import (
	"context"
	"fmt"
	"slices"
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

// MaxSubscriptionTopics bounds the topics of one subscription: each is a term of every read.
const MaxSubscriptionTopics = 100

// maxSubscriptionNameBytes bounds a subscription's name, which is a URL segment and a label.
const maxSubscriptionNameBytes = 128

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
	// Subscription returns one subscription, with its lag when countLag is set: counting
	// reads the whole backlog, which a reader that only wants the cursor need not pay for.
	Subscription(ctx context.Context, name string, countLag bool) (Subscription, error)
	// CommitSubscription moves the committed cursor to c. Moving it back is KindConflict
	// unless reset is set; committing the cursor it has is a no-op. A cursor past every
	// stored event is KindInvalid: no read of this store handed it out. The Lag returned is
	// not counted (0), for the same reason as in Subscription: a commit is frequent.
	CommitSubscription(ctx context.Context, name string, c Cursor, reset bool) (Subscription, error)
	// ListSubscriptions returns every subscription, sorted by name, each with its lag.
	ListSubscriptions(ctx context.Context) ([]Subscription, error)
	// DeleteSubscription removes it; an unknown name is KindNotFound.
	DeleteSubscription(ctx context.Context, name string) error
}

// CheckSubscriptionName reports, as a KindInvalid error naming the field "name", a name that
// is not 1 to 128 bytes of letters, digits, '.', '_' and '-', or is "." or "..": a name is a
// URL path segment and a metric label, so it needs no escaping in either.
func CheckSubscriptionName(name string) error {
	problem := ""
	switch {
	case name == "":
		problem = "must not be empty"
	case name == "." || name == "..":
		// Path segments that clients and routers resolve away: no request could reach it.
		problem = "must not be . or .."
	case len(name) > maxSubscriptionNameBytes:
		problem = fmt.Sprintf("must be at most %d bytes, got %d", maxSubscriptionNameBytes, len(name))
	default:
		for _, r := range []byte(name) {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				problem = fmt.Sprintf("must hold only letters, digits, '.', '_' and '-', not %q", r)
				break
			}
		}
	}
	if problem == "" {
		return nil
	}
	const rule = " (1 to 128 bytes of A-Z, a-z, 0-9, '.', '_', '-')"
	return &Error{Kind: KindInvalid, Message: "invalid subscription name: " + problem + rule,
		Details: []FieldError{{Field: "name", Message: problem + rule}}}
}

// Normalize checks the spec and returns it as stores keep it: topics sorted without
// repeats, and the start "earliest" when none is given, since a subscriber that said nothing
// is better served by every event than by missing some. Errors are KindInvalid and name
// every bad field.
func (spec SubscriptionSpec) Normalize() (SubscriptionSpec, error) {
	var details []FieldError
	if err := CheckSubscriptionName(spec.Name); err != nil {
		details = append(details, err.(*Error).Details...)
	}
	if len(spec.Topics) > MaxSubscriptionTopics {
		details = append(details, FieldError{Field: "topics",
			Message: fmt.Sprintf("must hold at most %d topics, got %d", MaxSubscriptionTopics, len(spec.Topics))})
	}
	for i, topic := range spec.Topics {
		if msg := nameProblem(topic); msg != "" {
			details = append(details, FieldError{Field: fmt.Sprintf("topics[%d]", i), Message: msg})
		}
	}
	switch spec.Start {
	case "":
		spec.Start = StartEarliest
	case StartEarliest, StartLatest:
	default:
		details = append(details, FieldError{Field: "start", Message: `must be "earliest" or "latest"`})
	}
	if details != nil {
		return spec, &Error{Kind: KindInvalid, Message: "invalid subscription: " + details[0].Field + " " + details[0].Message, Details: details}
	}
	topics := slices.Clone(spec.Topics)
	slices.Sort(topics)
	spec.Topics = slices.Compact(topics)
	if spec.Topics == nil {
		spec.Topics = []string{}
	}
	return spec, nil
}

// Matches reports whether the subscription was created by spec, a normalized one.
func (s Subscription) Matches(spec SubscriptionSpec) bool {
	return s.Name == spec.Name && s.Start == spec.Start && slices.Equal(s.Topics, spec.Topics)
}
