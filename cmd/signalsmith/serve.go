package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/activation"
	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// version is announced to MCP clients.
const version = "0.1.0"

// serveConfig holds the flags of "signalsmith serve".
type serveConfig struct {
	demo     bool
	addr     string
	stdio    bool
	scale    int
	insecure bool
	tlsCert  string
	tlsKey   string
	timeout  time.Duration
	maxRows  int
	policy   string
	baseURL  string
	webhook  string
	// syncTick and syncLease tune the sync scheduler (zero: its defaults).
	syncTick  time.Duration
	syncLease time.Duration
}

func (m *Main) serve(ctx context.Context, args []string) error {
	var c serveConfig
	fs := m.newFlags("serve")
	fs.BoolVar(&c.demo, "demo", false, "generate the embedded demo warehouse and demo keys on first run")
	fs.StringVar(&c.addr, "http", "127.0.0.1:8080", "HTTP listen address for /mcp, /healthz, /readyz")
	fs.BoolVar(&c.stdio, "stdio", false, "serve MCP on stdin/stdout; the key comes from SIGNALSMITH_API_KEY")
	fs.IntVar(&c.scale, "scale", 10000, "demo customers to generate on first run")
	fs.BoolVar(&c.insecure, "insecure", false, "allow plain HTTP on a non-loopback address")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS key file")
	fs.DurationVar(&c.timeout, "query-timeout", 30*time.Second, "timeout of every warehouse query")
	fs.IntVar(&c.maxRows, "max-rows", 10000, "row cap of every warehouse query")
	fs.StringVar(&c.policy, "policy", "", "YAML policy file replacing the default AI policies")
	fs.StringVar(&c.baseURL, "public-url", "", "URL people use to reach this server, for approval links (default http://ADDR)")
	fs.StringVar(&c.webhook, "approval-webhook", m.Getenv("SIGNALSMITH_APPROVAL_WEBHOOK"), "URL called (Slack-compatible JSON) when an approval is created or decided (env SIGNALSMITH_APPROVAL_WEBHOOK)")
	fs.DurationVar(&c.syncTick, "sync-tick", 30*time.Second, "how often the sync scheduler looks for due syncs and runs a stop left unfinished")
	fs.DurationVar(&c.syncLease, "sync-lease", activation.DefaultLeaseTTL, "how long a sync run's lease outlives a crashed server: the wait before another server resumes the run")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	if c.scale < 1 || c.timeout <= 0 || c.maxRows < 1 || c.syncTick <= 0 || c.syncLease <= 0 {
		fmt.Fprintln(m.Stderr, "--scale, --query-timeout, --max-rows, --sync-tick and --sync-lease must be positive")
		return errUsage
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		fmt.Fprintln(m.Stderr, "--tls-cert and --tls-key go together")
		return errUsage
	}
	if !c.stdio {
		if err := checkListenAddr(c); err != nil {
			return err
		}
	} else if m.Getenv("SIGNALSMITH_API_KEY") == "" {
		return errors.New("serve --stdio needs SIGNALSMITH_API_KEY")
	}
	// A bad policy file stops startup before anything else happens.
	if c.policy != "" {
		if _, err := loadPolicies(c.policy); err != nil {
			return err
		}
	}
	inst, err := m.start(ctx, c)
	if err != nil {
		return err
	}
	if c.stdio {
		err = m.serveStdio(ctx, inst.srv)
	} else {
		err = m.serveHTTP(ctx, inst.srv, c)
	}
	// Sync runs in progress stop interrupted (the next run resumes them),
	// with their outcome events recorded before shipping stops.
	_ = inst.syncs.Close()
	// The shipper stops after the server, so the events of the last calls
	// ship too (within the shipper's drain time).
	inst.stopShipping()
	return err
}

// instance is a server started as serve starts it, not yet listening.
type instance struct {
	srv *server.Server
	db  *sqlite.DB
	ws  store.Workspace
	// syncs runs syncs on schedule and on trigger_sync, until Close.
	syncs *activation.Scheduler
	// stopShipping stops shipping the audit trail after a last drain.
	stopShipping func()
}

// start opens the data directory and starts everything serve runs beside
// the transport: the demo (with c.demo), the wiring of build, the
// approvals a stop left approved, approval expiry, policy watching (until
// ctx ends) and audit shipping. eval bench starts its server here too, so
// it measures what serve runs.
func (m *Main) start(ctx context.Context, c serveConfig) (*instance, error) {
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return nil, err
	}
	if c.demo {
		if err := m.prepareDemo(ctx, db, ws, c); err != nil {
			return nil, err
		}
	}
	srv, err := m.build(ctx, db, ws, c)
	if err != nil {
		return nil, err
	}
	// Approvals a stop left approved but not begun run now, once.
	if n, err := srv.ResumeApproved(ctx, ws.ID); err != nil {
		return nil, err
	} else if n > 0 {
		m.logger().Info("ran approvals approved before the last stop", "count", n)
	}
	go srv.ExpireApprovals(ctx, ws.ID)
	stopShipping, err := m.shipAudit(db, srv)
	if err != nil {
		return nil, err
	}
	m.syncs.Start()
	return &instance{srv: srv, db: db, ws: ws, syncs: m.syncs, stopShipping: stopShipping}, nil
}

// shipAudit starts shipping audit events from the store's outbox to the
// warehouse's cdp_audit schema, and returns the function that stops it
// after a last drain. Shipping failures never fail the server: the outbox
// waits for the warehouse (see signalsmith audit status).
func (m *Main) shipAudit(db *sqlite.DB, srv *server.Server) (stop func(), err error) {
	sink, err := sqlite.OpenAuditSink(m.warehouseDir())
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, sink)
	shipper, err := server.NewShipper(server.ShipperConfig{
		Outbox: db, Sink: sink, Logger: m.logger(), Registerer: srv.Metrics(),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = shipper.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// build wires the server over an open store: warehouse, RBAC, policies
// (the --policy file, else the applied set, else the defaults),
// approval queue (recovering approvals a crash left executing), the sync
// engine and its scheduler (not started), gate.
func (m *Main) build(ctx context.Context, db *sqlite.DB, ws store.Workspace, c serveConfig) (*server.Server, error) {
	policies, err := policiesFor(ctx, db, ws, c.policy)
	if err != nil {
		return nil, err
	}
	log := m.logger()
	wh, err := sqlite.OpenWarehouse(ctx, m.warehouseDir(), sqlite.WarehouseOptions{})
	if err != nil {
		return nil, fmt.Errorf("open warehouse (run serve --demo to create the demo warehouse): %w", err)
	}
	m.closers = append(m.closers, wh)
	rbac, err := guardrails.NewRBAC(ctx, db, ws.ID)
	if err != nil {
		return nil, err
	}
	queue := approvals.NewQueue(db, rbac, 0)
	// An approval a crash left executing may have run: resolve it as
	// failed before anything runs, never run it again.
	if n, err := queue.Recover(ctx, ws.ID); err != nil {
		return nil, fmt.Errorf("recover approvals: %w", err)
	} else if n > 0 {
		log.Warn("approvals interrupted by a stop were marked failed", "count", n)
	}
	// The master key seals the credentials people set through the API;
	// serve --demo creates the key file, a plain serve only reads it.
	_, err = m.keyring(c.demo)
	if errors.Is(err, destinations.ErrNoMasterKey) {
		log.Warn("no master key: destination credentials cannot be set or used until one exists", "env", destinations.KeyEnv)
	} else if err != nil {
		return nil, err
	}
	base := c.baseURL
	if base == "" {
		scheme := "http"
		if c.tlsCert != "" {
			scheme = "https"
		}
		base = scheme + "://" + c.addr
	}
	planner, err := sqlite.OpenPlanner(ctx, m.warehouseDir())
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, planner)
	keys := destinations.Keys(m.Getenv, m.DataDir)
	syncs, err := server.NewSyncs(server.SyncsConfig{Store: db, Warehouse: wh, Planner: planner, KeysFunc: keys,
		DataDir: m.DataDir, WorkspaceIDs: []string{ws.ID}, Tick: c.syncTick, LeaseTTL: c.syncLease, Logger: log})
	if err != nil {
		return nil, err
	}
	// Closed before the planner and the warehouse: runs in progress stop
	// interrupted and the next run, here or in the server, resumes them.
	m.closers = append(m.closers, syncs)
	m.syncs = syncs
	return server.New(server.Config{
		Store: db, Warehouse: wh, RBAC: rbac, Version: version, Logger: log,
		Limits:    store.QueryLimits{Timeout: c.timeout, MaxRows: c.maxRows},
		Policies:  guardrails.NewEngine(policies, db),
		Approvals: queue,
		BaseURL:   base,
		// The webhook URL may hold a secret (Slack's do): it is never logged.
		ApprovalWebhook: c.webhook,
		// Without a --policy file the server follows the stored set.
		StoredPolicies: c.policy == "",
		MasterKeyFunc:  keys,
		DataDir:        m.DataDir,
		Syncs:          syncs,
	})
}

// serveStdio checks the key from the environment once at startup (so a
// desktop client shows a clear error) and then serves MCP on stdio, where
// every call is authenticated again.
func (m *Main) serveStdio(ctx context.Context, srv *server.Server) error {
	key := m.Getenv("SIGNALSMITH_API_KEY")
	if _, err := srv.Authenticator().Authenticate(ctx, key); err != nil {
		return fmt.Errorf("SIGNALSMITH_API_KEY: %w", err)
	}
	return srv.ServeStdio(ctx, key, m.Stdin, m.Stdout)
}

// serveHTTP listens until ctx ends, then shuts down gracefully.
func (m *Main) serveHTTP(ctx context.Context, srv *server.Server, c serveConfig) error {
	log := m.logger()
	tls := c.tlsCert != ""
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	log.Info("listening", "url", scheme+"://"+ln.Addr().String()+"/mcp", "data_dir", m.DataDir)
	errc := make(chan error, 1)
	go func() {
		if tls {
			errc <- hs.ServeTLS(ln, c.tlsCert, c.tlsKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Refused requests counted in the last minute are audited now, or never.
	if err := srv.FlushRequestAudit(shutdownCtx); err != nil {
		log.Error("counted refused requests could not be audited at shutdown", "err", err)
	}
	// Give approval notifications still being delivered a moment.
	if err := srv.Approvals().Flush(shutdownCtx); err != nil {
		log.Warn("approval notifications still pending at shutdown were dropped")
	}
	return nil
}

// loadPolicies reads the policy file, or the shipped defaults when path is
// empty. Errors name the file, the line and the reason.
func loadPolicies(path string) (*guardrails.PolicySet, error) {
	if path == "" {
		return guardrails.DefaultPolicies()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	return guardrails.ParsePolicies(path, data)
}

// checkListenAddr refuses plain HTTP on a non-loopback address unless
// --insecure is given.
func checkListenAddr(c serveConfig) error {
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return fmt.Errorf("--http %q: %w", c.addr, err)
	}
	if c.tlsCert == "" && !c.insecure && !server.IsLoopback(c.addr) {
		return fmt.Errorf("--http %s is not a loopback address: give --tls-cert and --tls-key, or --insecure", c.addr)
	}
	return nil
}

// prepareDemo generates the demo warehouse and metadata on first run and
// creates the demo keys, printing them once.
func (m *Main) prepareDemo(ctx context.Context, db *sqlite.DB, ws store.Workspace, c serveConfig) error {
	log := m.logger()
	if !demo.Exists(m.warehouseDir()) {
		log.Info("generating demo warehouse", "customers", c.scale)
		if err := demo.Generate(ctx, m.warehouseDir(), demo.Options{Scale: c.scale}); err != nil {
			return fmt.Errorf("generate demo warehouse: %w", err)
		}
	}
	if err := demo.SeedMetadata(ctx, db, ws.ID); err != nil {
		return fmt.Errorf("seed demo metadata: %w", err)
	}
	// The demo's sandbox file destination writes here (relative folders
	// are inside the data directory).
	if err := os.MkdirAll(filepath.Join(m.DataDir, "exports", "sandbox"), 0o700); err != nil {
		return fmt.Errorf("create the demo export folder: %w", err)
	}
	keys, err := db.ListKeys(ctx, ws.ID)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		return nil
	}
	_, ownerKey, err := createKey(ctx, db, ws, store.SourceSystem, store.NewKey{
		WorkspaceID: ws.ID, MemberName: "demo-owner", Kind: store.KindUser, Role: "owner", Name: "demo owner",
		Email: "demo-owner@example.com",
	}, 0)
	if err != nil {
		return err
	}
	_, agentKey, err := createKey(ctx, db, ws, store.SourceSystem, store.NewKey{
		WorkspaceID: ws.ID, MemberName: "demo-agent", Kind: store.KindAgent, Role: "member", Name: "demo agent",
		OwnerName: "demo-owner",
	}, 0)
	if err != nil {
		return err
	}
	return m.printDemoKeys(ownerKey, agentKey, c.addr)
}

// printDemoKeys shows the demo keys once, with ready-to-paste client
// configuration. It writes to stdout, never to the log.
func (m *Main) printDemoKeys(ownerKey, agentKey, addr string) error {
	dataDir, err := filepath.Abs(m.DataDir)
	if err != nil {
		return err
	}
	exe, build := binaryPath()
	desktop := map[string]any{"mcpServers": map[string]any{"signalsmith": map[string]any{
		"command": exe,
		"args":    []string{"--data-dir", dataDir, "serve", "--stdio"},
		"env":     map[string]string{"SIGNALSMITH_API_KEY": agentKey},
	}}}
	snippet, err := json.MarshalIndent(desktop, "", "  ")
	if err != nil {
		return err
	}
	w := m.Stdout
	fmt.Fprintf(w, "\nDemo keys (shown once; they are stored only as bcrypt hashes):\n\n")
	fmt.Fprintf(w, "  owner (user, role owner):  %s\n", ownerKey)
	fmt.Fprintf(w, "  agent (agent, role member): %s\n\n", agentKey)
	fmt.Fprintf(w, "Claude Code (HTTP):\n\n  claude mcp add --transport http signalsmith http://%s/mcp --header \"Authorization: Bearer %s\"\n\n", addr, agentKey)
	if build != "" {
		fmt.Fprintf(w, "Claude Desktop (stdio) needs a built binary first:\n\n  %s\n\n", build)
	}
	fmt.Fprintf(w, "Claude Desktop (claude_desktop_config.json):\n\n%s\n\n", snippet)
	fmt.Fprintf(w, "MCP Inspector:\n\n  npx @modelcontextprotocol/inspector@1.0.3 --cli http://%s/mcp --method tools/list --header \"Authorization: Bearer %s\"\n\n", addr, agentKey)
	return nil
}

// binaryPath returns the path a desktop client should start, and the build
// command to run first when this process runs from "go run".
func binaryPath() (path, build string) {
	exe, err := os.Executable()
	if err == nil && !strings.Contains(exe, "go-build") {
		return exe, ""
	}
	abs, err := filepath.Abs(filepath.Join("bin", "signalsmith"))
	if err != nil {
		abs = filepath.Join("bin", "signalsmith")
	}
	return abs, "go build -o " + abs + " ./cmd/signalsmith"
}
