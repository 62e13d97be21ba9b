package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/signalsmith/agent-server/store"
)

// Models is where the bare server reads models: the store the full server
// reads them from.
type Models interface {
	GetModel(ctx context.Context, workspaceID, idOrName string) (store.Model, error)
}

// modelArgs are get_model's arguments, as the full server's tool takes them.
type modelArgs struct {
	Model string `json:"model" jsonschema:"the model's id (mdl_...) or name"`
}

// NewBare returns a bare mcp-go server with one tool, get_model, and no
// gate: no key, no RBAC, no guardrails, no audit. It reads the model from
// models in workspace and answers as the full server's get_model does (a
// summary line, the model as JSON text and as structured content), so the
// two servers differ by the gate only.
func NewBare(models Models, workspace string) *mcpserver.MCPServer {
	s := mcpserver.NewMCPServer("signalsmith-bare", "1", mcpserver.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("get_model",
		mcp.WithDescription("Show one model: its source, primary key, columns with PII levels, and relationships."),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
		mcp.WithInputSchema[modelArgs](),
	), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var args modelArgs
		if err := req.BindArguments(&args); err != nil || args.Model == "" {
			return mcp.NewToolResultError(`give "model": a model's id or name`), nil
		}
		m, err := models.GetModel(ctx, workspace, args.Model)
		if errors.Is(err, store.ErrNotFound) {
			return mcp.NewToolResultError("no model " + args.Model), nil
		}
		if err != nil {
			return nil, fmt.Errorf("get model: %w", err)
		}
		data, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode model: %w", err)
		}
		return &mcp.CallToolResult{
			Content: []mcp.Content{
				mcp.NewTextContent(fmt.Sprintf("Model %s (%s): %d columns, primary key %s", m.Name, m.ID, len(m.Columns), m.PrimaryKey)),
				mcp.NewTextContent(string(data)),
			},
			StructuredContent: json.RawMessage(data),
		}, nil
	})
	return s
}

// BareHandler serves s over streamable HTTP at /mcp, with mcp-go's
// defaults, as the full server's /mcp is served by mcp-go behind the gate.
func BareHandler(s *mcpserver.MCPServer) http.Handler {
	return mcpserver.NewStreamableHTTPServer(s, mcpserver.WithEndpointPath("/mcp"))
}

// Listen serves h on a free loopback port with the HTTP server settings of
// serve, and returns the URL of its /mcp endpoint and the function that
// stops it. Both sides of a benchmark are served this way.
func Listen(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	return "http://" + ln.Addr().String() + "/mcp", func() {
		_ = hs.Close()
		<-done
	}, nil
}
