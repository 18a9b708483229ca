package storetest

import (
	"testing"

	"github.com/uts-events/uts"
)

func testStoredHash(t *testing.T, opener Opener) {
	s := open(t, opener)
	storedHash := func(key uts.Key) string {
		t.Helper()
		hash, err := s.StoredHash(t.Context(), key)
		if err != nil {
			t.Fatalf("StoredHash(%+v): %v", key, err)
		}
		return hash
	}
	first := newEvent("t", "x")
	if got := storedHash(first.Key()); got != "" {
		t.Fatalf("StoredHash of a key never stored = %q, want \"\"", got)
	}

	conflicting := first
	conflicting.Payload = []byte(`{"changed":true}`)
	wantOutcomes(t, appendOK(t, s, first, conflicting), newEv, conflict)
	if got, want := storedHash(first.Key()), first.ContentHash(); got != want {
		t.Fatalf("StoredHash = %q, want the first event's ContentHash %q (the first stored wins)", got, want)
	}
	if storedHash(first.Key()) == conflicting.ContentHash() {
		t.Fatal("StoredHash is the conflicting event's hash")
	}

	// Keys are (topic, event_id) pairs, never their concatenation.
	wantOutcomes(t, appendOK(t, s, newEvent("ab", "c")), newEv)
	if got := storedHash(uts.Key{Topic: "a", EventID: "bc"}); got != "" {
		t.Fatalf("StoredHash(a, bc) = %q after storing (ab, c), want \"\"", got)
	}
}
