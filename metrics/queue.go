package metrics

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uts-events/uts"
)

// queueTimeout bounds each broker call a scrape makes, so that a slow Redis delays
// /metrics by at most this much instead of hanging the scraper.
const queueTimeout = time.Second

// Backlogger is a broker that can tell its backlog apart, as the Redis broker can: entries
// delivered to a consumer but not yet acknowledged (pending), and entries no consumer has
// read yet (lag).
type Backlogger interface {
	Backlog(ctx context.Context) (pending, lag int64, err error)
}

// watchQueue exports b's depth, and its backlog when b is a Backlogger. Each is read at
// scrape time, so it costs nothing between scrapes. A read that fails exports NaN: the
// series stays, and an alert on it sees "unknown" rather than a stale number.
func (m *Metrics) watchQueue(b uts.Broker) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "uts_queue_depth_events",
		Help: "Events accepted by the broker and not yet committed; NaN when the broker cannot be asked.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
		defer cancel()
		n, err := b.Depth(ctx)
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	}))
	if bl, ok := b.(Backlogger); ok {
		m.registry.MustRegister(&backlogCollector{broker: bl})
	}
}

var (
	pendingDesc = prometheus.NewDesc("uts_redis_pending_entries",
		"Stream entries delivered to a consumer and not yet acknowledged (committed).", nil, nil)
	lagDesc = prometheus.NewDesc("uts_redis_lag_entries",
		"Stream entries no consumer of the group has read yet.", nil, nil)
)

// backlogCollector asks the broker once per scrape for both numbers, rather than once per
// gauge.
type backlogCollector struct{ broker Backlogger }

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- lagDesc
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
	defer cancel()
	pending, lag, err := c.broker.Backlog(ctx)
	p, l := float64(pending), float64(lag)
	if err != nil {
		p, l = math.NaN(), math.NaN()
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, p)
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, l)
}
