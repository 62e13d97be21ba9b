package retry

import (
	"context"
	"testing"
	"time"
)

// TestBackoffDelay holds every wait to its attempt's window: between half
// and all of Min doubled per attempt, never past Max, however many
// attempts failed.
func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	for _, c := range []struct {
		name     string
		b        Backoff
		n        int
		low, top time.Duration
	}{
		{"first retry waits about Min", Backoff{100 * ms, time.Second}, 1, 50 * ms, 100 * ms},
		{"it doubles per attempt", Backoff{100 * ms, time.Second}, 3, 200 * ms, 400 * ms},
		{"it stops at Max", Backoff{100 * ms, time.Second}, 5, 500 * ms, time.Second},
		{"many attempts stay at Max", Backoff{100 * ms, time.Second}, 1 << 20, 500 * ms, time.Second},
		{"Max below Min caps", Backoff{time.Second, 10 * ms}, 1, 5 * ms, 10 * ms},
		{"no Min, no wait", Backoff{0, time.Second}, 4, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 200 {
				d := c.b.Delay(c.n)
				if d < c.low || d > c.top {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", c.n, d, c.low, c.top)
				}
				seen[d] = true
			}
			if c.top > 0 && len(seen) < 2 {
				t.Errorf("Delay(%d) is always %v: no jitter", c.n, c.b.Delay(c.n))
			}
		})
	}
}

// TestSleep shows that a wait ends with its context: a cancelled context
// does not wait at all, and one that ends during the wait cuts it short.
func TestSleep(t *testing.T) {
	t.Parallel()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(done, time.Hour) {
		t.Error("Sleep on a cancelled context reported that the hour passed")
	}
	if Sleep(done, 0) {
		t.Error("Sleep(0) on a cancelled context reported success")
	}
	if !Sleep(context.Background(), time.Millisecond) || !Sleep(context.Background(), 0) {
		t.Error("Sleep on a live context reported that it was cut short")
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if Sleep(short, time.Hour) {
		t.Error("Sleep outlived its context")
	}
}
