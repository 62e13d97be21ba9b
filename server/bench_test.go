package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
)

// BenchmarkGate measures the gate's own cost per call: key authentication
// with a warm cache (plus the per-call key status read), the RBAC decision
// and the durable audit write, around a handler that does nothing.
func BenchmarkGate(b *testing.B) {
	e := setup(b)
	key, _ := e.key(b, "bench-agent", "member", store.KindAgent, nil)
	noop := func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	}
	gated := e.srv.Gate().Middleware(noop)
	ctx := server.WithKey(context.Background(), key)
	req := mcp.CallToolRequest{}
	req.Params.Name = "list_models"
	req.Params.Arguments = map[string]any{}
	if res, err := gated(ctx, req); err != nil || res.IsError {
		b.Fatalf("warm-up call: %v %v", err, res)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if res, _ := gated(ctx, req); res.IsError {
				b.Fatal("denied")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res, _ := gated(ctx, req); res.IsError {
					b.Error("denied")
					return
				}
			}
		})
	})
}

// noAudit is the benchmark harness's store with the audit write left out,
// to measure what durable audit costs. It exists only here: the server has
// no such option.
type noAudit struct{ store.Store }

func (noAudit) AppendAudit(context.Context, store.AuditEvent) error { return nil }

// BenchmarkAuditedCalls measures whole tool calls (get_model through the
// MCP server: authentication, RBAC, guardrails, the handler's store read,
// the audit record) per second with 1, 8 and 32 concurrent callers, with
// the durable audit write (synchronous=FULL, group commit, hash chain,
// outbox) and without it. Run it with
//
//	go test -run '^$' -bench AuditedCalls -benchtime 3s ./server/
//
// and compare the calls/s of audit=durable with audit=off at each callers=N.
func BenchmarkAuditedCalls(b *testing.B) {
	msg := json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_model","arguments":{"model":"customers"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}}`)
	for _, mode := range []string{"durable", "off"} {
		var opts []func(*server.Config)
		if mode == "off" {
			opts = append(opts, func(c *server.Config) { c.Store = noAudit{c.Store} })
		}
		e := setup(b, opts...)
		key, _ := e.key(b, "bench-agent", "member", store.KindAgent, nil)
		ctx := server.WithKey(context.Background(), key)
		call := func() error {
			resp := e.srv.MCP().HandleMessage(ctx, msg)
			r, ok := resp.(mcp.JSONRPCResponse)
			if !ok {
				return fmt.Errorf("response %T: %+v", resp, resp)
			}
			if res, ok := r.Result.(*mcp.CallToolResult); !ok || res.IsError {
				return fmt.Errorf("result %+v", r.Result)
			}
			return nil
		}
		if err := call(); err != nil {
			b.Fatalf("warm-up call: %v", err)
		}
		for _, callers := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("audit=%s/callers=%d", mode, callers), func(b *testing.B) {
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, callers)
				b.ResetTimer()
				start := time.Now()
				for range callers {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := call(); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
			})
		}
	}
}
