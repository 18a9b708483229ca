package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nginxDirective is one directive of an nginx configuration: its words, and the blocks it
// sits in ("server", "location ^~ /events").
type nginxDirective struct {
	blocks []string
	words  []string
}

// parseNginxConf reads the directives of an nginx configuration: words split on white space,
// ended by ';', blocks opened by '{' and closed by '}', comments from '#' to the end of the
// line. Quotes group words. That is all the proxy's file uses; it is not nginx's parser.
func parseNginxConf(text string) ([]nginxDirective, error) {
	var (
		out    []nginxDirective
		blocks []string
		words  []string
		word   strings.Builder
		quoted bool
		inWord bool
	)
	endWord := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(text); i++ {
		ch := text[i]
		switch {
		case quoted:
			if ch == '"' {
				quoted = false
				continue
			}
			word.WriteByte(ch)
		case ch == '"':
			quoted, inWord = true, true
		case ch == '#':
			endWord()
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			endWord()
		case ch == ';':
			endWord()
			if len(words) == 0 {
				return nil, fmt.Errorf("an empty directive at byte %d", i)
			}
			out = append(out, nginxDirective{blocks: slices.Clone(blocks), words: words})
			words = nil
		case ch == '{':
			endWord()
			if len(words) == 0 {
				return nil, fmt.Errorf("a block without a name at byte %d", i)
			}
			blocks = append(blocks, strings.Join(words, " "))
			words = nil
		case ch == '}':
			endWord()
			if len(words) > 0 || len(blocks) == 0 {
				return nil, fmt.Errorf("an unexpected } at byte %d", i)
			}
			blocks = blocks[:len(blocks)-1]
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	endWord()
	if quoted || len(words) > 0 || len(blocks) > 0 {
		return nil, fmt.Errorf("the file ends inside a directive or block")
	}
	return out, nil
}

// TestComposeProxy checks the reverse proxy's wiring: the compose file mounts this
// repository's nginx configuration where the official image reads it, and that
// configuration listens on the published port, resolves the service name through Docker's
// DNS at request time (so every replica of --scale is reached, also those added later),
// sends every location to the aggregator's port, and lets the feed's long polls and streams
// through unbuffered and for longer than they may wait.
func TestComposeProxy(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	if img := c.stringAt("services", "proxy", "image"); !strings.HasPrefix(img, "nginx:") {
		t.Fatalf("proxy image %q: want the official nginx image", img)
	}
	var confPath string
	for _, m := range c.listAt("services", "proxy", "volumes") {
		parts := strings.Split(m, ":")
		if len(parts) >= 2 && parts[1] == "/etc/nginx/conf.d/default.conf" {
			confPath = parts[0]
		}
	}
	if !strings.HasPrefix(confPath, "./") {
		t.Fatalf("proxy volumes %v: want a file of this repository mounted on /etc/nginx/conf.d/default.conf",
			c.listAt("services", "proxy", "volumes"))
	}
	text, err := os.ReadFile(filepath.Join("../..", confPath))
	if err != nil {
		t.Fatal(err)
	}
	directives, err := parseNginxConf(string(text))
	if err != nil {
		t.Fatalf("%s: %v", confPath, err)
	}

	_, aggregatorPort, err := net.SplitHostPort(c.environment("aggregator")["UTS_ADDR"])
	if err != nil {
		t.Fatalf("aggregator UTS_ADDR: %v", err)
	}
	_, publishedPort, _ := strings.Cut(c.listAt("services", "proxy", "ports")[0], ":")
	want := "http://aggregator:" + aggregatorPort

	// find returns the words after name of the directive in exactly these blocks, or nil.
	find := func(name string, blocks ...string) []string {
		for _, d := range directives {
			if d.words[0] == name && slices.Equal(d.blocks, blocks) {
				return d.words[1:]
			}
		}
		return nil
	}
	if r := find("resolver"); !slices.Contains(r, "127.0.0.11") {
		t.Errorf("resolver %v: want Docker's embedded DNS, 127.0.0.11, so the name is looked up again as replicas come and go", r)
	}
	if l := find("listen", "server"); !slices.Equal(l, []string{publishedPort}) {
		t.Errorf("listen %v: want the published port %s", l, publishedPort)
	}
	vars := map[string]string{}
	for _, d := range directives {
		if d.words[0] == "set" && len(d.words) == 3 {
			vars[d.words[1]] = d.words[2]
		}
	}
	locations := map[string]bool{}
	for _, d := range directives {
		if d.words[0] != "proxy_pass" {
			continue
		}
		target := d.words[1]
		if !strings.HasPrefix(target, "$") {
			t.Errorf("%v: proxy_pass %s names the host directly, so nginx resolves it once at start and never sees a replica added by a later --scale; go through a variable", d.blocks, target)
		} else if target = vars[target]; target != want {
			t.Errorf("%v: proxy_pass %s is %q, want %q", d.blocks, d.words[1], target, want)
		}
		locations[d.blocks[len(d.blocks)-1]] = true
	}
	if !locations["location /"] {
		t.Errorf("no location / passes to the aggregator: locations %v", locations)
	}

	feed := "location ^~ /events" // the feed, its long polls (wait=), export and stream
	if !locations[feed] {
		t.Fatalf("no %q passes to the aggregator: locations %v", feed, locations)
	}
	if b := find("proxy_buffering", "server", feed); !slices.Equal(b, []string{"off"}) {
		t.Errorf("%s: proxy_buffering %v, want off: a stream must reach the reader as it is written", feed, b)
	}
	read := find("proxy_read_timeout", "server")
	if len(read) != 1 {
		t.Fatalf("no proxy_read_timeout in server")
	}
	if d, err := time.ParseDuration(read[0]); err != nil || d <= 60*time.Second {
		t.Errorf("proxy_read_timeout %v: want more than the 60 s a GET /events?wait= may wait (and nginx's default)", read)
	}
	if v := find("proxy_http_version", "server"); !slices.Equal(v, []string{"1.1"}) {
		t.Errorf("proxy_http_version %v: want 1.1, for chunked streams", v)
	}
	if m := find("client_max_body_size", "server"); !slices.Equal(m, []string{"0"}) {
		t.Errorf("client_max_body_size %v: want 0, so that the aggregator's -max-body-bytes decides (nginx's 1m default refuses big batches)", m)
	}
}

func TestParseNginxConf(t *testing.T) {
	t.Parallel()
	got, err := parseNginxConf("a 1; # comment ; {\nserver { b \"x y\"; location / { c; } }\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "[{[] [a 1]} {[server] [b x y]} {[server location /] [c]}]" {
		t.Errorf("got %s", s)
	}
	for _, bad := range []string{"a", "server { a; ", "}", "a \"b;", "{ a; }"} {
		if _, err := parseNginxConf(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
