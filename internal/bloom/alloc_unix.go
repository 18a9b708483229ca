//go:build unix

package bloom

import (
	"syscall"
	"unsafe"
)

// allocWords returns zeroed words outside the Go heap. A filter of 10 million keys is 15 MB
// that lives as long as the store: on the heap it would count as live, and the aggregator's
// GOGC=400 would let the heap grow four times that before collecting, about 60 MB of RSS
// for nothing (docs/benchmarks.md). The mapping is never returned: a store keeps its filter
// for its life, and one closed and opened again (in tests) leaves behind the pages its keys
// touched, a few for a handful of fingerprints.
func allocWords(n int64) []uint64 {
	if n == 0 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, int(n*8), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]uint64, n) // on the heap, then
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), n)
}
