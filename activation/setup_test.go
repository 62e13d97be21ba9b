package activation_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/signalsmith/agent-server/activation"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/demo"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// testScale is the demo size the tests run over: a few hundred
// Californians, enough for many batches.
const testScale = 3000

var (
	templateDir string
	templates   sync.Map // scale -> *template
)

type template struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "activation-demo-")
	if err != nil {
		panic(err)
	}
	templateDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// demoWarehouse returns a directory holding the demo analytics.db at
// scale, generated once per test binary.
func demoWarehouse(tb testing.TB, scale int) string {
	tb.Helper()
	v, _ := templates.LoadOrStore(scale, &template{})
	tm := v.(*template)
	tm.once.Do(func() {
		tm.dir = filepath.Join(templateDir, "scale-"+strconv.Itoa(scale))
		tm.err = demo.Generate(context.Background(), tm.dir, demo.Options{Scale: scale, Seed: 7})
	})
	if tm.err != nil {
		tb.Fatalf("generate demo: %v", tm.err)
	}
	return tm.dir
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// env is one test's world: a real store, the demo warehouse copied for
// the test, its planner, and a sync of California customers to a webhook
// destination owned by a user member.
type env struct {
	ctx     context.Context
	db      *sqlite.DB
	wh      *sqlite.Warehouse
	planner *sqlite.Planner
	whDir   string
	ws      store.Workspace
	owner   store.Key
	dest    store.Destination
	aud     store.Audience
	model   store.Model
	sync    store.Sync
	// analytics writes the test's copy of analytics.db, to change the
	// data between runs.
	analytics *sql.DB
}

type envOptions struct {
	scale     int
	mode      string
	batchSize int
	mappings  []store.FieldMapping
	// audience is the definition's conditions; default state = CA.
	conditions []any
}

func setup(tb testing.TB, o envOptions) *env {
	tb.Helper()
	if o.scale == 0 {
		o.scale = testScale
	}
	if o.mode == "" {
		o.mode = "upsert"
	}
	if o.batchSize == 0 {
		o.batchSize = 40
	}
	if o.mappings == nil {
		o.mappings = []store.FieldMapping{{From: "email", To: "email"}, {From: "plan", To: "plan"}, {From: "city", To: "city"}}
	}
	if o.conditions == nil {
		o.conditions = []any{map[string]any{"column": "state", "operator": "equals", "value": "CA"}}
	}
	ctx := context.Background()
	dataDir := tb.TempDir()
	whDir := filepath.Join(dataDir, "warehouse")
	if err := os.MkdirAll(whDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	copyFile(tb, filepath.Join(demoWarehouse(tb, o.scale), sqlite.AnalyticsFile), filepath.Join(whDir, sqlite.AnalyticsFile))
	db, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	ws, err := db.EnsureWorkspace(ctx, "acme", guardrails.BuiltInRoles())
	if err != nil {
		tb.Fatal(err)
	}
	if err := demo.SeedMetadata(ctx, db, ws.ID); err != nil {
		tb.Fatal(err)
	}
	wh, err := sqlite.OpenWarehouse(ctx, whDir, sqlite.WarehouseOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { wh.Close() })
	planner, err := sqlite.OpenPlanner(ctx, whDir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { planner.Close() })
	analytics, err := sql.Open("sqlite", filepath.Join(whDir, sqlite.AnalyticsFile)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { analytics.Close() })

	e := &env{ctx: ctx, db: db, wh: wh, planner: planner, whDir: whDir, ws: ws, analytics: analytics}
	e.owner = e.user(tb, "ada")
	if e.model, err = db.GetModel(ctx, ws.ID, "customers"); err != nil {
		tb.Fatal(err)
	}
	e.dest, err = db.CreateDestination(ctx, store.Destination{WorkspaceID: ws.ID, Name: "CRM receiver", Type: "webhook",
		Category: "crm", Environment: "production",
		Config: map[string]any{"url": "https://127.0.0.1/hook", "batch_size": o.batchSize}})
	if err != nil {
		tb.Fatal(err)
	}
	def := map[string]any{"model": "customers", "conditions": map[string]any{"all": o.conditions}}
	e.aud, err = db.CreateAudience(ctx, store.Audience{WorkspaceID: ws.ID, Name: "Test audience", ModelID: e.model.ID,
		Definition: mustJSON(tb, def)})
	if err != nil {
		tb.Fatal(err)
	}
	e.sync, err = db.CreateSync(ctx, store.Sync{WorkspaceID: ws.ID, AudienceID: e.aud.ID, DestinationID: e.dest.ID,
		Mode: o.mode, State: "active", Mappings: o.mappings, OwnerID: e.owner.MemberID})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// user creates a user member with a key and returns the key.
func (e *env) user(tb testing.TB, name string) store.Key {
	tb.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "ss_" + hex.EncodeToString(b)
	k, err := e.db.CreateKey(e.ctx, store.NewKey{WorkspaceID: e.ws.ID, MemberName: name, Kind: store.KindUser,
		Role: "owner", Email: name + "@example.com", Name: name + "'s key", Prefix: prefix, Hash: []byte("not a real hash")})
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// engine returns an engine over the env that sends through sender.
func (e *env) engine(tb testing.TB, sender store.Sender, gov activation.Governance) *activation.Engine {
	tb.Helper()
	eng, err := activation.New(activation.Config{Store: e.db, Warehouse: e.wh, Planner: e.planner, Governance: gov,
		Senders: func(context.Context, store.Destination) (store.Sender, error) { return sender, nil }})
	if err != nil {
		tb.Fatal(err)
	}
	return eng
}

// run runs the env's sync once.
func (e *env) run(tb testing.TB, eng *activation.Engine) (store.SyncRun, error) {
	tb.Helper()
	return eng.Run(e.ctx, activation.Request{WorkspaceID: e.ws.ID, SyncID: e.sync.ID, Trigger: activation.TriggerManual, Source: store.SourceAPI})
}

// members reads, straight from the test's copy of analytics.db, the
// customers with their email and plan that a condition selects: what the
// destination should hold.
func (e *env) members(tb testing.TB, where string, args ...any) map[string]member {
	tb.Helper()
	rows, err := e.analytics.QueryContext(e.ctx, `SELECT customer_id, email, plan, city FROM customers WHERE `+where, args...)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]member{}
	for rows.Next() {
		var id int64
		var email, plan, city sql.NullString
		if err := rows.Scan(&id, &email, &plan, &city); err != nil {
			tb.Fatal(err)
		}
		out[itoa64(id)] = member{email: email, plan: plan, city: city}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

type member struct{ email, plan, city sql.NullString }

// exec changes the test's analytics data.
func (e *env) exec(tb testing.TB, q string, args ...any) int64 {
	tb.Helper()
	res, err := e.analytics.ExecContext(e.ctx, q, args...)
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := res.RowsAffected()
	return n
}

// plannerCount counts rows of a cdp_planner query, read through a
// connection of the test's own.
func (e *env) plannerCount(tb testing.TB, q string, args ...any) int64 {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.whDir, sqlite.PlannerFile)+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(e.ctx, q, args...).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// hashed is the sha256 transform of a value, computed independently.
func hashed(s string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(s))))
	return hex.EncodeToString(sum[:])
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}
