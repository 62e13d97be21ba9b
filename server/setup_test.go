package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"github.com/signalsmith/agent-server/store/sqlite"
	"golang.org/x/crypto/bcrypt"
)

// demoScale keeps the test warehouse small; the generator's own tests cover
// the default scale.
const demoScale = 400

// templateWarehouse generates the demo warehouse once per test binary; each
// test copies it into its own data directory. defaultScaleWarehouse is the
// demo at its default scale, for the few tests that need its numbers.
var (
	templateWarehouse     = sync.OnceValues(func() (string, error) { return generateTemplate(demoScale) })
	defaultScaleWarehouse = sync.OnceValues(func() (string, error) { return generateTemplate(demo.DefaultScale) })
)

func generateTemplate(scale int) (string, error) {
	dir, err := os.MkdirTemp("", "signalsmith-server-test-")
	if err != nil {
		return "", err
	}
	err = demo.Generate(context.Background(), dir, demo.Options{Scale: scale, Seed: 7})
	return dir, err
}

// env is one server over its own data directory, served on loopback.
type env struct {
	db    *sqlite.DB
	ws    store.Workspace
	srv   *server.Server
	http  *httptest.Server
	url   string
	logs  *syncBuffer
	mu    sync.Mutex
	keys  []string
	dir   string
	rbac  *guardrails.RBAC
	whDir string
	// raw is a read-only connection to signalsmith.db for row counts.
	raw *sql.DB
	// humans are the owners agentOf has created: member ids by name.
	humans map[string]string
}

// setup starts a server over a fresh data directory; opts adjust its
// configuration before it is built.
func setup(t testing.TB, opts ...func(*server.Config)) *env {
	t.Helper()
	return setupOn(t, templateWarehouse, opts...)
}

// setupOn is setup over another template warehouse.
func setupOn(t testing.TB, template func() (string, error), opts ...func(*server.Config)) *env {
	t.Helper()
	ctx := context.Background()
	tmpl, err := template()
	if err != nil {
		t.Fatalf("generate demo warehouse: %v", err)
	}
	dir := t.TempDir()
	whDir := filepath.Join(dir, "warehouse")
	if err := os.MkdirAll(whDir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(tmpl, "analytics.db"), filepath.Join(whDir, "analytics.db"))

	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ws, err := db.EnsureWorkspace(ctx, "default", guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.SeedMetadata(ctx, db, ws.ID); err != nil {
		t.Fatal(err)
	}
	wh, err := sqlite.OpenWarehouse(ctx, whDir, sqlite.WarehouseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	rbac, err := guardrails.NewRBAC(ctx, db, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := server.Config{
		Store: db, Warehouse: wh, RBAC: rbac, Version: "test",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Limits: store.QueryLimits{Timeout: 10 * time.Second, MaxRows: 1000},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Syncs == nil {
		// The sync engine, as serve wires it: its planner beside the
		// warehouse, closed after it.
		pl, err := sqlite.OpenPlanner(ctx, whDir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pl.Close() })
		sched, err := server.NewSyncs(server.SyncsConfig{Store: db, Warehouse: wh, Planner: pl,
			KeysFunc: cfg.MasterKeyFunc, DataDir: cfg.DataDir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sched.Close() })
		cfg.Syncs = sched
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "signalsmith.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &env{db: db, ws: ws, srv: srv, http: hs, url: hs.URL + "/mcp", logs: logs, dir: dir, rbac: rbac, whDir: whDir, raw: raw}
}

// key creates a key for a member (created when new) and remembers the full
// key so tests can look for it where it must never appear. A user member
// gets the email member@example.test; an agent acts for the human
// "member-human", created with the owner role when absent, so the agent's
// own role is what limits it.
func (e *env) key(t testing.TB, member, role, kind string, expires *time.Time) (string, store.Key) {
	t.Helper()
	full, prefix, hash, err := server.NewKeySecret(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	nk := store.NewKey{
		WorkspaceID: e.ws.ID, MemberName: member, Kind: kind, Role: role, Name: member,
		Prefix: prefix, Hash: hash, ExpiresAt: expires,
	}
	switch kind {
	case store.KindUser:
		nk.Email = member + "@example.test"
	case store.KindAgent:
		nk.OwnerName = member + "-human"
		if !e.hasMember(t, nk.OwnerName) {
			e.key(t, nk.OwnerName, "owner", store.KindUser, nil)
		}
	}
	k, err := e.db.CreateKey(context.Background(), nk)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	e.mu.Lock()
	e.keys = append(e.keys, full)
	e.mu.Unlock()
	return full, k
}

// hasMember reports whether the workspace has a member of this name.
func (e *env) hasMember(t testing.TB, name string) bool {
	t.Helper()
	members, err := e.db.Members(context.Background(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.Name == name {
			return true
		}
	}
	return false
}

// client returns an initialized MCP client over HTTP presenting key.
func (e *env) client(t *testing.T, key string) *client.Client {
	t.Helper()
	return servertest.Client(t, e.url, key, "server-test", "1.2.3")
}

// stdioClient returns an initialized MCP client talking to the server over
// the stdio transport (through pipes), authenticated by key.
func (e *env) stdioClient(t *testing.T, key string) *client.Client {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeStdio(ctx, key, inR, outW) }()
	c := client.NewClient(transport.NewIO(outR, inW, io.NopCloser(strings.NewReader(""))))
	t.Cleanup(func() {
		c.Close()
		cancel()
		inW.Close()
		outW.Close()
		<-done
	})
	servertest.Initialize(t, c, "stdio-test", "1")
	return c
}

// call, tryCall, structured and text are servertest's, by shorter names.
var (
	call       = servertest.Call
	tryCall    = servertest.TryCall
	structured = servertest.Structured
	text       = servertest.Text
)

// audit returns all audit events, oldest first.
func (e *env) audit(t *testing.T) []store.AuditEvent {
	t.Helper()
	evs, err := e.db.Audit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// lastAudit returns the newest audit event.
func (e *env) lastAudit(t *testing.T) store.AuditEvent {
	t.Helper()
	evs := e.audit(t)
	if len(evs) == 0 {
		t.Fatal("no audit events")
	}
	return evs[len(evs)-1]
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
