package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/sqlite"
)

// replica is one aggregator as a benchmark sees it: the handler over a store, with its own
// in-process broker and consumer.
type replica struct{ server *httptest.Server }

func startReplica(b *testing.B, store uts.Store) replica {
	b.Helper()
	logger := slog.New(slog.DiscardHandler)
	broker := inproc.New(inproc.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() { consumed <- broker.Consume(ctx, consumer.New(store, logger).Commit) }()
	server := httptest.NewServer(NewHandler(Config{Store: store, Broker: broker, Logger: logger}))
	b.Cleanup(func() {
		server.Close()
		cancel()
		<-consumed
	})
	return replica{server: server}
}

// BenchmarkCommitToWaitingReader measures how soon a reader long-polling GET
// /events?wait=30s over HTTP has an event that was just published: one event at a time, the
// reader waiting before each publish. "publish→answer" runs from just before the POST
// /publish to the reader's answer; "ack→answer" from the publish's 200 (after its commit)
// to that answer, 0 when the reader had it first. On PostgreSQL, "replicas" publishes to one
// aggregator and reads from another on the same schema: the wake-up crosses through
// LISTEN/NOTIFY.
//
//	go test ./http -run '^$' -bench CommitToWaitingReader -benchtime 300x
func BenchmarkCommitToWaitingReader(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "uts.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		r := startReplica(b, store)
		benchCommitToReader(b, r, r)
	})
	openPostgres := func(b *testing.B, u string) uts.Store {
		store, err := postgres.Open(context.Background(), u)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		return store
	}
	b.Run("postgres", func(b *testing.B) {
		r := startReplica(b, openPostgres(b, testenv.PostgresSchema(b)))
		benchCommitToReader(b, r, r)
	})
	b.Run("postgres-replicas", func(b *testing.B) {
		u := testenv.PostgresSchema(b)
		benchCommitToReader(b, startReplica(b, openPostgres(b, u)), startReplica(b, openPostgres(b, u)))
	})
}

func benchCommitToReader(b *testing.B, publishTo, readFrom replica) {
	client := &http.Client{Timeout: time.Minute}
	// get runs in the reader's goroutine: it reports errors, and the loop stops at them.
	get := func(path string) (link string, n int, err error) {
		resp, err := client.Get(readFrom.server.URL + path)
		if err != nil {
			return "", 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return "", 0, fmt.Errorf("GET %s: %d %s %v", path, resp.StatusCode, body, err)
		}
		m := nextLink.FindStringSubmatch(resp.Header.Get("Link"))
		if m == nil {
			return "", 0, fmt.Errorf("GET %s: no Link", path)
		}
		return m[1], bytes.Count(body, []byte(`"event_id"`)), nil
	}
	publish := func(i int) {
		body := fmt.Appendf(nil, `{"topic":"bench","event_id":"%d","timestamp":"2026-11-25T10:00:00Z","source":"bench","payload":{}}`, i)
		resp, err := client.Post(publishTo.server.URL+"/publish", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("publish: %d", resp.StatusCode)
		}
	}
	type answer struct {
		at  time.Time
		err error
	}
	answers := make(chan answer)
	next := "/events?topic=bench&wait=30s"
	reader := func(path string) {
		link, n, err := get(path)
		if err == nil && n != 1 {
			err = fmt.Errorf("the reader got %d events, want 1", n)
		}
		next = link
		answers <- answer{at: time.Now(), err: err}
	}
	publishToAnswer := make([]time.Duration, 0, b.N)
	ackToAnswer := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		go reader(next)
		time.Sleep(5 * time.Millisecond) // the reader's request is waiting by now, as a follower's is
		start := time.Now()
		publish(i)
		acked := time.Now()
		a := <-answers
		if a.err != nil {
			b.Fatal(a.err)
		}
		publishToAnswer = append(publishToAnswer, a.at.Sub(start))
		ackToAnswer = append(ackToAnswer, max(0, a.at.Sub(acked)))
	}
	b.StopTimer()
	reportPercentiles(b, "publish→answer", publishToAnswer)
	reportPercentiles(b, "ack→answer", ackToAnswer)
}

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
	b.ReportMetric(at(1), name+"-max-ms")
}
