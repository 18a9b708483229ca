// Package metrics exposes the aggregator's Prometheus metrics: events by outcome, HTTP
// requests by route, commit batch sizes and latencies, and the broker's backlog. It is the
// only package besides cmd that knows Prometheus; everything else reports through plain Go
// hooks (consumer.Observer, the broker, the dead-letter func, an http.Handler).
//
// Every label takes values from a fixed set (outcomes, route patterns, status codes), never
// from input such as a topic or a path, so a busy or hostile client cannot grow the number
// of series. The one exception, a subscription's name, is bounded by the store
// (uts.MaxSubscriptions).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Values of the outcome label of uts_events_total. They partition what happened to the
// events received: once nothing is in flight, received = unique + duplicate + conflict +
// dead_lettered. (The /stats duplicate_dropped counts duplicate + conflict.)
const (
	OutcomeReceived     = "received"
	OutcomeUnique       = "unique"
	OutcomeDuplicate    = "duplicate" // same key, same content: a retry
	OutcomeConflict     = "conflict"  // same key, other content: a producer bug
	OutcomeDeadLettered = "dead_lettered"
)

// Outcomes are every value the outcome label takes.
var Outcomes = []string{OutcomeReceived, OutcomeUnique, OutcomeDuplicate, OutcomeConflict, OutcomeDeadLettered}

// Metrics holds the aggregator's metrics on a registry of its own, so that tests and
// several aggregators in one process never share or collide on series.
type Metrics struct {
	registry *prometheus.Registry

	events          *prometheus.CounterVec
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	batchEvents     prometheus.Histogram
	commitDuration  prometheus.Histogram
}

// New registers the metrics on a new registry, with the Go runtime's and the process's
// (memory, CPU, open files) beside them.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uts_events_total",
			Help: "Events by outcome: received by the broker, then stored as unique, dropped as duplicate or conflict, or dead-lettered.",
		}, []string{"outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uts_http_requests_total",
			Help: "HTTP requests by route pattern (\"unmatched\" for no route) and status code.",
		}, []string{"route", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "uts_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern; a publish includes its commit with the in-process broker.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "uts_commit_batch_events",
			Help:    "Events per committed batch (one store transaction).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 … 65536
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "uts_commit_duration_seconds",
			Help:    "Time to commit one batch to the store.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	m.registry.MustRegister(m.events, m.requests, m.requestDuration, m.batchEvents, m.commitDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every outcome is exported from the start, at zero, so that a rate() over a fresh
	// process sees the first conflict as an increase rather than as a new series.
	for _, o := range Outcomes {
		m.events.WithLabelValues(o)
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition format, for http.Config.Metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
