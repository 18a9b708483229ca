package testenv

import (
	"crypto/rand"
	"encoding/hex"
)

// randomHex is 12 hex digits, enough that no two tests, runs or engineers pick the same name.
func randomHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
