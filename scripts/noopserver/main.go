// Command noopserver is the ceiling that scripts/bench measures the single-event path
// against: a plain net/http server that reads and decodes each POST /publish body as the
// aggregator does (uts.DecodeBatch) and answers as if every event were new, with no store,
// no queue, no logging and no metrics. It also answers GET /stats with what it was sent, so
// that the publisher's -verify finds its counts. Loopback only; for benchmarks.
//
//	go run ./scripts/noopserver 127.0.0.1:PORT
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/uts-events/uts"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: noopserver 127.0.0.1:PORT")
		os.Exit(2)
	}
	limits := uts.DefaultLimits()
	var received atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limits.MaxBodyBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		events, err := uts.DecodeBatch(body, limits)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		received.Add(int64(len(events)))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"received": len(events), "unique": len(events), "duplicates": 0})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		n := received.Load()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"received": n, "unique_processed": n, "duplicate_dropped": 0})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(os.Args[1], mux))
	os.Exit(1)
}
