package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// yamlValue is a node of the compose file: map[string]yamlValue, []yamlValue or string.
type yamlValue = any

// parseComposeYAML reads the subset of YAML that docker-compose.yml is written in: block
// mappings and sequences indented by spaces, scalars plain or double-quoted, flow sequences
// of double-quoted strings, and whole-line comments. Anything else is an error, so the file
// cannot drift into YAML this reader would misread. It is ours to keep simple; it is not a
// YAML parser.
func parseComposeYAML(text string) (map[string]yamlValue, error) {
	var lines []yamlLine
	for n, raw := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.Contains(raw, "\t") {
			return nil, fmt.Errorf("line %d: a tab", n+1)
		}
		lines = append(lines, yamlLine{n + 1, len(raw) - len(strings.TrimLeft(raw, " ")), trimmed})
	}
	p := &yamlParser{lines: lines}
	v, err := p.block(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(lines) {
		return nil, fmt.Errorf("line %d: unexpected indentation", lines[p.i].number)
	}
	m, ok := v.(map[string]yamlValue)
	if !ok {
		return nil, fmt.Errorf("the document is not a mapping")
	}
	return m, nil
}

type yamlLine struct {
	number, indent int
	text           string
}

type yamlParser struct {
	lines []yamlLine
	i     int
}

// block reads the mapping or sequence whose lines are indented by indent.
func (p *yamlParser) block(indent int) (yamlValue, error) {
	if p.i >= len(p.lines) {
		return nil, nil
	}
	if strings.HasPrefix(p.lines[p.i].text, "- ") {
		var list []yamlValue
		for p.i < len(p.lines) && p.lines[p.i].indent == indent && strings.HasPrefix(p.lines[p.i].text, "- ") {
			item := strings.TrimPrefix(p.lines[p.i].text, "- ")
			v, err := scalar(item)
			if err != nil || strings.Contains(item, ": ") {
				return nil, fmt.Errorf("line %d: only scalar sequence items are supported", p.lines[p.i].number)
			}
			list = append(list, v)
			p.i++
		}
		return list, nil
	}
	m := map[string]yamlValue{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent {
		l := p.lines[p.i]
		key, rest, ok := strings.Cut(l.text, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \"'") || (rest != "" && rest[0] != ' ') {
			return nil, fmt.Errorf("line %d: want key: value", l.number)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("line %d: %s given twice", l.number, key)
		}
		p.i++
		rest = strings.TrimSpace(rest)
		if rest != "" {
			v, err := scalar(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", l.number, err)
			}
			m[key] = v
			continue
		}
		if p.i < len(p.lines) && p.lines[p.i].indent > indent {
			v, err := p.block(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			m[key] = v
			continue
		}
		m[key] = nil // "name:" alone, as a named volume is declared
	}
	return m, nil
}

func scalar(s string) (yamlValue, error) {
	switch {
	case strings.HasPrefix(s, "["):
		var items []string
		if err := json.Unmarshal([]byte(s), &items); err != nil {
			return nil, fmt.Errorf("flow sequence %s: want double-quoted strings: %w", s, err)
		}
		list := make([]yamlValue, len(items))
		for i, it := range items {
			list[i] = it
		}
		return list, nil
	case strings.HasPrefix(s, `"`):
		return strconv.Unquote(s)
	case strings.ContainsAny(s, "#'{&*!|>"):
		return nil, fmt.Errorf("%q: quote it", s)
	}
	return s, nil
}

// compose is docker-compose.yml, read for the tests.
type compose struct {
	t    *testing.T
	root map[string]yamlValue
}

func readCompose(t *testing.T) compose {
	t.Helper()
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseComposeYAML(string(data))
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return compose{t: t, root: root}
}

// at walks the path of keys from the root; nil where there is nothing.
func (c compose) at(path ...string) yamlValue {
	var v yamlValue = c.root
	for _, key := range path {
		m, ok := v.(map[string]yamlValue)
		if !ok {
			return nil
		}
		v = m[key]
	}
	return v
}

func (c compose) mapAt(path ...string) map[string]yamlValue {
	m, _ := c.at(path...).(map[string]yamlValue)
	return m
}

func (c compose) stringAt(path ...string) string {
	s, _ := c.at(path...).(string)
	return s
}

func (c compose) listAt(path ...string) []string {
	items, _ := c.at(path...).([]yamlValue)
	var out []string
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// environment is a service's environment mapping.
func (c compose) environment(service string) map[string]string {
	env := map[string]string{}
	for k, v := range c.mapAt("services", service, "environment") {
		s, ok := v.(string)
		if !ok {
			c.t.Fatalf("services.%s.environment.%s: want a string", service, k)
		}
		env[k] = s
	}
	return env
}

func TestParseComposeYAML(t *testing.T) {
	t.Parallel()
	got, err := parseComposeYAML(`# a comment
a:
  b: "x: y"
  c: [ "1", "2" ]
  d:
    - e
    - "f"
  empty:
top: plain
`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":{"b":"x: y","c":["1","2"],"d":["e","f"],"empty":null},"top":"plain"}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	for _, bad := range []string{"a:\n\tb: c\n", "a: b\na: c\n", "a: 'single'\n", "a: b # trailing comment\n", "a:\n  - k: v\n", "a:\n    b: c\n  d: e\n"} {
		if _, err := parseComposeYAML(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
