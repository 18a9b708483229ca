package testenv

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback address with a port nobody listens on now, for a server a
// test starts as a separate process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
