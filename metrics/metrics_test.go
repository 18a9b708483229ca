package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	utshttp "github.com/uts-events/uts/http"
	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/metrics"
	"github.com/uts-events/uts/sqlite"
)

var _ consumer.Observer = (*metrics.Metrics)(nil)

const readToken = "reader-secret"

// aggregator is the API wired as cmd/aggregator wires it: SQLite, the in-process broker, the
// consumer reporting to the metrics, and the request instrumentation around the handler.
type aggregator struct {
	url     string
	store   uts.Store
	metrics *metrics.Metrics
}

func newAggregator(t *testing.T) *aggregator {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "uts.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })

	m := metrics.New()
	broker := m.Broker(inproc.New(inproc.Options{Linger: 0}))
	m.WatchSubscriptions(store)
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		consumed <- broker.Consume(ctx, consumer.New(store, nil, consumer.WithObserver(m)).Commit)
	}()
	server := httptest.NewServer(m.Requests(utshttp.NewHandler(utshttp.Config{
		Store: store, Broker: broker, Metrics: m.Handler(), ReadTokens: []string{readToken},
	})))
	t.Cleanup(func() {
		server.Close()
		cancel()
		select {
		case <-consumed:
		case <-time.After(30 * time.Second):
			t.Error("consumer did not stop within 30s")
		}
	})
	return &aggregator{url: server.URL, store: store, metrics: m}
}

type event struct {
	Topic     string          `json:"topic"`
	EventID   string          `json:"event_id"`
	Timestamp string          `json:"timestamp"`
	Source    string          `json:"source"`
	Payload   json.RawMessage `json:"payload"`
}

func newEvents(topic string, n int) []event {
	events := make([]event, n)
	for i := range events {
		events[i] = event{Topic: topic, EventID: fmt.Sprintf("id-%d", i), Timestamp: "2025-01-02T03:04:05Z",
			Source: "metrics-test", Payload: json.RawMessage(`{"n":1}`)}
	}
	return events
}

func (a *aggregator) do(t *testing.T, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, data
}

func (a *aggregator) publish(t *testing.T, events []event) {
	t.Helper()
	body, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	if code, data := a.do(t, "POST", "/publish", "", body); code != http.StatusOK {
		t.Fatalf("POST /publish: %d %s", code, data)
	}
}

// scrape reads /metrics through the real handler and parses the exposition format.
func (a *aggregator) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, data := a.do(t, "GET", "/metrics", readToken, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, data)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, data)
	}
	return families
}

// sample finds the family's sample whose labels are exactly labels ("name=value" pairs).
func sample(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	t.Helper()
	family, ok := families[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range family.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") == strings.Join(labels, ",") {
			return m
		}
	}
	t.Fatalf("no sample %s%v", name, labels)
	return nil
}

func TestScrapeCountsOutcomesRequestsAndCommits(t *testing.T) {
	t.Parallel()
	a := newAggregator(t)
	orders := newEvents("orders", 10)
	a.publish(t, orders)
	conflicts := newEvents("orders", 3)
	for i := range conflicts {
		conflicts[i].Payload = json.RawMessage(`{"n":2}`)
	}
	a.publish(t, append(append([]event{}, orders...), conflicts...)) // 10 retries, 3 conflicts
	if code, _ := a.do(t, "GET", "/stats", readToken, nil); code != http.StatusOK {
		t.Fatalf("GET /stats: %d", code)
	}

	families := a.scrape(t)
	for outcome, want := range map[string]float64{
		metrics.OutcomeReceived: 23, metrics.OutcomeUnique: 10, metrics.OutcomeDuplicate: 10,
		metrics.OutcomeConflict: 3, metrics.OutcomeDeadLettered: 0,
	} {
		if got := sample(t, families, "uts_events_total", "outcome="+outcome).GetCounter().GetValue(); got != want {
			t.Errorf("uts_events_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if got := sample(t, families, "uts_http_requests_total", "code=200", "route=POST /publish").GetCounter().GetValue(); got != 2 {
		t.Errorf(`uts_http_requests_total{route="POST /publish",code="200"} = %v, want 2`, got)
	}
	if got := sample(t, families, "uts_http_requests_total", "code=200", "route=GET /stats").GetCounter().GetValue(); got != 1 {
		t.Errorf(`uts_http_requests_total{route="GET /stats",code="200"} = %v, want 1`, got)
	}
	if got := sample(t, families, "uts_http_request_duration_seconds", "route=POST /publish").GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("request duration of POST /publish observed %d times, want 2", got)
	}

	// The in-process broker may gather both publishes into one batch or keep them apart;
	// either way every event was in exactly one observed batch.
	batches := sample(t, families, "uts_commit_batch_events").GetHistogram()
	if batches.GetSampleCount() < 1 || batches.GetSampleCount() > 2 || batches.GetSampleSum() != 23 {
		t.Errorf("batch histogram: %d batches summing to %v events, want 1 or 2 summing to 23",
			batches.GetSampleCount(), batches.GetSampleSum())
	}
	if got := sample(t, families, "uts_commit_duration_seconds").GetHistogram().GetSampleCount(); got != batches.GetSampleCount() {
		t.Errorf("commit duration observed %d times, want once per batch (%d)", got, batches.GetSampleCount())
	}
	if got := sample(t, families, "uts_queue_depth_events").GetGauge().GetValue(); got != 0 {
		t.Errorf("uts_queue_depth_events = %v after every publish was answered, want 0", got)
	}
}

func TestDeadLettersAreCountedOnceTheStoreHasThem(t *testing.T) {
	t.Parallel()
	a := newAggregator(t)
	deadLetter := a.metrics.DeadLetters(a.store.DeadLetter)
	if err := deadLetter(t.Context(), "", 3); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	a.store.Close() // a closed store refuses: nothing more may be counted
	if err := deadLetter(t.Context(), "", 5); err == nil {
		t.Fatal("DeadLetter on a closed store succeeded")
	}
	families := a.scrape(t)
	if got := sample(t, families, "uts_events_total", "outcome=dead_lettered").GetCounter().GetValue(); got != 3 {
		t.Errorf("uts_events_total{outcome=dead_lettered} = %v, want 3", got)
	}
}

func TestMetricsNeedTheReadToken(t *testing.T) {
	t.Parallel()
	a := newAggregator(t)
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {readToken, http.StatusOK}} {
		code, body := a.do(t, "GET", "/metrics", tc.token, nil)
		if code != tc.want {
			t.Errorf("GET /metrics with token %q: %d, want %d", tc.token, code, tc.want)
		}
		if leaked := bytes.Contains(body, []byte("uts_events_total")); leaked != (tc.want == http.StatusOK) {
			t.Errorf("GET /metrics with token %q: body has metrics = %v", tc.token, leaked)
		}
	}
}

func TestSubscriptionLagIsExported(t *testing.T) {
	t.Parallel()
	a := newAggregator(t)
	a.publish(t, newEvents("orders", 5))
	a.publish(t, newEvents("other", 2))
	ctx := t.Context()
	for _, spec := range []uts.SubscriptionSpec{{Name: "billing", Topics: []string{"orders"}}, {Name: "audit"}} {
		if _, _, err := a.store.CreateSubscription(ctx, spec); err != nil {
			t.Fatalf("CreateSubscription(%+v): %v", spec, err)
		}
	}
	page, err := a.store.Events(ctx, uts.EventQuery{Topics: []string{"orders"}, Limit: 2})
	if err != nil || len(page) != 2 {
		t.Fatalf("Events: %d, %v", len(page), err)
	}
	if _, err := a.store.CommitSubscription(ctx, "billing", page[1].Cursor, false); err != nil {
		t.Fatalf("CommitSubscription: %v", err)
	}
	families := a.scrape(t)
	for name, want := range map[string]float64{"billing": 3, "audit": 7} {
		if got := sample(t, families, "uts_subscription_lag_events", "subscription="+name).GetGauge().GetValue(); got != want {
			t.Errorf("uts_subscription_lag_events{subscription=%q} = %v, want %v", name, got, want)
		}
	}
	// A store that does not answer leaves a gap, not a failed scrape or a stale number.
	a.store.Close()
	if _, ok := a.scrape(t)["uts_subscription_lag_events"]; ok {
		t.Error("uts_subscription_lag_events exported while the store is closed")
	}
}
