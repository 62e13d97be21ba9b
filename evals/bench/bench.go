package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	mcpserver "github.com/mark3labs/mcp-go/server"
)

// Config is a whole benchmark run: the load of both servers, the decision
// and tools/list.
type Config struct {
	LoadConfig
	// Decider makes the gate's decisions on the full server's parts.
	Decider Decider
	// MCP is the full server's mcp-go server, for tools/list in process,
	// as the caller of Gate.Key.
	MCP *mcpserver.MCPServer
	// Ops is how long each single operation (decision, tools/list) is
	// measured; Duration when zero.
	Ops time.Duration
}

// Report is the outcome of Run. Its JSON is what "eval bench --json"
// prints.
type Report struct {
	Tool       string    `json:"tool"`
	Model      string    `json:"model"`
	Transport  string    `json:"transport"`
	DurationS  float64   `json:"duration_s"`
	RoundMS    float64   `json:"round_ms"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	CPUs       int       `json:"cpus"`
	GoVersion  string    `json:"go_version"`
	Load       []Point   `json:"load"`
	Decisions  []Latency `json:"decisions"`
	ToolsList  Latency   `json:"tools_list"`
	// ToolsListed is how many tools tools/list showed the caller.
	ToolsListed int `json:"tools_listed"`
}

// Run measures the load points, then each decision and tools/list.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.MCP == nil || cfg.Decider.Auth == nil || cfg.Decider.RBAC == nil || cfg.Decider.Policies == nil {
		return Report{}, errors.New("bench: the full server's MCP server, authenticator, RBAC and policies are required")
	}
	ops := cfg.Ops
	if ops <= 0 {
		ops = cfg.Duration
	}
	r := Report{
		Tool: "get_model", Model: cfg.Model, Transport: "streamable HTTP, loopback",
		DurationS: cfg.Duration.Seconds(), RoundMS: float64(cfg.Round) / float64(time.Millisecond),
		GOMAXPROCS: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
	}
	var err error
	if r.Load, err = Load(ctx, cfg.LoadConfig); err != nil {
		return Report{}, err
	}
	for _, d := range []struct {
		name string
		op   func(context.Context) error
	}{
		{"read (get_model)", cfg.Decider.Read},
		{"write (create_audience, 5,000 people)", cfg.Decider.Write},
	} {
		l, err := Measure(ctx, d.name, ops, d.op)
		if err != nil {
			return Report{}, fmt.Errorf("decision: %w", err)
		}
		r.Decisions = append(r.Decisions, l)
	}
	r.ToolsList, err = Measure(ctx, "tools/list", ops, func(ctx context.Context) error {
		var err error
		r.ToolsListed, err = ListTools(ctx, cfg.MCP, cfg.Gate.Key)
		return err
	})
	if err != nil {
		return Report{}, err
	}
	return r, nil
}

// WriteText prints r as tables a person reads.
func WriteText(w io.Writer, r Report) error {
	fmt.Fprintf(w, "%s of %s over %s: full server (gate, durable audit) and bare mcp-go server, interleaved\n",
		r.Tool, r.Model, r.Transport)
	fmt.Fprintf(w, "%gs per side per point in rounds of %gms; GOMAXPROCS %d, %d CPUs, %s\n\n",
		r.DurationS, r.RoundMS, r.GOMAXPROCS, r.CPUs, r.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sessions\tgate calls/s\tp50 ms\tp99 ms\tbare calls/s\tp50 ms\tp99 ms\tratio\t")
	for _, p := range r.Load {
		fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t%.2f\t\n", p.Sessions,
			p.Gate.CallsPerSec, p.Gate.P50MS, p.Gate.P99MS, p.Bare.CallsPerSec, p.Bare.P50MS, p.Bare.P99MS, p.Ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nin process, one at a time (a decision: the key from a warm cache, RBAC, every default policy that applies):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  operation\tp50 µs\tp99 µs\truns")
	for _, l := range append(r.Decisions, r.ToolsList) {
		name := l.Name
		if l.Name == r.ToolsList.Name {
			name = fmt.Sprintf("%s (%d tools, for the benchmark's member)", l.Name, r.ToolsListed)
		}
		fmt.Fprintf(tw, "  %s\t%.1f\t%.1f\t%d\n", name, l.P50US, l.P99US, l.Ops)
	}
	return tw.Flush()
}
