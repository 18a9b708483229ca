package publisher

import (
	"fmt"
	"io"
	"strings"
	"time"
)

const progressEvery = 250 * time.Millisecond

// showProgress redraws one status line on w until the returned stop is called; w should
// be a terminal, since the line is redrawn with a carriage return. A nil w shows nothing.
func showProgress(w io.Writer, t *tally, total int, start time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				fmt.Fprint(w, "\r"+progressLine(t, total, time.Since(start)))
			case <-done:
				fmt.Fprint(w, "\r"+progressLine(t, total, time.Since(start))+"\n")
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func progressLine(t *tally, total int, elapsed time.Duration) string {
	sent, failed := t.sent.Load(), t.failed.Load()
	done := sent + failed
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(sent) / s
	}
	var b strings.Builder
	if total > 0 {
		const width = 30
		filled := int(min(done*width/int64(total), width))
		fmt.Fprintf(&b, "[%s%s] %3d%% %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			done*100/int64(total), done, total)
	} else {
		fmt.Fprintf(&b, "%d events", done)
	}
	fmt.Fprintf(&b, "  %.0f ev/s  %s  retries %d  failed %d\x1b[K",
		rate, elapsed.Round(time.Second), t.retries.Load(), failed)
	return b.String()
}
