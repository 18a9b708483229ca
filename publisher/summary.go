package publisher

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Summary is what a run did. Counts of events come from the answers: an event counts as
// sent once a request carrying it was answered 2xx.
type Summary struct {
	Seed   uint64 `json:"seed,omitempty"` // 0 when replaying a file
	Source string `json:"source"`         // "generator" or the file replayed
	URLs   int    `json:"urls"`

	Generated    int `json:"generated"`     // events handed to the senders
	Sent         int `json:"sent"`          // events delivered (2xx)
	Distinct     int `json:"distinct"`      // distinct (topic, event_id) among those delivered
	Duplicates   int `json:"duplicates"`    // Sent - Distinct
	FailedEvents int `json:"failed_events"` // events in requests that were given up on

	Requests  int `json:"requests"` // HTTP requests, retries included
	Retries   int `json:"retries"`
	Failures  int `json:"failures"`  // requests given up on
	Committed int `json:"committed"` // requests answered 200 (stored before the answer)
	Queued    int `json:"queued"`    // requests answered 202 (to be stored by a consumer)
	// ServerUnique and ServerDuplicates add up what the 200 answers reported.
	ServerUnique     int `json:"server_unique"`
	ServerDuplicates int `json:"server_duplicates"`

	Elapsed         time.Duration `json:"-"`
	ElapsedSeconds  float64       `json:"elapsed_seconds"`
	EventsPerSecond float64       `json:"events_per_second"`
	Latency         Latency       `json:"latency"`

	Interrupted bool          `json:"interrupted,omitempty"`
	GaveUp      bool          `json:"gave_up,omitempty"` // requests failed for Config.GiveUpAfter
	Errors      []string      `json:"errors,omitempty"`  // the first few failures
	Verify      *Verification `json:"verify,omitempty"`
}

// Latency summarises request round trips, exact from every recorded one.
type Latency struct {
	P50 time.Duration `json:"-"`
	P95 time.Duration `json:"-"`
	P99 time.Duration `json:"-"`
	Max time.Duration `json:"-"`

	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func latencyOf(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	// Nearest rank: the smallest sample with at least q of all samples at or below it.
	rank := func(q float64) time.Duration {
		i := int(float64(len(sorted))*q+0.999999999) - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	l := Latency{P50: rank(0.50), P95: rank(0.95), P99: rank(0.99), Max: sorted[len(sorted)-1]}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	l.P50Ms, l.P95Ms, l.P99Ms, l.MaxMs = ms(l.P50), ms(l.P95), ms(l.P99), ms(l.Max)
	return l
}

// WriteText writes the summary for a person.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	status := "done"
	if s.Interrupted {
		status = "interrupted"
	}
	if s.GaveUp {
		status = "gave up"
	}
	fmt.Fprintf(&b, "publisher %s: %d events in %s (%.0f events/s)", status, s.Sent, s.Elapsed.Round(time.Millisecond), s.EventsPerSecond)
	if s.Seed != 0 {
		fmt.Fprintf(&b, ", seed %d", s.Seed)
	} else {
		fmt.Fprintf(&b, ", from %s", s.Source)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  generated   %d\n", s.Generated)
	fmt.Fprintf(&b, "  sent        %d (%d distinct, %d duplicates)\n", s.Sent, s.Distinct, s.Duplicates)
	fmt.Fprintf(&b, "  requests    %d to %d URL(s): %d retries, %d failed (%d events)\n", s.Requests, s.URLs, s.Retries, s.Failures, s.FailedEvents)
	fmt.Fprintf(&b, "  answers     %d committed (200), %d queued (202)", s.Committed, s.Queued)
	if s.Committed > 0 {
		fmt.Fprintf(&b, "; stored %d new, dropped %d duplicates", s.ServerUnique, s.ServerDuplicates)
	}
	b.WriteString("\n")
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	fmt.Fprintf(&b, "  latency     p50 %s  p95 %s  p99 %s  max %s\n", r(s.Latency.P50), r(s.Latency.P95), r(s.Latency.P99), r(s.Latency.Max))
	for _, e := range s.Errors {
		fmt.Fprintf(&b, "  error       %s\n", e)
	}
	if v := s.Verify; v != nil {
		verdict := "ok"
		if !v.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(&b, "  verify      %s: received +%d (want +%d), unique_processed +%d (want %s)\n",
			verdict, v.Got.Received, v.Want.Received, v.Got.UniqueProcessed, v.wantUnique())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
