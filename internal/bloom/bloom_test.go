package bloom

import (
	"crypto/rand"
	"testing"
)

func randomKey() (k [16]byte) {
	rand.Read(k[:])
	return k
}

// TestNoFalseNegatives adds keys past several growths: every key added is found, and keys
// never added are found at about the designed rate.
func TestNoFalseNegatives(t *testing.T) {
	f := New(1000)
	if !f.Empty() {
		t.Fatal("a new filter is not empty")
	}
	added := make([][16]byte, 20_000) // the filter grows four times
	for i := range added {
		added[i] = randomKey()
		f.Add(added[i])
	}
	if f.Empty() {
		t.Fatal("a filter with keys says it is empty")
	}
	for _, k := range added {
		if !f.MayContain(k) {
			t.Fatalf("key %x was added and is not found", k)
		}
	}
	if len(f.filters) < 4 {
		t.Fatalf("%d filters for 20 times the first capacity, want it to have grown", len(f.filters))
	}
	const probes = 100_000
	positives := 0
	for range probes {
		if f.MayContain(randomKey()) {
			positives++
		}
	}
	rate := float64(positives) / probes
	if rate > 0.02 { // under 1.7% over all, by design
		t.Fatalf("false-positive rate %.4f, expected %.4f", rate, f.FalsePositiveRate())
	}
	t.Logf("false-positive rate %.4f (expected %.4f), %d bytes for %d keys", rate, f.FalsePositiveRate(), f.Bytes(), len(added))
}

func BenchmarkMayContain(b *testing.B) {
	f := New(10_000_000)
	for range 1_000_000 {
		f.Add(randomKey())
	}
	k := randomKey()
	for b.Loop() {
		f.MayContain(k)
	}
}
