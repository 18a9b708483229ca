package uts

import (
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	const day = 24 * time.Hour
	var events time.Duration
	topics := map[string]time.Duration{}
	if err := ParseRetention("30d, orders=7d,audit=forever", &events, topics); err != nil {
		t.Fatal(err)
	}
	if err := ParseRetention("clicks=36h", &events, topics); err != nil { // a repeated flag adds
		t.Fatal(err)
	}
	r := Retention{Events: events, Topics: topics}
	if got, want := r.String(), "30d,audit=forever,clicks=36h0m0s,orders=7d"; got != want {
		t.Fatalf("parsed %q, want %q", got, want)
	}
	if r.For("orders") != 7*day || r.For("audit") != 0 || r.For("else") != 30*day {
		t.Fatalf("For: %v %v %v", r.For("orders"), r.For("audit"), r.For("else"))
	}
	for _, bad := range []string{"7", "-1d", "0d", "1.5d", "x=", "=7d", "soon", "-3h", "t\x01=1d"} {
		var e time.Duration
		if err := ParseRetention(bad, &e, map[string]time.Duration{}); err == nil || KindOf(err) != KindInvalid {
			t.Errorf("ParseRetention(%q) = %v, want an invalid-input error", bad, err)
		}
	}
}

func TestRetentionValidate(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		r  Retention
		ok bool
	}{
		{Retention{}, true},
		{Retention{Events: day, Fingerprints: day}, true},
		{Retention{Events: day, Topics: map[string]time.Duration{"o": 7 * day}, Fingerprints: 7 * day}, true},
		{Retention{Events: day, Topics: map[string]time.Duration{"o": 7 * day}, Fingerprints: 6 * day}, false},
		{Retention{Events: day, Topics: map[string]time.Duration{"o": 0}, Fingerprints: 6 * day}, false},
		{Retention{Fingerprints: day}, false}, // events kept for ever, their keys not
		{Retention{Events: -day}, false},
	} {
		if err := tc.r.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%s, fingerprints %s) = %v, want ok %v", tc.r, FormatRetention(tc.r.Fingerprints), err, tc.ok)
		}
	}
}

func TestFingerprint(t *testing.T) {
	e := Event{Topic: "ab", EventID: "c", Payload: []byte(`{}`)}
	f := FingerprintOf(e.Key(), e.ContentHash())
	if f != FingerprintOf(Key{"ab", "c"}, e.ContentHash()) {
		t.Fatal("a fingerprint is not a function of the key and content")
	}
	// The topic's length is hashed, so moving the boundary between topic and id changes it.
	if f.Key == KeyFingerprint(Key{"a", "bc"}) {
		t.Fatal(`("ab","c") and ("a","bc") share a fingerprint`)
	}
	other := e
	other.Payload = []byte(`{"x":1}`)
	if f.Content == ContentTag(other.ContentHash()) {
		t.Fatal("other content has the same tag")
	}
	if got := ContentTag("0a0b0c0d" + "ff"); got != 0x0a0b0c0d {
		t.Fatalf("ContentTag = %#x", got)
	}
}
