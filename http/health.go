package http

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/uts-events/uts"
)

// readyTimeout bounds a readiness check, so a hung backend reads as not ready rather than
// as a hung probe.
const readyTimeout = 2 * time.Second

type healthAnswer struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// handleLive answers while the process can serve at all; it checks nothing else, so that an
// orchestrator does not restart a process whose database is merely down.
func handleLive() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, healthAnswer{Status: "ok"})
	}
}

// handleReady answers 200 when a publish would be taken and stored now: the store answers,
// its latest commits did not fail (when commits is set), and the broker takes batches.
func handleReady(store uts.Store, commits func() error, broker uts.Broker) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		err := store.Ping(ctx)
		if err == nil && commits != nil {
			err = commits()
		}
		if err != nil {
			err = fmt.Errorf("store: %w", err)
		} else if err = broker.Ready(ctx); err != nil {
			err = fmt.Errorf("broker: %w", err)
		}
		if err != nil {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, healthAnswer{Status: "unavailable", Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, healthAnswer{Status: "ok"})
	}
}
