package uts_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/uts-events/uts"
)

// canonicalByMaps is the obvious canonical form — decode into maps, encode again — that
// uts.Canonical must match byte for byte while avoiding its cost.
func canonicalByMaps(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

var canonicalSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-1.5e+10`, `true`, `null`,
	`{"b":1,"a":2}`, `{ "a" : [ 1 , {"z":null, "y" : "\u00e9\n"} ] }`,
	`{"a":1,"a":2}`, `{"b":{"d":1,"c":2},"a":[{"y":1,"x":2}]}`,
	`{"\u0061":1,"a":2,"b":3}`, `{"k":"\u2028 \/ <&> \ud83d\ude00"}`,
	"{\"bad\":\"\xff\"}", `{"é":1,"e":2,"E":3}`, `[1.0, 1, 1e0, 10E-1]`,
}

func TestCanonicalMatchesMapEncoding(t *testing.T) {
	for _, in := range canonicalSeeds {
		want, err := canonicalByMaps([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		got, err := uts.Canonical([]byte(in))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Canonical(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":}`, `[1,]`, `{} {}`} {
		if _, err := uts.Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) accepted invalid JSON", bad)
		}
	}
}

// FuzzCanonical holds the fast canonical form to the map-based one on any valid JSON.
func FuzzCanonical(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, err := canonicalByMaps(raw)
		if err != nil || !json.Valid(raw) {
			return
		}
		got, err := uts.Canonical(raw)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Canonical(%q) = %q, %v; want %q", raw, got, err, want)
		}
	})
}
