package publisher

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/uts-events/uts"
)

func drain(t *testing.T, g *Generator, limit int) []GeneratedEvent {
	t.Helper()
	var out []GeneratedEvent
	for range limit {
		ge, ok := g.Next()
		if !ok {
			return out
		}
		out = append(out, ge)
	}
	t.Fatalf("generator did not end within %d events", limit)
	return nil
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGeneratorExactCountsAndFaithfulDuplicates(t *testing.T) {
	t.Parallel()
	g, err := NewGenerator(1, 20_000, 0.3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if d, u := g.Planned(); d != 14_000 || u != 6_000 {
		t.Fatalf("Planned() = %d distinct, %d duplicates; want 14000, 6000", d, u)
	}
	seq := drain(t, g, 30_000)
	if len(seq) != 20_000 {
		t.Fatalf("got %d events, want 20000", len(seq))
	}
	originals := map[uts.Key][]byte{}
	topics := map[string]bool{}
	duplicates := 0
	for i, ge := range seq {
		encoded := mustJSON(t, ge.Event)
		first, seen := originals[ge.Event.Key()]
		if !ge.Duplicate {
			if seen {
				t.Fatalf("event %d is marked original but its key %v came earlier", i, ge.Event.Key())
			}
			if ge.Ordinal != len(originals) {
				t.Fatalf("event %d: ordinal %d, want %d", i, ge.Ordinal, len(originals))
			}
			originals[ge.Event.Key()] = encoded
			topics[ge.Event.Topic] = true
			continue
		}
		duplicates++
		if !seen {
			t.Fatalf("duplicate at %d re-sends %v before its original", i, ge.Event.Key())
		}
		if !bytes.Equal(first, encoded) {
			t.Fatalf("duplicate at %d differs from its original:\n%s\n%s", i, first, encoded)
		}
	}
	if len(originals) != 14_000 || duplicates != 6_000 {
		t.Fatalf("got %d distinct and %d duplicates, want 14000 and 6000", len(originals), duplicates)
	}
	if len(topics) != 5 {
		t.Fatalf("events use %d topics, want 5", len(topics))
	}
	if seq[0].Duplicate {
		t.Fatal("the first event is a duplicate")
	}
}

func TestGeneratorRoundsDuplicatesOnceAndKeepsAnOriginal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		total          int
		share          float64
		wantDuplicates int
	}{
		{total: 10, share: 0.25, wantDuplicates: 3}, // 2.5 rounds away from zero
		{total: 3, share: 0.5, wantDuplicates: 2},   // 1.5 rounds to 2
		{total: 1, share: 0.9, wantDuplicates: 0},   // nothing earlier to repeat
		{total: 10, share: 0.99, wantDuplicates: 9}, // the first is always an original
		{total: 7, share: 0, wantDuplicates: 0},
	}
	for _, c := range cases {
		g, err := NewGenerator(42, c.total, c.share, 2)
		if err != nil {
			t.Fatal(err)
		}
		dups := 0
		for _, ge := range drain(t, g, c.total+1) {
			if ge.Duplicate {
				dups++
			}
		}
		if dups != c.wantDuplicates {
			t.Errorf("%d events at %v: %d duplicates, want %d", c.total, c.share, dups, c.wantDuplicates)
		}
	}
}

func TestGeneratorIsDeterministicPerSeed(t *testing.T) {
	t.Parallel()
	encode := func(seed uint64) ([]byte, map[string]bool) {
		g, err := NewGenerator(seed, 2_000, 0.4, 4)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		var all bytes.Buffer
		for _, ge := range drain(t, g, 3_000) {
			all.Write(mustJSON(t, ge))
			ids[ge.Event.EventID] = true
		}
		return all.Bytes(), ids
	}
	a, idsA := encode(7)
	b, _ := encode(7)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed produced different sequences")
	}
	c, idsC := encode(8)
	if bytes.Equal(a, c) {
		t.Fatal("different seeds produced the same sequence")
	}
	for id := range idsA {
		if idsC[id] {
			t.Fatalf("event ID %q occurs under seeds 7 and 8", id)
		}
	}
}

func TestGeneratorEndlessRepeatsOnlyEarlierEvents(t *testing.T) {
	t.Parallel()
	g, err := NewGenerator(3, 0, 0.5, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uts.Key]bool{}
	dups := 0
	for i := range 1_000 {
		ge, ok := g.Next()
		if !ok {
			t.Fatalf("an endless generator ended after %d events", i)
		}
		if ge.Duplicate {
			dups++
			if !seen[ge.Event.Key()] {
				t.Fatalf("duplicate at %d precedes its original", i)
			}
		}
		seen[ge.Event.Key()] = true
	}
	if dups == 0 || dups == 1_000 {
		t.Fatalf("%d of 1000 events are duplicates at share 0.5", dups)
	}
}

func TestGeneratorEventsAreValidJSONObjects(t *testing.T) {
	t.Parallel()
	g, err := NewGenerator(9, 0, 0, 8)
	if err != nil {
		t.Fatal(err)
	}
	for ordinal := range 50 {
		e := g.Event(ordinal)
		var payload map[string]any
		if err := json.Unmarshal(e.Payload, &payload); err != nil || len(payload) == 0 {
			t.Fatalf("event %d: payload %s is not a non-empty object (%v)", ordinal, e.Payload, err)
		}
		if e.Topic == "" || e.EventID == "" || e.Source == "" || e.Timestamp.IsZero() {
			t.Fatalf("event %d has an empty field: %+v", ordinal, e)
		}
	}
}

func TestNewGeneratorRejectsBadSettings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		total  int
		share  float64
		topics int
	}{{-1, 0, 1}, {10, 1, 1}, {10, -0.1, 1}, {10, 0.1, 0}} {
		if _, err := NewGenerator(1, c.total, c.share, c.topics); err == nil {
			t.Errorf("NewGenerator(1, %d, %v, %d) accepted bad settings", c.total, c.share, c.topics)
		}
	}
}
