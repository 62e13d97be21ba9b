package activation

import (
	"testing"
	"time"
)

// FuzzParseSchedule feeds schedules to the parser: it never panics, its
// errors are its own fixed sentences (so they repeat nothing of the
// input), and an accepted schedule's next run is after the time asked (or
// never, for no schedule).
func FuzzParseSchedule(f *testing.F) {
	for _, seed := range []string{"", "1h", "15m", "30s", "0 3 * * *", "*/5 * * * *", "@daily", "0 3 * *", "61 * * * *", "1h2m", "-1h", "9999999h"} {
		f.Add(seed)
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		sched, err := ParseSchedule(s)
		if err != nil {
			// The same error for any other input of its kind: nothing of s.
			fixed := []string{"30s", "x", "a b c d e"}
			same := false
			for _, other := range fixed {
				if _, oerr := ParseSchedule(other); oerr != nil && oerr.Error() == err.Error() {
					same = true
				}
			}
			if !same {
				t.Errorf("error %q is not one of the fixed ones", err)
			}
			return
		}
		if next := sched.Next(now); !next.IsZero() && !next.After(now) {
			t.Errorf("schedule %q runs next at %v, not after %v", s, next, now)
		}
	})
}
