//go:build !unix

package bloom

// allocWords returns zeroed words; see alloc_unix.go for why Unix keeps them off the heap.
func allocWords(n int64) []uint64 { return make([]uint64, n) }
