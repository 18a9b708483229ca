package uts

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Fingerprint is what a store keeps of an event's identity once the event itself has
// expired (see Retention), so that deduplication stays exact for ever while payloads go.
//
// Key is the first 16 bytes of a SHA-256 over the event's key. Two distinct keys share a
// Key with probability about n²/2¹²⁹ among n keys: 1.5e-19 for ten billion keys, so a new
// event is never, in practice, mistaken for a duplicate. Content is the first 4 bytes of the
// event's ContentHash: it tells a retry (same content) from a conflict (other content), and
// a conflict passes for a retry with probability 2⁻³²; either way the event is dropped, only
// the duplicate_conflicts count would differ.
type Fingerprint struct {
	Key     [16]byte
	Content uint32
}

// FingerprintOf is the fingerprint of the event stored under key with contentHash (as
// Event.ContentHash writes it).
func FingerprintOf(key Key, contentHash string) Fingerprint {
	return Fingerprint{Key: KeyFingerprint(key), Content: ContentTag(contentHash)}
}

// KeyFingerprint is the Key of a Fingerprint. The topic's length comes first, so that no two
// (topic, event_id) pairs hash the same bytes.
func KeyFingerprint(key Key) [16]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(key.Topic)))])
	h.Write([]byte(key.Topic))
	h.Write([]byte(key.EventID))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return [16]byte(sum[:16])
}

// ContentTag is the Content of a Fingerprint: the first 4 bytes of a hex ContentHash.
func ContentTag(contentHash string) uint32 {
	var b [4]byte
	if len(contentHash) < 8 {
		return 0
	}
	if _, err := hex.Decode(b[:], []byte(contentHash[:8])); err != nil {
		return 0
	}
	return binary.BigEndian.Uint32(b[:])
}
