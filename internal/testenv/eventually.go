package testenv

import (
	"testing"
	"time"
)

// Eventually polls check every interval until it returns nil, and fails the test with
// check's last error once limit has passed. It waits for a state; it never times one.
func Eventually(t testing.TB, what string, limit, every time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", limit, what, err)
		}
		time.Sleep(every)
	}
}
