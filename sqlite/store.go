// Package sqlite implements uts.Store on a local SQLite file, in pure Go (no cgo).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // registers "sqlite3" for the readers

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/bloom"
	"github.com/uts-events/uts/internal/notify"
	"github.com/uts-events/uts/internal/retention"
)

// Store is a uts.Store on one SQLite file. SQLite admits one writer at a time, so writes go
// through a single connection; reads use a pool of their own and, thanks to WAL, read a
// snapshot without ever waiting behind a write.
//
// The writer is driven through ncruces's own API rather than database/sql: binding values
// directly instead of through []any and driver.Value conversions saved about a sixth of the
// writer's CPU, and the writer is what bounds the event rate.
type Store struct {
	dir    string // the file's folder, whose file system diagnose inspects
	path   string // the file, whose size and its WAL's Stats reports
	writer *sqlite3.Conn
	read   *sql.DB
	// writing is a lock that a waiting Append can give up on when its context ends; whoever
	// holds it owns the writer and its statements.
	writing chan struct{}
	writes  *writeStatements
	closed  atomic.Bool
	// pruner prunes the deliveries; stopPruning ends its ticker and waits for it.
	pruner retention.Pruner
	// deliveriesHeld bounds the pruning of deliveries (see WithDeliveriesHeld); nil for none.
	deliveriesHeld func(ctx context.Context) (time.Time, error)
	stopPruning    func()
	// log hears of what the store does on its own, where no caller waits for an error.
	log *slog.Logger
	// committed wakes the feed's readers (see uts.Store.Committed).
	committed notify.Broadcaster
	// seen holds every fingerprint's key (see fingerprints.go), so that Append reads only the
	// few that may be there, and none while it is empty: the file is written by this Store
	// alone (lockStore). Expire adds to it under the writer, before its commit.
	seen *bloom.Filter
	// release lets go of the file's lock (lockStore), once the store is closed.
	release func() error
	// expiring serializes Expire calls, which own nextTopic and sweep.
	expiring sync.Mutex
	// nextTopic is where the next Expire starts, after one that stopped at its limit.
	nextTopic string
	// sweep is where the fingerprints' sweep goes on from (see sweepFingerprints).
	sweep fingerprintSweep
	// commitDelay, set by tests only, holds each Append's transaction open that long before
	// it commits.
	commitDelay func() time.Duration
}

// Option tunes Open.
type Option func(*Store)

// WithLogger gives the store a logger (default slog.Default()) for what fails off any
// request: a pruning run.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithDeliveriesHeld keeps the deliveries recorded from held's time on, however old: held is
// the broker's oldest entry still in flight (see redis.Broker.OldestEntry), which may be
// delivered again and must then be found recorded, or its events would be counted again.
func WithDeliveriesHeld(held func(ctx context.Context) (time.Time, error)) Option {
	return func(s *Store) { s.deliveriesHeld = held }
}

var _ uts.Store = (*Store)(nil)

// Open opens or creates the store at path, creating its folder if missing.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: create folder for %s: %w", path, err)
	}
	// journal_mode=WAL with synchronous=FULL: a commit returns only after its WAL frames are
	// fsynced, so a successful Append survives kill -9 and power loss alike. With NORMAL the
	// WAL is fsynced only at checkpoints: still safe against kill -9 (the OS holds the
	// written pages), but a power cut could lose the last commits that were acknowledged.
	//
	// A second Store of the file is refused (lockStore). busy_timeout still makes a reader,
	// such as the sqlite3 shell, that holds a lock wait rather than fail; transactions start
	// with BEGIN IMMEDIATE, taking the write lock at once, so a transaction never fails
	// half-way on a lock upgrade.
	//
	// page_size=4096 (taking effect only when the file is created: a file made with another
	// size keeps it) is SQLite's default. Each commit writes every page it changed whole to
	// the WAL and waits for the fsync of all of them: the right edges of the table and of its
	// two indexes per topic, the counters and the topics, whatever the events' size. 16384
	// had been chosen for fewer write syscalls a commit, but made each commit write and fsync
	// four times the bytes; 4096 was 1.05 – 1.24× the requests/s for single events and 1.07 –
	// 1.27× the events/s for batches of 100, alternated on a quiet machine (docs/benchmarks.md,
	// issue #11), and a fingerprint takes 34.7 bytes instead of 33.7.
	//
	// cache_size=-65536 gives the writer 64 MiB of page cache instead of SQLite's 2 MiB: past
	// a few MiB of events, the unique index's pages that duplicates look up and the
	// B-trees' right edges no longer fit, and every Append re-read them from the file (a
	// pread each, 10% of its CPU). Batches end to end, alternated A/B: ×1.02 – 1.10 events/s
	// and 9 – 16% less aggregator CPU per event (docs/benchmarks.md, issue #11). The cache
	// lives in the WebAssembly module's memory, which ncruces maps outside the Go heap (so
	// outside the soft memory limit) and caps at 256 MiB a connection on 64-bit builds: it
	// grows the resident size by up to 64 MiB as the file grows.
	//
	// temp_store=memory keeps statement journals off the disk: they only serve to undo a
	// failed statement, and writing one to a temp file cost 10% of an Append when every
	// INSERT kept one. Append's usual INSERT no longer does (see insertSQL); the deliveries'
	// and the seq-numbered INSERT still do.
	release, err := lockStore(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	opened := false
	defer func() {
		if !opened {
			release()
		}
	}()
	// The writer's WAL writes are gathered into one per sync (walbuffer.go); the readers
	// write nothing and open the file plainly.
	writer, err := sqlite3.OpenContext(ctx, dsn(path, "vfs="+walBufferVFSName, "_pragma=busy_timeout(10000)", "_pragma=page_size(4096)",
		"_pragma=journal_mode(wal)", "_pragma=synchronous(full)", "_pragma=temp_store(memory)", "_pragma=cache_size(-65536)"))
	if err != nil {
		return nil, classify(ctx, fmt.Sprintf("open %s", path), err)
	}
	if err := migrate(ctx, writer); err != nil {
		writer.Close()
		return nil, classify(ctx, fmt.Sprintf("open %s", path), err)
	}
	writes, err := prepareWrites(writer)
	if err != nil {
		writer.Close()
		return nil, classify(ctx, fmt.Sprintf("open %s", path), err)
	}
	seen, err := loadFingerprints(writer)
	if err != nil {
		writes.close()
		writer.Close()
		return nil, classify(ctx, fmt.Sprintf("open %s", path), err)
	}

	// Readers are query_only: a read path that tried to write would fail instead of taking
	// the write lock.
	read, err := sql.Open("sqlite3", dsn(path, "_pragma=busy_timeout(10000)", "_pragma=query_only(1)", "_txlock=deferred"))
	if err != nil {
		writes.close()
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)

	s := &Store{dir: filepath.Dir(path), path: path, writer: writer, read: read, writing: make(chan struct{}, 1), writes: writes, log: slog.Default()}
	s.seen = seen
	s.release = release
	opened = true
	for _, opt := range opts {
		opt(s)
	}
	s.pruner = retention.Pruner{Every: pruneEvery, Keep: uts.DeliveryRetention, ChunkRows: pruneChunkRows,
		Chunks: pruneChunks, Chunk: s.pruneChunk, Hold: s.deliveriesHeld, Log: s.log}
	s.stopPruning = s.pruner.Start()
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func dsn(path string, params ...string) string {
	d := "file:" + path
	for i, p := range params {
		if i == 0 {
			d += "?" + p
		} else {
			d += "&" + p
		}
	}
	return d
}

// Ping checks that both the writer and the readers reach the file. The writer's check waits
// for a running Append, as it did when the writer was a one-connection pool.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return uts.Unavailable("the store is closed", nil)
	}
	err := s.withWriter(ctx, func() error {
		if err := s.writes.ping.Exec(); err != nil {
			return classify(ctx, "ping", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.read.PingContext(ctx); err != nil {
		return classify(ctx, "ping", err)
	}
	return nil
}

// Committed returns a channel closed at the next commit of new events; see uts.Store.
func (s *Store) Committed() <-chan struct{} { return s.committed.Wait() }

// Close waits for a running Append to finish and closes the file.
func (s *Store) Close() error {
	s.stopPruning()
	s.writing <- struct{}{} // an Append in flight finishes first
	defer s.unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return errors.Join(s.read.Close(), s.writes.close(), s.writer.Close(), s.release())
}
