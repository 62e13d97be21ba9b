package activation_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// discard is a destination that takes everything.
type discard struct{ records int }

func (d *discard) Send(_ context.Context, b store.SyncBatch) (store.BatchResult, error) {
	d.records += len(b.Records)
	return store.BatchResult{}, nil
}

func (d *discard) Close() error { return nil }

// BenchmarkFirstRun pushes a whole audience (every customer of a demo of
// SIGNALSMITH_BENCH_SCALE customers, default 20,000) through a first run
// to a discarding destination, and reports members per second. The
// issue's target is 250,000 members/s at 1,000,000 members.
func BenchmarkFirstRun(b *testing.B) {
	scale := 20000
	if s := os.Getenv("SIGNALSMITH_BENCH_SCALE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SIGNALSMITH_BENCH_SCALE=%q: want a positive number", s)
		}
		scale = n
	}
	var members int
	for b.Loop() {
		b.StopTimer()
		e := setup(b, envOptions{scale: scale, batchSize: 1000,
			conditions: []any{map[string]any{"column": "customer_id", "operator": "greater_than", "value": 0}}})
		d := &discard{}
		eng := e.engine(b, d, nil)
		b.StartTimer()
		run, err := e.run(b, eng)
		if err != nil {
			b.Fatal(err)
		}
		if run.Added != int64(scale) || d.records != scale {
			b.Fatalf("run added %d, sent %d; want %d", run.Added, d.records, scale)
		}
		members += scale
	}
	b.ReportMetric(float64(members)/b.Elapsed().Seconds(), "members/s")
}
