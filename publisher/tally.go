package publisher

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/uts-events/uts"
)

// tally gathers the workers' results as they come in. The progress bar reads the atomics
// while the run goes on; everything else is read once the workers are done.
type tally struct {
	generated atomic.Int64
	sent      atomic.Int64
	failed    atomic.Int64
	requests  atomic.Int64
	retries   atomic.Int64
	failures  atomic.Int64

	mu               sync.Mutex
	delivered        deliveredSet
	latencies        []time.Duration
	committed        int // requests answered 200
	queued           int // requests answered 202
	serverUnique     int
	serverDuplicates int
	errors           []string
}

const keptErrors = 5

func (t *tally) record(items []item, reply Reply, err error) {
	t.requests.Add(int64(reply.Attempts))
	t.retries.Add(int64(max(reply.Attempts-1, 0)))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latencies = append(t.latencies, reply.Latencies...)
	if err != nil {
		t.failed.Add(int64(len(items)))
		t.failures.Add(1)
		if len(t.errors) < keptErrors {
			t.errors = append(t.errors, err.Error())
		}
		return
	}
	t.sent.Add(int64(len(items)))
	for _, it := range items {
		t.delivered.add(it)
	}
	if reply.Status == 202 {
		t.queued++
	} else {
		t.committed++
		t.serverUnique += reply.Unique
		t.serverDuplicates += reply.Duplicates
	}
}

// deliveredSet counts the distinct events delivered. Generated events are numbered densely,
// so a bitmap holds a million of them in 128 KiB; replayed ones are told apart by key.
type deliveredSet struct {
	bits  []uint64
	keys  map[uts.Key]struct{}
	count int
}

func (s *deliveredSet) add(it item) {
	if it.ordinal >= 0 {
		word, bit := it.ordinal/64, uint(it.ordinal%64)
		for len(s.bits) <= word {
			s.bits = append(s.bits, 0)
		}
		if s.bits[word]&(1<<bit) == 0 {
			s.bits[word] |= 1 << bit
			s.count++
		}
		return
	}
	if s.keys == nil {
		s.keys = make(map[uts.Key]struct{})
	}
	if _, seen := s.keys[it.key]; !seen {
		s.keys[it.key] = struct{}{}
		s.count++
	}
}
