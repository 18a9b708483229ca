package http

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/uts-events/uts"
)

type statsAnswer struct {
	uts.Counters
	Stored        int64            `json:"stored"`  // events held now
	Expired       int64            `json:"expired"` // events deleted under retention
	Topics        map[string]int64 `json:"topics"`  // unique events per topic
	TopicStats    []uts.TopicStats `json:"topic_stats"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	StartedAt     string           `json:"started_at"`
	QueueDepth    int64            `json:"queue_depth"`
}

func handleStats(store uts.Store, broker uts.Broker, startedAt time.Time, now func() time.Time, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		stats, err := store.Stats(r.Context())
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("read stats: %w", err))
			return
		}
		depth, err := broker.Depth(r.Context())
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("read queue depth: %w", err))
			return
		}
		topics := make(map[string]int64, len(stats.Topics))
		for _, t := range stats.Topics {
			topics[t.Topic] = t.Unique
		}
		topicStats := stats.Topics
		if topicStats == nil {
			topicStats = []uts.TopicStats{} // no topics is [], never null
		}
		writeJSON(w, http.StatusOK, statsAnswer{
			Counters:      stats.Counters,
			Stored:        stats.Stored,
			Expired:       stats.Expired,
			Topics:        topics,
			TopicStats:    topicStats,
			UptimeSeconds: now().Sub(startedAt).Seconds(),
			StartedAt:     startedAt.UTC().Format(time.RFC3339),
			QueueDepth:    depth,
		})
	}
}
