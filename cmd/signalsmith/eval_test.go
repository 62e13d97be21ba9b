package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/evals/bench"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// benchScale keeps the tests' demo warehouse small; the benchmarks use the
// demo's default.
const benchScale = "400"

// TestEvalBench runs the benchmark for a moment at one session: the report
// is well formed, both servers served calls, every measured call of the
// gate left its audit event, and no working key is left behind.
func TestEvalBench(t *testing.T) {
	t.Parallel()
	args := []string{"eval", "bench", "--sessions", "1", "--duration", "200ms", "--round", "50ms", "--scale", benchScale}
	for _, tc := range []struct {
		name  string
		json  bool
		check func(t *testing.T, out string) bench.Report
	}{
		{"json", true, func(t *testing.T, out string) bench.Report {
			var r bench.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("eval bench --json printed %q: %v", out, err)
			}
			return r
		}},
		{"text", false, func(t *testing.T, out string) bench.Report {
			for _, want := range []string{"sessions  gate calls/s", "bare calls/s", "ratio", "read (get_model)", "write (create_audience", "tools/list ("} {
				if !strings.Contains(out, want) {
					t.Errorf("eval bench printed no %q:\n%s", want, out)
				}
			}
			return bench.Report{}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a := args
			if tc.json {
				a = append(a[:len(a):len(a)], "--json")
			}
			out, stderr, err := run(t, dir, a...)
			if err != nil {
				t.Fatalf("eval bench: %v\n%s", err, stderr)
			}
			// A new data directory's demo keys are shown once, as serve
			// --demo shows them, but on stderr: the report is stdout.
			if keyRE.MatchString(out) || !strings.Contains(stderr, "Demo keys") {
				t.Errorf("eval bench printed a key in its report, or not the new demo's keys on stderr:\n%s", stderr)
			}
			r := tc.check(t, out)
			if tc.json {
				checkReport(t, r)
				if n := auditedCalls(t, dir); n < r.Load[0].Gate.Calls {
					t.Errorf("%d get_model calls of the benchmark's key audited, want at least the %d measured", n, r.Load[0].Gate.Calls)
				}
			}
			keys, _, err := run(t, dir, "keys", "list", "--json")
			if err != nil {
				t.Fatal(err)
			}
			var ks []store.Key
			if err := json.Unmarshal([]byte(keys), &ks); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, k := range ks {
				if k.MemberName == benchAgent {
					found = true
					if k.RevokedAt == nil {
						t.Errorf("the benchmark's key %s is still active after the run", k.ID)
					}
				}
			}
			if !found {
				t.Error("no key of the benchmark's agent: whose calls were measured?")
			}
		})
	}
}

// checkReport holds what a reader of the report relies on.
func checkReport(t *testing.T, r bench.Report) {
	t.Helper()
	if r.Tool != "get_model" || r.Model != "customers" || r.DurationS != 0.2 || r.GOMAXPROCS < 1 {
		t.Errorf("report header %+v", r)
	}
	if len(r.Load) != 1 || r.Load[0].Sessions != 1 {
		t.Fatalf("load points %+v, want one at 1 session", r.Load)
	}
	p := r.Load[0]
	for name, s := range map[string]bench.Side{"gate": p.Gate, "bare": p.Bare} {
		if s.Calls < 1 || s.CallsPerSec <= 0 || s.P50MS <= 0 || s.P50MS > s.P99MS {
			t.Errorf("%s side %+v: want calls, a rate and p50 <= p99", name, s)
		}
		// Rounds alternate until each side has been measured for the
		// duration; a side measured less would be compared unfairly.
		if s.Seconds < r.DurationS {
			t.Errorf("%s side measured %.3fs, want at least %gs", name, s.Seconds, r.DurationS)
		}
	}
	if want := p.Gate.CallsPerSec / p.Bare.CallsPerSec; p.Ratio != want {
		t.Errorf("ratio %v, want gate/bare %v", p.Ratio, want)
	}
	if len(r.Decisions) != 2 {
		t.Fatalf("decisions %+v, want read and write", r.Decisions)
	}
	for _, l := range append(r.Decisions, r.ToolsList) {
		if l.Ops < 1 || l.P50US <= 0 || l.P50US > l.P99US {
			t.Errorf("%s: %+v", l.Name, l)
		}
	}
	// A member is not shown the tools its role does not permit
	// (search_audit needs audit.read), but sees the read tools.
	if r.ToolsListed < 10 {
		t.Errorf("tools/list showed the member %d tools", r.ToolsListed)
	}
}

// auditedCalls counts the get_model calls of the benchmark's key in the
// audit trail of dir.
func auditedCalls(t *testing.T, dir string) int {
	t.Helper()
	db, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.Audit(context.Background(), store.AuditFilter{Actor: benchAgent, Tool: "get_model", Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestEvalBenchThrowAwayData runs the benchmark without --data-dir: it
// creates its demo elsewhere and leaves the default data directory alone.
func TestEvalBenchThrowAwayData(t *testing.T) {
	t.Parallel()
	def := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string {
		if k == "SIGNALSMITH_DATA_DIR" {
			return def
		}
		return ""
	}}
	err := m.Run(context.Background(), []string{"eval", "bench", "--sessions", "1", "--duration", "100ms", "--scale", benchScale, "--json"})
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("eval bench: %v\n%s", err, stderr.String())
	}
	var r bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || len(r.Load) != 1 {
		t.Fatalf("eval bench --json printed %q: %v", stdout.String(), err)
	}
	if _, err := os.Stat(def); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("eval bench without --data-dir touched the data directory %s: %v", def, err)
	}
	if keyRE.MatchString(stdout.String() + stderr.String()) {
		t.Error("eval bench printed the throw-away demo's keys")
	}
}

func TestEvalBenchUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"eval"},
		{"eval", "guardrails"},
		{"eval", "bench", "--sessions", "0"},
		{"eval", "bench", "--sessions", "1,x"},
		{"eval", "bench", "--sessions", ""},
		{"eval", "bench", "--duration", "0s"},
		{"eval", "bench", "--round", "-1s"},
		{"eval", "bench", "--scale", "0"},
		{"eval", "bench", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if _, _, err := run(t, dir, args...); !errors.Is(err, errUsage) {
				t.Errorf("err = %v, want usage", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("a refused command line created %d files in the data directory", len(entries))
			}
		})
	}
}

// startTestBench starts the benchmark's servers over a fresh demo data
// directory, stopped with the test.
func startTestBench(tb testing.TB, scale int) bench.Config {
	tb.Helper()
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }, DataDir: tb.TempDir()}
	env, err := startBench(context.Background(), m, scale)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(env.close)
	return env.config
}

// TestBareServerAnswersAsTheGate: the two servers the benchmark compares
// give the caller the same answer, so they differ by the gate only.
func TestBareServerAnswersAsTheGate(t *testing.T) {
	t.Parallel()
	cfg := startTestBench(t, 400)
	answer := func(to bench.Target) *mcp.CallToolResult {
		t.Helper()
		cs, err := bench.Dial(context.Background(), to, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer cs[0].Close()
		req := mcp.CallToolRequest{}
		req.Params.Name = "get_model"
		req.Params.Arguments = map[string]any{"model": "customers"}
		res, err := cs[0].CallTool(context.Background(), req)
		if err != nil || res.IsError {
			t.Fatalf("get_model: %v %+v", err, res)
		}
		return res
	}
	gate, bare := answer(cfg.Gate), answer(cfg.Bare)
	g, _ := json.Marshal(gate.StructuredContent)
	b, _ := json.Marshal(bare.StructuredContent)
	if !bytes.Equal(g, b) || !strings.Contains(string(g), `"email"`) {
		t.Errorf("structured answers differ:\ngate %s\nbare %s", g, b)
	}
	gt, _ := json.Marshal(gate.Content)
	bt, _ := json.Marshal(bare.Content)
	if !bytes.Equal(gt, bt) {
		t.Errorf("text answers differ:\ngate %s\nbare %s", gt, bt)
	}
}

// TestEvalBenchFailsClosed: a call the gate refuses or cannot answer stops
// the benchmark with the side named; it is never counted as a fast call.
func TestEvalBenchFailsClosed(t *testing.T) {
	t.Parallel()
	cfg := startTestBench(t, 400)
	cfg.Sessions = []int{1}
	cfg.Duration, cfg.Round = 50*time.Millisecond, 50*time.Millisecond
	for _, tc := range []struct {
		name   string
		change func(*bench.Config)
		want   string
	}{
		{"made-up key", func(c *bench.Config) { c.Gate.Key = "ss_aaaaaaaaaaaa_" + strings.Repeat("a", 52) }, "gate server"},
		{"unknown model", func(c *bench.Config) { c.Model = "no_such_model" }, "get_model answered with an error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cfg
			tc.change(&c)
			r, err := bench.Run(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %+v, %v; want an error with %q", r, err, tc.want)
			}
		})
	}
}

// BenchmarkEval is eval bench as Go benchmarks, over a demo at its default
// scale started as serve --demo starts it:
//
//	go test -run '^$' -bench Eval -benchtime 3s ./cmd/signalsmith/
//
// get_model reports calls/s of b.N calls spread over the sessions of one
// server (not interleaved: eval bench interleaves the two, which is fairer
// on a busy machine); decision and tools_list report the time of one.
func BenchmarkEval(b *testing.B) {
	cfg := startTestBench(b, demo.DefaultScale)
	ctx := context.Background()
	for _, srv := range []struct {
		name string
		to   bench.Target
	}{{"gate", cfg.Gate}, {"bare", cfg.Bare}} {
		for _, n := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("get_model/server=%s/sessions=%d", srv.name, n), func(b *testing.B) {
				cs, err := bench.Dial(ctx, srv.to, n)
				if err != nil {
					b.Fatal(err)
				}
				defer func() {
					for _, c := range cs {
						c.Close()
					}
				}()
				for _, c := range cs {
					if err := bench.Call(ctx, c, cfg.Model); err != nil {
						b.Fatal(err)
					}
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make([]error, n)
				b.ResetTimer()
				for i, c := range cs {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := bench.Call(ctx, c, cfg.Model); err != nil {
								errs[i] = err
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			})
		}
	}
	for _, op := range []struct {
		name string
		op   func(context.Context) error
	}{
		{"decision/read", cfg.Decider.Read},
		{"decision/write", cfg.Decider.Write},
		{"tools_list", func(ctx context.Context) error {
			_, err := bench.ListTools(ctx, cfg.MCP, cfg.Gate.Key)
			return err
		}},
	} {
		b.Run(op.name, func(b *testing.B) {
			if err := op.op(ctx); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := op.op(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
