package publisher

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/uts-events/uts"
)

// item is one event on its way out, already encoded.
type item struct {
	raw []byte
	key uts.Key
	// ordinal is the generator's distinct-event number, or -1 for replayed events, whose
	// distinctness must be judged by key.
	ordinal int
}

// source yields the events of a run; ok is false at its end.
type source interface {
	next() (it item, ok bool, err error)
	Close() error
}

type generatorSource struct{ g *Generator }

func (s generatorSource) next() (item, bool, error) {
	ge, ok := s.g.Next()
	if !ok {
		return item{}, false, nil
	}
	raw := ge.Event.AppendJSON(make([]byte, 0, 256))
	return item{raw: raw, key: ge.Event.Key(), ordinal: ge.Ordinal}, true, nil
}

func (generatorSource) Close() error { return nil }

// fileSource replays events as they are written, without validating them, so that a file
// of bad events can exercise the aggregator's validation too.
type fileSource struct {
	f       *os.File
	dec     *json.Decoder
	inArray bool
	limit   int // 0 for the whole file
	read    int
}

func openFile(path string, limit int) (*fileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open events file: %w", err)
	}
	br := bufio.NewReader(f)
	s := &fileSource{f: f, dec: json.NewDecoder(br), limit: limit}
	first, err := peekNonSpace(br)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("read events file: %w", err)
	}
	if first == '[' {
		if _, err := s.dec.Token(); err != nil {
			f.Close()
			return nil, fmt.Errorf("read events file: %w", err)
		}
		s.inArray = true
	}
	return s, nil
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			return b, br.UnreadByte()
		}
	}
}

func (s *fileSource) next() (item, bool, error) {
	if s.limit > 0 && s.read >= s.limit {
		return item{}, false, nil
	}
	if s.inArray && !s.dec.More() {
		return item{}, false, nil
	}
	var raw json.RawMessage
	if err := s.dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) && !s.inArray {
			return item{}, false, nil
		}
		return item{}, false, fmt.Errorf("events file, event %d: %w", s.read+1, err)
	}
	s.read++
	var key struct {
		Topic   string `json:"topic"`
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(raw, &key) // an event without a usable key is still sent as written
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return item{}, false, fmt.Errorf("events file, event %d: %w", s.read, err)
	}
	return item{raw: compact.Bytes(), key: uts.Key{Topic: key.Topic, EventID: key.EventID}, ordinal: -1}, true, nil
}

func (s *fileSource) Close() error { return s.f.Close() }

// body encodes a request: a bare object when sending one by one, otherwise an array.
func body(items []item, single bool) []byte {
	if single && len(items) == 1 {
		return items[0].raw
	}
	size := 2 + len(items)
	for _, it := range items {
		size += len(it.raw)
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.raw...)
	}
	return append(b, ']')
}
