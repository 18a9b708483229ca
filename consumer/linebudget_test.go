package consumer

import (
	"testing"
	"time"
)

func TestLineBudgetCapsEachWindowAndReportsWhatItSuppressed(t *testing.T) {
	t.Parallel()
	budget := newLineBudget(100, time.Second)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	steps := []struct {
		at                        time.Duration
		want                      int
		wantGranted, wantSuppress int
	}{
		{0, 60, 60, 0},
		{100 * time.Millisecond, 60, 40, 0}, // 20 over the budget
		{200 * time.Millisecond, 30, 0, 0},  // 30 more over
		{900 * time.Millisecond, 0, 0, 0},   // same window: nothing to report yet
		{1100 * time.Millisecond, 5, 5, 50}, // a new window reports the 50
		{1200 * time.Millisecond, 0, 0, 0},  // and only once
		{5 * time.Second, 0, 0, 0},
	}
	for i, s := range steps {
		granted, suppressed := budget.take(t0.Add(s.at), s.want)
		if granted != s.wantGranted || suppressed != s.wantSuppress {
			t.Errorf("step %d: take(%v, %d) = %d, %d; want %d, %d",
				i, s.at, s.want, granted, suppressed, s.wantGranted, s.wantSuppress)
		}
	}
}
