package server_test

import (
	"context"
	"testing"

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
