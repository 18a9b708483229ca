package publisher

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/uts-events/uts"
)

// Generator produces a reproducible sequence of events in which a fixed share are re-sends of
// events that came earlier in the sequence. Event number k (its ordinal among the distinct
// events) is a pure function of (seed, k), so a duplicate is rebuilt rather than remembered:
// memory stays constant however long the run.
type Generator struct {
	seed      uint64
	topics    []string
	total     int     // events in the sequence; 0 means endless
	share     float64 // used only when endless, where no exact count exists
	position  int
	dupsLeft  int
	originals int
	planned   int
	order     *mrand.Rand // decides where duplicates go and what they repeat
}

// GeneratedEvent is one element of the sequence.
type GeneratedEvent struct {
	Event uts.Event
	// Ordinal numbers the distinct events from 0; a duplicate carries its original's.
	Ordinal   int
	Duplicate bool
}

// eventEpoch anchors timestamps in the past so that the same seed always yields the same
// content: a re-run is then a pure duplicate, never a conflicting one.
var eventEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// NewGenerator returns a generator of total events (0 for an endless stream) of which
// round(total*duplicateShare) re-send earlier ones. The first event is always an original,
// so at most total-1 can be duplicates.
func NewGenerator(seed uint64, total int, duplicateShare float64, topics int) (*Generator, error) {
	switch {
	case total < 0:
		return nil, fmt.Errorf("events must not be negative, got %d", total)
	case duplicateShare < 0 || duplicateShare >= 1 || math.IsNaN(duplicateShare):
		return nil, fmt.Errorf("duplicate share must be in [0, 1), got %v", duplicateShare)
	case topics < 1:
		return nil, fmt.Errorf("topics must be at least 1, got %d", topics)
	}
	g := &Generator{
		seed:   seed,
		topics: topicNames(topics),
		total:  total,
		share:  duplicateShare,
		// A stream of its own, apart from the per-event ones, so that the choice of
		// positions never shifts the content of any event.
		order: mrand.New(mrand.NewPCG(seed, 0x9e3779b97f4a7c15)),
	}
	if total > 0 {
		g.planned = min(int(math.Round(float64(total)*duplicateShare)), total-1)
		g.dupsLeft = g.planned
	}
	return g, nil
}

// NewSeed returns a random non-zero seed.
func NewSeed() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if s := binary.LittleEndian.Uint64(b[:]); s != 0 {
			return s
		}
	}
}

// Seed returns the generator's seed.
func (g *Generator) Seed() uint64 { return g.seed }

// Planned returns how many distinct events and duplicates a bounded sequence holds.
// An endless one reports zeros.
func (g *Generator) Planned() (distinct, duplicates int) {
	if g.total == 0 {
		return 0, 0
	}
	return g.total - g.planned, g.planned
}

// Next returns the next event of the sequence, or false once a bounded one is exhausted.
func (g *Generator) Next() (GeneratedEvent, bool) {
	if g.total > 0 && g.position >= g.total {
		return GeneratedEvent{}, false
	}
	duplicate := false
	if g.position > 0 {
		if g.total > 0 {
			// Selection sampling: every remaining position is equally likely to hold one
			// of the remaining duplicates, and the count comes out exact.
			duplicate = g.order.IntN(g.total-g.position) < g.dupsLeft
		} else {
			duplicate = g.order.Float64() < g.share
		}
	}
	g.position++
	if duplicate {
		g.dupsLeft--
		ordinal := g.order.IntN(g.originals)
		return GeneratedEvent{Event: g.Event(ordinal), Ordinal: ordinal, Duplicate: true}, true
	}
	ordinal := g.originals
	g.originals++
	return GeneratedEvent{Event: g.Event(ordinal), Ordinal: ordinal}, true
}

// Event returns distinct event number ordinal. The seed is part of the ID, so IDs of
// different seeds never collide.
func (g *Generator) Event(ordinal int) uts.Event {
	r := mrand.New(mrand.NewPCG(g.seed, uint64(ordinal)))
	topic := g.topics[r.IntN(len(g.topics))]
	offset := time.Duration(ordinal)*100*time.Millisecond + time.Duration(r.IntN(100))*time.Millisecond
	return uts.Event{
		Topic:     topic,
		EventID:   fmt.Sprintf("%016x-%010d", g.seed, ordinal),
		Timestamp: eventEpoch.Add(offset),
		Source:    sourceFor(topic, r),
		Payload:   payloadFor(topic, r),
	}
}
