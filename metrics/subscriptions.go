package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uts-events/uts"
)

// subscriptionsTimeout bounds the store read a scrape makes for the subscriptions' lags: a
// slow store delays /metrics by at most this much instead of hanging the scraper.
const subscriptionsTimeout = 2 * time.Second

var subscriptionLagDesc = prometheus.NewDesc("uts_subscription_lag_events",
	"Stored events of a subscription's topics past its committed cursor; absent while the store does not answer.",
	[]string{"subscription"}, nil)

// WatchSubscriptions exports each subscription's lag, read from the store at scrape time.
// The subscription label takes a subscription's name: input, but the store holds at most
// uts.MaxSubscriptions of them, so the series stay bounded.
func (m *Metrics) WatchSubscriptions(subs uts.Subscriptions) {
	m.registry.MustRegister(&subscriptionCollector{subs: subs})
}

// subscriptionCollector lists the subscriptions once per scrape, with their lags.
type subscriptionCollector struct{ subs uts.Subscriptions }

func (c *subscriptionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- subscriptionLagDesc }

// Collect exports nothing when the list fails: a stale or invented number would be worse
// than a gap, and an alert on absent() sees it.
func (c *subscriptionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), subscriptionsTimeout)
	defer cancel()
	subs, err := c.subs.ListSubscriptions(ctx)
	if err != nil {
		return
	}
	for _, sub := range subs {
		ch <- prometheus.MustNewConstMetric(subscriptionLagDesc, prometheus.GaugeValue, float64(sub.Lag), sub.Name)
	}
}
