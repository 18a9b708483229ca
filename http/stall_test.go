package http

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
)

// TestShutdownEndsReadsOfAStalledStore: a wait and an event stream end at the server's
// shutdown even while their read of the store is stuck behind a lock, as on a stalled
// PostgreSQL with no statement_timeout. They used to hold the shutdown (and the store's
// Close after it) for as long as the lock lasted.
func TestShutdownEndsReadsOfAStalledStore(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	store, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer store.Close()
	shutdown := make(chan struct{})
	server := httptest.NewServer(NewHandler(Config{Store: store, Broker: inproc.New(inproc.Options{}), Shutdown: shutdown}))
	defer server.Close()
	release := testenv.LockTable(t, u, "events", "ACCESS EXCLUSIVE")
	defer release() // before the server's Close, which waits for the requests

	ended := make(chan string, 2)
	for _, path := range []string{"/events?wait=30s", "/events/stream"} {
		go func() {
			resp, err := server.Client().Get(server.URL + path)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			ended <- path
		}()
	}
	time.Sleep(300 * time.Millisecond) // both are reading the locked table by now
	close(shutdown)
	timeout := time.After(5 * time.Second)
	for range 2 {
		select {
		case path := <-ended:
			t.Logf("%s ended at the shutdown", path)
		case <-timeout:
			t.Fatal("a wait or a stream reading a stalled store outlived the shutdown by 5 s")
		}
	}
}
