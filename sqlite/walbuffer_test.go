package sqlite

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"

	"github.com/uts-events/uts"
)

// TestWALFileKeepsTheOrderOfWrites drives a walFile over a real file through consecutive
// writes, a gap, an overwrite of what it still holds, reads, a truncation and a sync, and
// compares the file with the same operations applied to a byte slice: gathering may delay
// writes, never reorder or lose them. Consecutive writes are not on disk before a sync and
// are after it.
func TestWALFileKeepsTheOrderOfWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db-wal")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	inner := &osFile{File: file}
	f := &walFile{File: inner}
	var want []byte
	write := func(p []byte, off int64) {
		t.Helper()
		if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
			t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
		}
		if end := int(off) + len(p); end > len(want) {
			want = append(want, make([]byte, end-len(want))...)
		}
		copy(want[off:], p)
	}
	onDisk := func() []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	frame := func(fill byte, n int) []byte { return bytes.Repeat([]byte{fill}, n) }

	write(frame(1, 32), 0) // a WAL header, then frames: header and page
	write(frame(2, 24), 32)
	write(frame(3, 4096), 56)
	write(frame(4, 24), 4152)
	if got := onDisk(); len(got) != 0 {
		t.Fatalf("%d bytes on disk before the sync: consecutive writes were not gathered", len(got))
	}
	if err := f.Sync(vfs.SYNC_FULL); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); !bytes.Equal(got, want) || inner.writes != 1 {
		t.Fatalf("after the sync the file holds %d bytes in %d writes, want %d in 1", len(got), inner.writes, len(want))
	}

	write(frame(5, 4096), 4176)
	write(frame(6, 24), 32)  // an overwrite behind what is held: the held writes go first
	write(frame(7, 100), 50) // and one inside what is held now
	write(frame(8, 10), 10_000)
	buf := make([]byte, 24)
	if _, err := f.ReadAt(buf, 32); err != nil || !bytes.Equal(buf, want[32:56]) {
		t.Fatalf("ReadAt after gathered writes = %v, %v; want %v", buf, err, want[32:56])
	}
	write(frame(9, walBufferMax+1), 10_010) // larger than the buffer: written at once
	write(frame(10, 24), int64(len(want)))
	if size, err := f.Size(); err != nil || size != int64(len(want)) {
		t.Fatalf("Size = %d, %v; want %d", size, err, len(want))
	}
	write(frame(11, 24), 20)
	if err := f.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	want = want[:5000]
	write(frame(12, 8), 4990)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); !bytes.Equal(got, want) {
		t.Fatalf("after Close the file differs from the writes applied in order (%d bytes, want %d)", len(got), len(want))
	}
}

// TestWriterGathersItsWAL checks that the writer's WAL is the gathering one and that an
// Append leaves nothing held: what it acknowledged is in the file, for the readers (which
// read the file, not the writer's memory) and for a restart.
func TestWriterGathersItsWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	journal, err := s.writer.FileControl("main", sqlite3.FCNTL_JOURNAL_POINTER)
	if err != nil {
		t.Fatal(err)
	}
	wal, ok := journal.(*walFile)
	if !ok {
		t.Fatalf("the writer's WAL is a %T, want a *walFile", journal)
	}
	for i := range 50 {
		batch := []uts.Event{{Topic: "t", EventID: string(rune('a'+i%26)) + string(rune('0'+i/26)),
			Timestamp: time.Now(), Source: "test", Payload: []byte(`{}`)}}
		if _, err := s.Append(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		if len(wal.pending) != 0 {
			t.Fatalf("after Append %d, %d bytes of the WAL are still held", i, len(wal.pending))
		}
	}
	page, err := s.Events(t.Context(), uts.EventQuery{Limit: 100})
	if err != nil || len(page) != 50 {
		t.Fatalf("the readers see %d events, %v; want 50", len(page), err)
	}
}

// osFile is a vfs.File on an *os.File that counts its writes: ncruces's own file opens only
// from SQLite's side of the VFS.
type osFile struct {
	*os.File
	writes int
}

func (f *osFile) WriteAt(p []byte, off int64) (int, error) {
	f.writes++
	return f.File.WriteAt(p, off)
}

func (f *osFile) Sync(vfs.SyncFlag) error { return f.File.Sync() }

func (f *osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f *osFile) Lock(vfs.LockLevel) error                        { return nil }
func (f *osFile) Unlock(vfs.LockLevel) error                      { return nil }
func (f *osFile) CheckReservedLock() (bool, error)                { return false, nil }
func (f *osFile) SectorSize() int                                 { return 4096 }
func (f *osFile) DeviceCharacteristics() vfs.DeviceCharacteristic { return 0 }
