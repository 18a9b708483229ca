package uts_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/uts-events/uts"
)

// BenchmarkDecodeBatch measures the API's per-request CPU before anything is queued: a
// 100-event batch shaped like the publisher's.
func BenchmarkDecodeBatch(b *testing.B) {
	var body strings.Builder
	body.WriteString("[")
	for i := range 100 {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"topic":"topic-%d","event_id":"00000000000004d2-%010d","timestamp":"2025-01-01T00:00:%02d.123Z","source":"publisher","payload":{"amount":%d.25,"currency":"EUR","customer":{"id":"c-%d","tier":"gold"},"items":[1,2,3]}}`, i%5, i, i%60, i, i)
	}
	body.WriteString("]")
	raw := []byte(body.String())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := uts.DecodeBatch(raw, uts.DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
}

// BenchmarkContentHash is what conflict detection adds to every new event: the hash the
// store keeps beside it.
func BenchmarkContentHash(b *testing.B) {
	events, err := uts.DecodeBatch([]byte(validEvent), uts.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = events[0].ContentHash()
	}
}
