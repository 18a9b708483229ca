package sqlite

import (
	"errors"

	"github.com/ncruces/go-sqlite3/vfs"
)

// The writer opens its file through walBufferVFS, which gathers the writes SQLite makes to
// the WAL and hands them to the file system in one pwrite when SQLite syncs the WAL (or
// reads it, sizes it or truncates it). A commit writes each changed page as a frame, a
// 24-byte header and the page, one write each: 28 write system calls for a commit of 25
// single events, 17% of the store's CPU at that size (docs/benchmarks.md, issue #11), all of
// them to consecutive offsets.
//
// Nothing that a commit promises changes: with synchronous=FULL, SQLite syncs the WAL before
// it makes the commit visible in the WAL index, and the sync writes everything gathered
// first, so what a reader can see and what a 2xx acknowledges is on disk as before. Frames
// still gathered when the process dies belong to a transaction that had not committed. A
// failed write surfaces at the sync instead of the write, with the same error, and the
// commit fails as it would have. The readers and the main database file are not wrapped.

const (
	walBufferVFSName = "uts-walbuffer"
	// walBufferMax bounds what is gathered: past it, the frames go out and gathering starts
	// again, so that a commit of thousands of events holds no more than this in memory.
	walBufferMax = 1 << 20
)

func init() { vfs.Register(walBufferVFSName, walBufferVFS{vfs.Find("")}) }

// walBufferVFS is the default VFS, with the WAL files it opens wrapped in a walFile.
type walBufferVFS struct{ vfs.VFS }

func (v walBufferVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	var (
		f   vfs.File
		err error
	)
	if named, ok := v.VFS.(vfs.VFSFilename); ok {
		f, flags, err = named.OpenFilename(name, flags)
	} else {
		f, flags, err = v.VFS.Open(name.String(), flags)
	}
	if err != nil || flags&vfs.OPEN_WAL == 0 {
		return f, flags, err
	}
	// Without powersafe overwrite on the database (psow=0), SQLite pads a commit to the next
	// sector with copies of its last frame, syncs at the sector boundary, inside the last
	// copy, writes the copy's rest after the sync and makes it visible with the rest: held
	// back, that rest would be missing from the file for the readers. SQLite decides this
	// when it opens the WAL, from the database's device characteristics, as here.
	if db := name.DatabaseFile(); db == nil || db.DeviceCharacteristics()&vfs.IOCAP_POWERSAFE_OVERWRITE == 0 {
		return f, flags, nil
	}
	return &walFile{File: f}, flags, nil
}

// walFile gathers consecutive writes in pending, starting at the file offset at; any other
// use of the file writes them first.
type walFile struct {
	vfs.File
	pending []byte
	at      int64
}

func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	if len(f.pending) > 0 && (off != f.at+int64(len(f.pending)) || len(f.pending)+len(p) > walBufferMax) {
		if err := f.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) > walBufferMax {
		return f.File.WriteAt(p, off)
	}
	if len(f.pending) == 0 {
		f.at = off
	}
	f.pending = append(f.pending, p...)
	return len(p), nil
}

// flush writes what was gathered. What a failed write gathered is dropped: SQLite learns of
// the failure and will write those frames again, or others at the same offsets, if at all.
func (f *walFile) flush() error {
	if len(f.pending) == 0 {
		return nil
	}
	_, err := f.File.WriteAt(f.pending, f.at)
	f.pending = f.pending[:0]
	return err
}

func (f *walFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *walFile) Sync(flags vfs.SyncFlag) error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Sync(flags)
}

func (f *walFile) Size() (int64, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Size()
}

func (f *walFile) Truncate(size int64) error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *walFile) Close() error {
	return errors.Join(f.flush(), f.File.Close())
}

// SizeHint passes SQLite's preallocation hint on, where the file takes one.
func (f *walFile) SizeHint(size int64) error {
	if err := f.flush(); err != nil {
		return err
	}
	if hint, ok := f.File.(vfs.FileSizeHint); ok {
		return hint.SizeHint(size)
	}
	return nil
}

// PowersafeOverwrite and SetPowersafeOverwrite pass the file's psow setting on. (Whether
// SQLite pads the WAL's frames depends on the database file's, see OpenFilename.)
func (f *walFile) PowersafeOverwrite() bool {
	if p, ok := f.File.(vfs.FilePowersafeOverwrite); ok {
		return p.PowersafeOverwrite()
	}
	return false
}

func (f *walFile) SetPowersafeOverwrite(psow bool) {
	if p, ok := f.File.(vfs.FilePowersafeOverwrite); ok {
		p.SetPowersafeOverwrite(psow)
	}
}
