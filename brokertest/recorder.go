package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/uts-events/uts"
)

// errInjected is the failure the recorder returns for a poisoned key.
var errInjected = errors.New("brokertest: injected commit failure")

// recorder is the suite's commit func: a small in-memory store that keeps each key once,
// answers outcomes like a real store, and remembers what it was asked and what it answered.
type recorder struct {
	mu         sync.Mutex
	stored     map[uts.Key]string        // content hash of the first stored event
	last       map[uts.Key][]uts.Outcome // the answers of the last commit holding the key, by occurrence
	deliveries map[uts.Key]int           // every time commit saw the key, failed commits included
	poisoned   map[uts.Key]bool
	conflicts  int

	// gate, when set, holds every commit until it is closed; entered is closed when the
	// first commit arrives at the gate.
	gate      chan struct{}
	entered   chan struct{}
	enterOnce sync.Once
	openOnce  sync.Once
}

func newRecorder() *recorder {
	return &recorder{
		stored:     make(map[uts.Key]string),
		last:       make(map[uts.Key][]uts.Outcome),
		deliveries: make(map[uts.Key]int),
		poisoned:   make(map[uts.Key]bool),
	}
}

// withGate makes commits wait until openGate.
func (r *recorder) withGate() *recorder {
	r.gate = make(chan struct{})
	r.entered = make(chan struct{})
	return r
}

var _ uts.CommitFunc = newRecorder().commit

func (r *recorder) commit(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	if r.gate != nil {
		r.enterOnce.Do(func() { close(r.entered) })
		select {
		case <-r.gate:
		case <-time.After(waitLimit):
			return nil, errors.New("brokertest: the gate was never opened")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		r.deliveries[e.Key()]++
	}
	for _, e := range events {
		if r.poisoned[e.Key()] {
			return nil, errInjected
		}
	}
	outcomes := make([]uts.Outcome, len(events))
	answered := make(map[uts.Key][]uts.Outcome, len(events))
	for i, e := range events {
		hash := e.ContentHash()
		switch first, ok := r.stored[e.Key()]; {
		case !ok:
			r.stored[e.Key()] = hash
			outcomes[i] = uts.OutcomeNew
		case first == hash:
			outcomes[i] = uts.OutcomeDuplicate
		default:
			outcomes[i] = uts.OutcomeConflict
			r.conflicts++
		}
		answered[e.Key()] = append(answered[e.Key()], outcomes[i])
	}
	for k, answers := range answered {
		r.last[k] = answers
	}
	return outcomes, nil
}

func (r *recorder) openGate() {
	r.openOnce.Do(func() { close(r.gate) })
}

func (r *recorder) poison(k uts.Key, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.poisoned[k] = on
}

func (r *recorder) storedHash(k uts.Key) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.stored[k]
	return h, ok
}

// lastOutcome is what the last commit holding k answered for k's nth occurrence in it.
func (r *recorder) lastOutcome(k uts.Key, nth int) uts.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	if answers := r.last[k]; nth < len(answers) {
		return answers[nth]
	}
	return 0
}

func (r *recorder) deliveryCount(k uts.Key) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deliveries[k]
}

func (r *recorder) conflictCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conflicts
}

// storedAll returns an error naming how many events are not stored yet.
func (r *recorder) storedAll(events []uts.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	missing := 0
	for _, e := range events {
		if _, ok := r.stored[e.Key()]; !ok {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d events not committed", missing, len(events))
	}
	return nil
}
