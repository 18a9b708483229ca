package http_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/uts-events/uts"
	utshttp "github.com/uts-events/uts/http"
	"github.com/uts-events/uts/metrics"
)

// committingBroker commits every batch at once as new events: the benchmark measures the
// HTTP layer's own work per request, not a store's.
type committingBroker struct{ uts.Broker }

func (committingBroker) Publish(_ context.Context, events []uts.Event) (uts.Receipt, error) {
	outcomes := make([]uts.Outcome, len(events))
	for i := range outcomes {
		outcomes[i] = uts.OutcomeNew
	}
	return uts.Receipt{Committed: true, Outcomes: outcomes}, nil
}

// discardWriter is the cheapest ResponseWriter: the benchmark counts the handler's
// allocations, not a recorder's.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkPublishOneEvent is one POST /publish of a single event through everything the
// aggregator wraps around the handler (metrics, log, recover, routing, parameters), with a
// broker that commits at once: the per-request CPU of issue #11 that is the API's own.
func BenchmarkPublishOneEvent(b *testing.B) {
	meters := metrics.New()
	handler := meters.Requests(utshttp.NewHandler(utshttp.Config{Broker: meters.Broker(committingBroker{})}))
	body := []byte(`{"topic":"orders","event_id":"3f1c0d6e-5a7b-4c1e-9d2f-8b6a4e0c1a27","timestamp":"2026-11-30T12:00:00Z","source":"checkout-service-1","payload":{"amount_cents":4599,"currency":"EUR","customer_id":"cus-01234","items":3,"order_id":"ord-0badc0de"}}`)
	w := &discardWriter{}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest(http.MethodPost, "/publish", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w.header = http.Header{}
		handler.ServeHTTP(w, r)
	}
}
