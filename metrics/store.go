package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uts-events/uts"
)

// storeTimeout bounds the store read a scrape makes for the store's size and what it holds.
const storeTimeout = 2 * time.Second

var (
	storeDiskBytesDesc = prometheus.NewDesc("uts_store_disk_bytes",
		"Space the store takes on disk: SQLite's files, or PostgreSQL's tables and indexes; absent while the store does not answer.",
		nil, nil)
	storedEventsDesc = prometheus.NewDesc("uts_store_events",
		"Events the store holds now: unique events processed minus those expired under retention.",
		nil, nil)
	expiredEventsDesc = prometheus.NewDesc("uts_store_expired_events_total",
		"Events deleted under retention since the store was created; their fingerprints keep deduplicating.",
		nil, nil)
	expiryRunsDesc = "Expiry rounds by result (ok or error); a growing error count means the store keeps growing."
)

// WatchStore exports the store's size on disk and what it holds, read at scrape time: they
// are the store's own figures, the same from every replica.
func (m *Metrics) WatchStore(store uts.Store) {
	m.registry.MustRegister(&storeCollector{store: store})
}

type storeCollector struct{ store uts.Store }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeDiskBytesDesc
	ch <- storedEventsDesc
	ch <- expiredEventsDesc
}

// Collect exports nothing when the store does not answer, as the subscriptions' collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	stats, err := c.store.Stats(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(storeDiskBytesDesc, prometheus.GaugeValue, float64(stats.DiskBytes))
	ch <- prometheus.MustNewConstMetric(storedEventsDesc, prometheus.GaugeValue, float64(stats.Stored))
	ch <- prometheus.MustNewConstMetric(expiredEventsDesc, prometheus.CounterValue, float64(stats.Expired))
}

// ExpiryRuns counts this process's expiry rounds: report is uts.RunExpiry's, and calls next
// after counting.
func (m *Metrics) ExpiryRuns(next func(uts.Expiry, error)) func(uts.Expiry, error) {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "uts_expiry_runs_total",
		Help: expiryRunsDesc,
	}, []string{"result"})
	m.registry.MustRegister(runs)
	ok, failed := runs.WithLabelValues("ok"), runs.WithLabelValues("error")
	return func(e uts.Expiry, err error) {
		if err != nil {
			failed.Inc()
		} else {
			ok.Inc()
		}
		next(e, err)
	}
}
