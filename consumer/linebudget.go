package consumer

import (
	"sync"
	"time"
)

// lineBudget lets at most perWindow log lines through per window and counts the rest, so
// that a flood of duplicates (a publisher retrying a large batch, say) cannot drown the log.
type lineBudget struct {
	perWindow int
	window    time.Duration

	mu         sync.Mutex
	start      time.Time
	used       int
	suppressed int
}

func newLineBudget(perWindow int, window time.Duration) *lineBudget {
	return &lineBudget{perWindow: perWindow, window: window}
}

// take asks for want lines at now and grants as many as the window has left; the rest are
// counted as suppressed. Once a new window has begun it also returns how many lines were
// suppressed before, for the caller to report in one summary line (want may be 0 for that).
func (l *lineBudget) take(now time.Time, want int) (granted, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.window {
		l.start, l.used = now, 0
		suppressed, l.suppressed = l.suppressed, 0
	}
	granted = min(want, l.perWindow-l.used)
	l.used += granted
	l.suppressed += want - granted
	return granted, suppressed
}
