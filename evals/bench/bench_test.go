package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// models is an in-memory model source for the bare servers of these tests.
type models map[string]store.Model

func (ms models) GetModel(_ context.Context, _, ref string) (store.Model, error) {
	m, ok := ms[ref]
	if !ok {
		return store.Model{}, store.ErrNotFound
	}
	return m, nil
}

// bareTarget serves a bare server over ms on loopback for the test.
func bareTarget(t *testing.T, ms models) Target {
	t.Helper()
	url, stop, err := Listen(BareHandler(NewBare(ms, "ws")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return Target{URL: url}
}

func TestPercentiles(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i
	}
	for _, tc := range []struct {
		name     string
		lat      []time.Duration
		p50, p99 time.Duration
	}{
		{"none", nil, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond},
		{"unsorted", ms(3, 1, 2, 4), 2 * time.Millisecond, 4 * time.Millisecond},
		{"hundred", ms(hundred...), 50 * time.Millisecond, 99 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p50, p99 := percentiles(tc.lat)
			if p50 != tc.p50 || p99 != tc.p99 {
				t.Errorf("p50, p99 = %v, %v; want %v, %v", p50, p99, tc.p50, tc.p99)
			}
		})
	}
}

// TestLoad drives two bare servers: each point measures both sides for at
// least the duration, and the ratio compares their rates.
func TestLoad(t *testing.T) {
	t.Parallel()
	ms := models{"customers": {ID: "mdl_1", Name: "customers", PrimaryKey: "id"}}
	a, b := bareTarget(t, ms), bareTarget(t, ms)
	points, err := Load(context.Background(), LoadConfig{
		Gate: a, Bare: b, Model: "customers", Sessions: []int{1, 3},
		Duration: 120 * time.Millisecond, Round: 40 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 2 || points[0].Sessions != 1 || points[1].Sessions != 3 {
		t.Fatalf("points %+v", points)
	}
	for _, p := range points {
		for _, s := range []Side{p.Gate, p.Bare} {
			if s.Calls < 1 || s.Seconds < 0.12 || s.P50MS > s.P99MS {
				t.Errorf("%d sessions: side %+v", p.Sessions, s)
			}
		}
		if p.Ratio != p.Gate.CallsPerSec/p.Bare.CallsPerSec {
			t.Errorf("ratio %v of %+v", p.Ratio, p)
		}
	}
	var out bytes.Buffer
	if err := WriteText(&out, Report{Tool: "get_model", Model: "customers", Load: points}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(out.String(), "\n"); !strings.Contains(out.String(), "gate calls/s") || len(lines) < 6 {
		t.Errorf("text report:\n%s", out.String())
	}
}

// TestLoadRefuses: a configuration that cannot measure anything, and a
// server whose calls fail, are errors, never an empty or flattering report.
func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	ok := bareTarget(t, models{"customers": {ID: "mdl_1", Name: "customers"}})
	empty := bareTarget(t, models{})
	cfg := LoadConfig{Gate: ok, Bare: ok, Model: "customers", Sessions: []int{1}, Duration: 20 * time.Millisecond, Round: 10 * time.Millisecond}
	for _, tc := range []struct {
		name   string
		change func(*LoadConfig)
		want   string
	}{
		{"no sessions", func(c *LoadConfig) { c.Sessions = []int{0} }, "at least one"},
		{"no duration", func(c *LoadConfig) { c.Duration = 0 }, "positive"},
		{"no round", func(c *LoadConfig) { c.Round = 0 }, "positive"},
		{"bare side fails", func(c *LoadConfig) { c.Bare = empty }, "bare server"},
		{"gate side unreachable", func(c *LoadConfig) { c.Gate.URL = "http://127.0.0.1:1/mcp" }, "gate server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cfg
			tc.change(&c)
			if _, err := Load(context.Background(), c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
