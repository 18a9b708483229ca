package redis

import (
	"context"
	"testing"
	"time"
)

// TestBackoffIsCappedExponentialWithJitter: the intervals double from min up to max, and
// each wait is drawn from half the interval to the whole, so replicas that met an outage
// together do not retry in step.
func TestBackoffIsCappedExponentialWithJitter(t *testing.T) {
	b := newBackoff()
	stopped, cancel := context.WithCancel(context.Background())
	cancel() // wait returns at once, having moved on to the next interval
	want := b.min
	for i := range 12 {
		if b.wait(stopped) {
			t.Fatal("wait on an ended context returned true")
		}
		want = min(2*want, b.max)
		if b.next != want {
			t.Fatalf("interval after %d failures is %v; want %v", i+1, b.next, want)
		}
	}
	if b.next != b.max {
		t.Errorf("interval after 12 failures %v; want the cap %v", b.next, b.max)
	}
	b.reset()
	if b.wait(stopped); b.next != 2*b.min {
		t.Errorf("interval after a reset and one failure %v; want %v", b.next, 2*b.min)
	}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jitter(time.Second)
		if d < time.Second/2 || d > time.Second {
			t.Fatalf("jitter(1s) = %v; want between 500ms and 1s", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Errorf("jitter(1s) drew %d distinct waits in 1000; want them spread", len(seen))
	}
}
