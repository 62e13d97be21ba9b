package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
)

// Latency is what Measure found for one operation.
type Latency struct {
	Name  string  `json:"name"`
	Ops   int     `json:"ops"`
	P50US float64 `json:"p50_us"`
	P99US float64 `json:"p99_us"`
}

// Measure runs op once unmeasured, then back to back for d, timing each
// run. It fails at the first error of op, and when ctx ends.
func Measure(ctx context.Context, name string, d time.Duration, op func(context.Context) error) (Latency, error) {
	if err := op(ctx); err != nil {
		return Latency{}, fmt.Errorf("%s: %w", name, err)
	}
	var lat []time.Duration
	for end := time.Now().Add(d); ; {
		t0 := time.Now()
		if !t0.Before(end) {
			break
		}
		if err := ctx.Err(); err != nil {
			return Latency{}, err
		}
		if err := op(ctx); err != nil {
			return Latency{}, fmt.Errorf("%s: %w", name, err)
		}
		lat = append(lat, time.Since(t0))
	}
	p50, p99 := percentiles(lat)
	return Latency{Name: name, Ops: len(lat), P50US: us(p50), P99US: us(p99)}, nil
}

// Decider makes one decision as the gate makes it for an AI agent's call:
// the key authenticated (Key, verified once, then from Auth's cache), the
// tool's permission checked with RBAC, and the guardrail policies decided
// (DryRun: every policy that applies, rate limits read but not counted, so
// the decision can be repeated).
type Decider struct {
	Auth     *server.Authenticator
	RBAC     *guardrails.RBAC
	Policies *guardrails.Engine
	Key      string
	// Model is the model the read decision names.
	Model string
}

// Read is the decision of get_model, which no default policy matches.
func (d Decider) Read(ctx context.Context) error {
	return d.decide(ctx, "get_model", "models.read", guardrails.Input{
		Resource: "model", Operation: "read", Args: map[string]any{"model": d.Model},
	})
}

// Write is the decision of a create_audience of 5,000 people: the size
// rule's condition and both write-rate limits apply, and all pass.
func (d Decider) Write(ctx context.Context) error {
	return d.decide(ctx, "create_audience", "audiences.create", guardrails.Input{
		Resource: "audience", Operation: "create",
		Args:  map[string]any{"name": "bench_audience", "model": d.Model},
		Facts: map[string]any{"estimated_size": 5000},
	})
}

func (d Decider) decide(ctx context.Context, tool, permission string, in guardrails.Input) error {
	p, err := d.Auth.Authenticate(ctx, d.Key)
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	acc, err := d.RBAC.Authorize(ctx, p, permission)
	if err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	if !acc.Allowed {
		return fmt.Errorf("RBAC denies %s to the benchmark's key", permission)
	}
	in.Principal, in.Source, in.Tool, in.Now = p, store.SourceAI, tool, time.Now()
	dec, err := d.Policies.DryRun(ctx, in)
	if err != nil {
		return fmt.Errorf("guardrails: %w", err)
	}
	if dec.Effect != guardrails.EffectAllow {
		return fmt.Errorf("guardrails decide %s for %s: %s", dec.Effect, tool, dec.Reason)
	}
	return nil
}

// listMessage is a tools/list request of protocol 2026-07-28, which
// carries its client's details in every request, so it needs no session.
var listMessage = json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{` +
	`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
	`"io.modelcontextprotocol/clientInfo":{"name":"signalsmith-bench","version":"1"}}}}`)

// ListTools answers one tools/list of s, in process, for the caller of key
// (the full server filters the list by the caller's role), and returns how
// many tools it listed. An error answer or an empty list is an error.
func ListTools(ctx context.Context, s *mcpserver.MCPServer, key string) (int, error) {
	resp := s.HandleMessage(server.WithKey(ctx, key), listMessage)
	r, ok := resp.(mcp.JSONRPCResponse)
	if !ok {
		return 0, fmt.Errorf("tools/list answered %T", resp)
	}
	var res *mcp.ListToolsResult
	switch v := r.Result.(type) {
	case *mcp.ListToolsResult:
		res = v
	case mcp.ListToolsResult:
		res = &v
	default:
		return 0, fmt.Errorf("tools/list answered %T", r.Result)
	}
	if len(res.Tools) == 0 {
		return 0, errors.New("tools/list listed no tools")
	}
	return len(res.Tools), nil
}

// percentiles returns the nearest-rank p50 and p99 of lat (zero when
// empty); it sorts lat.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	rank := func(q float64) time.Duration {
		return lat[max(0, int(math.Ceil(q*float64(len(lat))))-1)]
	}
	return rank(0.50), rank(0.99)
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }
func us(d time.Duration) float64 { return round3(float64(d) / float64(time.Microsecond)) }

// round3 keeps three decimals, so reports stay readable.
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
