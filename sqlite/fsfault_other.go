//go:build !linux

package sqlite

// fileSystemFault is only known on Linux here; elsewhere the I/O error speaks for itself.
func fileSystemFault(string) string { return "" }
