package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// Target is an MCP endpoint the load generator calls: its URL and the API
// key its sessions present (none when empty).
type Target struct {
	URL string
	Key string
}

// LoadConfig is what Load needs.
type LoadConfig struct {
	// Gate is the full server, Bare the server without a gate.
	Gate, Bare Target
	// Model is the model every get_model call asks for.
	Model string
	// Sessions are the numbers of concurrent sessions, one point each.
	Sessions []int
	// Duration is how long each side is measured at each point.
	Duration time.Duration
	// Round is the length of one round of one side; rounds alternate.
	Round time.Duration
}

// Point is one number of sessions: both sides and their ratio.
type Point struct {
	Sessions int  `json:"sessions"`
	Gate     Side `json:"gate"`
	Bare     Side `json:"bare"`
	// Ratio is the gate's calls per second over the bare server's.
	Ratio float64 `json:"ratio"`
}

// Side is what one server did at one point.
type Side struct {
	Calls       int     `json:"calls"`
	Seconds     float64 `json:"seconds"`
	CallsPerSec float64 `json:"calls_per_s"`
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
}

// Load runs the points of cfg one after the other. At each point it opens
// the sessions of both sides, makes one call in each (not measured), then
// alternates rounds of the two until both have been measured for
// cfg.Duration. It fails at the first call that fails or returns an error
// result, naming the side, and when ctx ends.
func Load(ctx context.Context, cfg LoadConfig) ([]Point, error) {
	if cfg.Duration <= 0 || cfg.Round <= 0 {
		return nil, errors.New("bench: duration and round must be positive")
	}
	var points []Point
	for _, n := range cfg.Sessions {
		if n < 1 {
			return nil, fmt.Errorf("bench: %d sessions: need at least one", n)
		}
		p, err := point(ctx, cfg, n)
		if err != nil {
			return nil, err
		}
		points = append(points, p)
	}
	return points, nil
}

// side is one server's sessions and what they measured at one point.
type side struct {
	name    string
	clients []*client.Client
	elapsed time.Duration
	lat     []time.Duration
}

func point(ctx context.Context, cfg LoadConfig, n int) (Point, error) {
	gate, bare := &side{name: "gate"}, &side{name: "bare"}
	for _, s := range []struct {
		side *side
		to   Target
	}{{gate, cfg.Gate}, {bare, cfg.Bare}} {
		cs, err := Dial(ctx, s.to, n)
		if err != nil {
			return Point{}, fmt.Errorf("%s server: %w", s.side.name, err)
		}
		defer closeAll(cs)
		s.side.clients = cs
		// One call per session first: connections, caches and the key's
		// bcrypt check are paid before the measurement.
		if err := s.side.warm(ctx, cfg.Model); err != nil {
			return Point{}, err
		}
	}
	// Alternate which side goes first, so a trend in the machine's load
	// (another process starting, the audit shipper draining) is shared.
	for i := 0; gate.elapsed < cfg.Duration || bare.elapsed < cfg.Duration; i++ {
		order := []*side{gate, bare}
		if i%2 == 1 {
			order[0], order[1] = bare, gate
		}
		for _, s := range order {
			if err := s.round(ctx, cfg.Model, cfg.Round); err != nil {
				return Point{}, fmt.Errorf("%s server, %d sessions: %w", s.name, n, err)
			}
		}
	}
	p := Point{Sessions: n, Gate: gate.stats(), Bare: bare.stats()}
	if p.Bare.CallsPerSec > 0 {
		p.Ratio = p.Gate.CallsPerSec / p.Bare.CallsPerSec
	}
	return p, nil
}

func (s *side) warm(ctx context.Context, model string) error {
	for _, c := range s.clients {
		if err := Call(ctx, c, model); err != nil {
			return fmt.Errorf("%s server, first call: %w", s.name, err)
		}
	}
	return nil
}

// round has every session call get_model back to back until d has passed
// since the round began; a call begun before then counts, and the round
// lasts until the last one ends.
func (s *side) round(ctx context.Context, model string, d time.Duration) error {
	lat := make([][]time.Duration, len(s.clients))
	errs := make([]error, len(s.clients))
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i, c := range s.clients {
		wg.Go(func() {
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				if err := Call(ctx, c, model); err != nil {
					errs[i] = err
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	s.elapsed += time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, l := range lat {
		s.lat = append(s.lat, l...)
	}
	return nil
}

func (s *side) stats() Side {
	p50, p99 := percentiles(s.lat)
	st := Side{Calls: len(s.lat), Seconds: s.elapsed.Seconds(), P50MS: ms(p50), P99MS: ms(p99)}
	if s.elapsed > 0 {
		st.CallsPerSec = float64(st.Calls) / s.elapsed.Seconds()
	}
	return st
}

// Dial opens n initialized sessions of the mcp-go client with to, over one
// HTTP client whose connection pool holds a connection per session (the
// default pool keeps two, and the others would dial on every call).
func Dial(ctx context.Context, to Target, n int) ([]*client.Client, error) {
	hc := &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        n,
		MaxIdleConnsPerHost: n,
		IdleConnTimeout:     time.Minute,
	}}
	opts := []transport.StreamableHTTPCOption{transport.WithHTTPBasicClient(hc)}
	if to.Key != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + to.Key}))
	}
	var cs []*client.Client
	for range n {
		c, err := client.NewStreamableHttpClient(to.URL, opts...)
		if err == nil {
			err = initialize(ctx, c)
		}
		if err != nil {
			closeAll(cs)
			return nil, fmt.Errorf("open session: %w", err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func initialize(ctx context.Context, c *client.Client) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "signalsmith-bench", Version: "1"}
	_, err := c.Initialize(ctx, init)
	return err
}

func closeAll(cs []*client.Client) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// Call makes one get_model call of model. A transport or protocol error,
// an error result or a result without structured content is an error.
func Call(ctx context.Context, c *client.Client, model string) error {
	req := mcp.CallToolRequest{}
	req.Params.Name = "get_model"
	req.Params.Arguments = map[string]any{"model": model}
	res, err := c.CallTool(ctx, req)
	switch {
	case err != nil:
		return fmt.Errorf("get_model: %w", err)
	case res.IsError:
		return fmt.Errorf("get_model answered with an error: %s", resultText(res))
	case res.StructuredContent == nil:
		return errors.New("get_model answered without structured content")
	}
	return nil
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, " ")
}
