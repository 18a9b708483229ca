//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"

	"github.com/uts-events/uts"
)

// lockStore takes an exclusive lock on path+".lock" for as long as the store is open, or
// fails at once when another Store has it, in this process or another. SQLite itself would
// let a second writer in, one transaction at a time; but a Store keeps in memory what it
// knows of the file (the fingerprints' filter, the expiry's place in its sweep), and a second
// one would not see what the first writes: a late duplicate of an event the other expired
// would be stored again. The error is KindUnavailable, so an aggregator that starts while
// the one it replaces still stops waits for it (-start-timeout).
func lockStore(path string) (release func() error, err error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, uts.Unavailable("another process has this SQLite store open; SQLite mode is one aggregator a file", err)
		}
		return nil, err
	}
	return f.Close, nil // closing the file lets go of the lock
}
