// Package bloom is a Bloom filter over keys that are already uniformly random (hashes), which
// grows without rebuilding: when the newest filter holds as many keys as it was sized for, a
// new one for twice as many, with more bits a key, takes the next keys, and a lookup asks
// every filter. Each filter's rate at capacity is below 0.4 times its predecessor's (1%
// for the first), so the rate over all stays under 1.7% however often it grew.
package bloom

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
)

// bitsPerKey and hashes give the first filter at capacity a false-positive rate of about 1%;
// each later one gets moreBitsPerKey more a key.
const (
	bitsPerKey     = 10
	moreBitsPerKey = 3
	hashes         = 7
)

// Filter is safe for concurrent use.
type Filter struct {
	mu      sync.RWMutex
	filters []*filter
	keys    atomic.Int64 // read without the lock by Empty
}

type filter struct {
	bits     []uint64
	capacity int64
	keys     int64
}

func newFilter(capacity int64, generation int) *filter {
	words := (capacity*int64(bitsPerKey+moreBitsPerKey*generation) + 63) / 64
	return &filter{bits: allocWords(words), capacity: capacity}
}

// New returns an empty filter sized for capacity keys before it first grows.
func New(capacity int64) *Filter {
	return &Filter{filters: []*filter{newFilter(max(capacity, 1024), 0)}}
}

// positions derives the filter's bit positions from the key's own bits (double hashing): a
// key from a cryptographic hash needs no hashing again.
func (f *filter) positions(key [16]byte, visit func(word int, mask uint64) bool) bool {
	h1 := binary.LittleEndian.Uint64(key[:8])
	h2 := binary.LittleEndian.Uint64(key[8:]) | 1
	n := uint64(len(f.bits) * 64)
	for i := range uint64(hashes) {
		bit := (h1 + i*h2) % n
		if !visit(int(bit/64), 1<<(bit%64)) {
			return false
		}
	}
	return true
}

// Add records key.
func (b *Filter) Add(key [16]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	last := b.filters[len(b.filters)-1]
	if last.keys >= last.capacity {
		last = newFilter(last.capacity*2, len(b.filters))
		b.filters = append(b.filters, last)
	}
	last.positions(key, func(word int, mask uint64) bool {
		last.bits[word] |= mask
		return true
	})
	last.keys++
	b.keys.Add(1)
}

// Empty reports whether no key was ever added: then no lookup is needed at all.
func (b *Filter) Empty() bool { return b.keys.Load() == 0 }

// MayContain is false when key was certainly never added, true when it may have been.
func (b *Filter) MayContain(key [16]byte) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, f := range b.filters {
		if f.positions(key, func(word int, mask uint64) bool { return f.bits[word]&mask != 0 }) {
			return true
		}
	}
	return false
}

// Bytes is the memory the filter's bits take.
func (b *Filter) Bytes() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var n int64
	for _, f := range b.filters {
		n += int64(len(f.bits)) * 8
	}
	return n
}

// FalsePositiveRate is the expected rate of a lookup of a key never added, from how full the
// filters are.
func (b *Filter) FalsePositiveRate() float64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	miss := 1.0
	for _, f := range b.filters {
		m := float64(len(f.bits) * 64)
		p := math.Pow(1-math.Exp(-hashes*float64(f.keys)/m), hashes)
		miss *= 1 - p
	}
	return 1 - miss
}
