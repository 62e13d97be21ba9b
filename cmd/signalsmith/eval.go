package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/evals/bench"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
)

// benchAgent is the member whose key the benchmark's sessions present: an
// agent of role member acting for the demo's owner.
const benchAgent = "bench-agent"

func (m *Main) eval(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "bench" {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	return m.evalBench(ctx, args[1:])
}

// evalBench runs "eval bench": the full server started as serve --demo
// starts it and a bare mcp-go server over the same store, both on loopback,
// under the interleaved load of package bench, then the decision and
// tools/list costs.
func (m *Main) evalBench(ctx context.Context, args []string) error {
	fs := m.newFlags("eval bench")
	sessions := fs.String("sessions", "1,8,32", "numbers of concurrent sessions, one point each")
	duration := fs.Duration("duration", 3*time.Second, "how long each server is measured at each point, and each single operation")
	round := fs.Duration("round", 250*time.Millisecond, "length of one round; rounds of the two servers alternate")
	scale := fs.Int("scale", demo.DefaultScale, "demo customers to generate in a new data directory")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load (both servers run in this process) to this file")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		fmt.Fprintln(m.Stderr, "usage: signalsmith eval bench [--sessions 1,8,32] [--duration 3s] [--round 250ms] [--scale N] [--json] [--cpuprofile FILE]")
		return errUsage
	}
	counts, err := sessionCounts(*sessions)
	if err != nil || *duration <= 0 || *round <= 0 || *scale < 1 {
		fmt.Fprintln(m.Stderr, "--sessions takes positive numbers (1,8,32); --duration, --round and --scale must be positive")
		return errUsage
	}
	dir, keysOut := m.DataDir, m.Stderr
	if !m.dataDirGiven() {
		// A throw-away demo: nothing of the run outlives it, its demo keys
		// included.
		tmp, err := os.MkdirTemp("", "signalsmith-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir, keysOut = tmp, io.Discard
	}
	env, err := startBench(ctx, &Main{Stdin: strings.NewReader(""), Stdout: keysOut, Stderr: m.Stderr, Getenv: m.Getenv, DataDir: dir}, *scale)
	if err != nil {
		return err
	}
	defer env.close()
	cfg := env.config
	cfg.Sessions, cfg.Duration, cfg.Round = counts, *duration, *round
	if *cpuProfile != "" {
		f, err := os.OpenFile(*cpuProfile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("eval bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	report, err := bench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("eval bench: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	return bench.WriteText(m.Stdout, report)
}

// dataDirGiven reports whether --data-dir named a directory on the command
// line: the default (SIGNALSMITH_DATA_DIR, else ./signalsmith-data, as Run
// takes it) is a server's data, which a benchmark leaves alone.
func (m *Main) dataDirGiven() bool {
	def := m.Getenv("SIGNALSMITH_DATA_DIR")
	if def == "" {
		def = "signalsmith-data"
	}
	return m.DataDir != def
}

// sessionCounts parses "1,8,32".
func sessionCounts(s string) ([]int, error) {
	var counts []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("sessions %q", f)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// benchEnv is a benchmark's two servers, listening, and what measures them.
type benchEnv struct {
	config bench.Config
	close  func()
}

// startBench starts the full server of b's data directory as serve --demo
// starts it (b's Stdout gets the demo keys of a first run), gives it an
// agent key of role member for the demo owner, and serves it and a bare
// server over its store on loopback. close stops both, revokes the key and
// closes b.
func startBench(ctx context.Context, b *Main, scale int) (env *benchEnv, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var undo []func()
	closeAll := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	undo = append(undo, func() { _ = b.Close() }, cancel)
	inst, err := b.start(ctx, serveConfig{
		// serve's defaults; the address only names the approval links,
		// the servers listen on free ports (bench.Listen).
		demo: true, addr: "127.0.0.1:8080", scale: scale,
		timeout: 30 * time.Second, maxRows: 10000,
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, inst.stopShipping)
	k, key, err := createKey(ctx, inst.db, inst.ws, store.SourceCLI, store.NewKey{
		WorkspaceID: inst.ws.ID, MemberName: benchAgent, Kind: store.KindAgent, Role: "member", Name: "eval bench",
		OwnerName: "demo-owner",
	}, time.Hour)
	if err != nil {
		return nil, fmt.Errorf("%w (eval bench runs on a demo data directory: leave out --data-dir for a throw-away one)", err)
	}
	undo = append(undo, func() {
		if err := revokeBenchKey(inst, k); err != nil {
			fmt.Fprintf(b.Stderr, "the benchmark's key %s could not be revoked (it expires within the hour): %v\n", k.ID, err)
		}
	})
	// The decision's RBAC is a second one over the same store, as the
	// server's own is not exposed: it loads the same roles and members.
	rbac, err := guardrails.NewRBAC(ctx, inst.db, inst.ws.ID)
	if err != nil {
		return nil, err
	}
	gateURL, stopGate, err := bench.Listen(inst.srv.Handler())
	if err != nil {
		return nil, err
	}
	undo = append(undo, stopGate)
	bareURL, stopBare, err := bench.Listen(bench.BareHandler(bench.NewBare(inst.db, inst.ws.ID)))
	if err != nil {
		return nil, err
	}
	undo = append(undo, stopBare)
	const model = "customers"
	return &benchEnv{
		config: bench.Config{
			LoadConfig: bench.LoadConfig{
				Gate:  bench.Target{URL: gateURL, Key: key},
				Bare:  bench.Target{URL: bareURL},
				Model: model,
			},
			Decider: bench.Decider{
				Auth: inst.srv.Authenticator(), RBAC: rbac, Policies: inst.srv.Policies(), Key: key, Model: model,
			},
			MCP: inst.srv.MCP(),
		},
		close: closeAll,
	}, nil
}

// revokeBenchKey revokes the benchmark's key when the run ends, audited as
// a CLI revocation, so no working key outlives the run. It expires within
// the hour should the run be killed first.
func revokeBenchKey(inst *instance, k store.Key) error {
	ev := operatorEvent(inst.ws, store.SourceCLI, "members.manage", "api_key", "revoked",
		map[string]any{"command": "eval bench", "key": k.ID})
	return audited(context.Background(), inst.db, ev, func(ctx context.Context) error {
		_, err := inst.db.RevokeKey(ctx, inst.ws.ID, k.ID, time.Now().UTC())
		return err
	})
}
