package uts

import (
	"encoding/json"
	"strings"
	"testing"
)

var validJSONCases = []string{
	``, ` `, `{}`, ` { } `, `[]`, `[1,2]`, `[1,]`, `[,1]`, `{"a":1}`, `{"a":1,}`, `{"a" : [true, false, null]}`,
	`{a:1}`, `{"a"}`, `{"a":}`, `"x"`, `"\u00e9\n\"\\\/\b\f\r\t"`, `"\u00g0"`, `"\x"`, "\"\x01\"", "\"\xff\"",
	`"unterminated`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-`, `1e`, `-1.5e-7`, `tru`,
	`true`, `nul`, `null `, `falsey`, `1 2`, `{"a":1}{}`, "\t[\r\n]\n", `[1]]`, `{"a":{"b":[{}]}}`,
}

func TestValidJSONIsJSONValid(t *testing.T) {
	for _, c := range validJSONCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", c, got, want)
		}
	}
	for _, depth := range []int{maxNesting, maxNesting + 1} {
		deep := strings.Repeat(`[{"a":`, depth/2) + strings.Repeat(`[`, depth%2) + `1` +
			strings.Repeat(`]`, depth%2) + strings.Repeat(`}]`, depth/2)
		if got, want := validJSON([]byte(deep)), json.Valid([]byte(deep)); got != want {
			t.Errorf("nesting %d: validJSON = %v, json.Valid says %v", depth, got, want)
		}
	}
}

// FuzzValidJSON holds validJSON to json.Valid on any input.
func FuzzValidJSON(f *testing.F) {
	for _, c := range validJSONCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	body := []byte(`[` + strings.Repeat(`{"topic":"orders","event_id":"0000000000000042-0000001234","timestamp":"2026-11-25T10:00:00.123456Z","source":"checkout","payload":{"amount_cents":129900,"currency":"EUR","customer":"c-88213","items":[{"qty":1,"sku":"KB-01"},{"qty":2,"sku":"MS-07"}],"note":"caf\u00e9"}},`, 99) +
		`{"topic":"orders","event_id":"x","timestamp":"2026-11-25T10:00:00Z","source":"s","payload":{}}]`)
	for _, bench := range []struct {
		name  string
		valid func([]byte) bool
	}{{"json.Valid", json.Valid}, {"validJSON", validJSON}} {
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !bench.valid(body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
