// Package uts holds the domain of the UTS Event System: the event, its validation and
// canonical form, and the interfaces (Store, Broker) that the subpackages implement.
// It imports nothing of the project's own, so every other package can depend on it.
package uts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Event is one published fact. (Topic, EventID) is its identity: the system stores each
// identity once, however often it is published.
type Event struct {
	Topic     string          `json:"topic"`
	EventID   string          `json:"event_id"`
	Timestamp time.Time       `json:"timestamp"`
	Source    string          `json:"source"`
	Payload   json.RawMessage `json:"payload"`
	// Delivery names the broker delivery that carried the event (the Redis broker's stream
	// entry), so that a store can tell a redelivery of a batch it committed from a new
	// publish: a consumer that lost its connection while the commit went through cannot tell
	// and delivers the batch again. Events that share a Delivery were delivered as one unit,
	// in the same order every time, and a batch holds all of them or none. The store records
	// each Delivery once, with the key of its first event, in the batch's transaction, and
	// keeps it for DeliveryRetention; the events of a Delivery recorded already are answered
	// OutcomeDuplicate and neither stored nor counted again. Empty for the in-process broker,
	// whose publisher sees the commit's outcome itself; never on the wire.
	Delivery string `json:"-"`
}

// DeliveryRetention is how long a store remembers a delivery: far longer than an entry can
// stay pending while the deployment runs (a claim takes seconds, a restart minutes), yet a
// bounded table. The aggregator holds back the pruning of deliveries that an entry still in
// the Redis stream may need (see redis.Broker.OldestEntry), so a redelivery is never counted
// again, however late it comes.
const DeliveryRetention = 24 * time.Hour

// Key is the identity of an event.
type Key struct {
	Topic   string
	EventID string
}

// Key returns the event's identity.
func (e Event) Key() Key { return Key{Topic: e.Topic, EventID: e.EventID} }

// ContentHash identifies the event's content, so that a retry (same content) can be told
// apart from a conflicting duplicate (same key, other content). The decoder has already put
// the payload in canonical form and the timestamp in UTC, so equal events hash equally
// whatever their key order, white space or time zone was on the wire.
func (e Event) ContentHash() string {
	h := sha256.New()
	for _, s := range []string{e.Topic, e.EventID, e.Source, e.Timestamp.UTC().Format(time.RFC3339Nano)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(e.Payload)
	return hex.EncodeToString(h.Sum(nil))
}

// StoredEvent is an event as the store keeps it.
type StoredEvent struct {
	Event
	ProcessedAt time.Time `json:"processed_at"`
	// Cursor is the event's place in the feed; a page's last Cursor is the next page's After.
	Cursor Cursor `json:"-"`
}
