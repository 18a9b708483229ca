package notify

import (
	"sync"
	"testing"
	"time"
)

func TestNotifyWakesEveryWaiter(t *testing.T) {
	var b Broadcaster
	const waiters = 10
	var wg sync.WaitGroup
	woken := make(chan struct{}, waiters)
	for range waiters {
		ch := b.Wait()
		wg.Go(func() {
			<-ch
			woken <- struct{}{}
		})
	}
	b.Notify()
	wg.Wait()
	if len(woken) != waiters {
		t.Fatalf("%d of %d waiters woke", len(woken), waiters)
	}
}

func TestWaitAfterNotifyWaitsForTheNext(t *testing.T) {
	var b Broadcaster
	before := b.Wait()
	b.Notify()
	after := b.Wait()
	select {
	case <-before:
	default:
		t.Fatal("the channel taken before Notify is still open")
	}
	select {
	case <-after:
		t.Fatal("the channel taken after Notify is closed already")
	case <-time.After(10 * time.Millisecond):
	}
	b.Notify()
	<-after
}
