package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff: Min before the first retry, doubled
// per attempt up to Max.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before retry n (1, 2, ...): Min doubled n-1 times,
// at most Max, with jitter in its upper half so that many retriers that
// failed together do not retry in step. A Max below Min caps at Max.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// Sleep waits for d or until ctx ends, and reports whether d passed (false
// when ctx ended first, or had already ended).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
