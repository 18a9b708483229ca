// Package baseurl reads the aggregator URLs that the publisher and the subscriber are given,
// the same way for both.
package baseurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Parse checks each raw URL is http(s)://host[:port][/path] and returns it without a trailing
// slash, ready to have an API path appended.
func Parse(raw []string) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("no aggregator URL")
	}
	bases := make([]string, len(raw))
	for i, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("aggregator URL %q: %w", r, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("aggregator URL %q: want http(s)://host[:port]", r)
		}
		bases[i] = strings.TrimRight(u.String(), "/")
	}
	return bases, nil
}
