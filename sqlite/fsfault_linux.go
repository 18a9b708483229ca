package sqlite

import "syscall"

const (
	stReadOnly = 0x1     // ST_RDONLY of statfs(2): the file system is mounted read-only
	lowSpace   = 1 << 20 // free bytes under which a failed write is put down to a full disk
)

// fileSystemFault says what is wrong with the file system that holds dir, if anything: read-
// only, or (nearly) full. A write may need more than the little space left, so a low free
// space counts as full.
func fileSystemFault(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return ""
	}
	switch {
	case st.Flags&stReadOnly != 0:
		return "the store is read-only"
	case st.Bavail*uint64(st.Bsize) < lowSpace:
		return "the store is out of disk space"
	}
	return ""
}
