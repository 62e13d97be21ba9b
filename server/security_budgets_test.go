package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
	"golang.org/x/crypto/bcrypt"
)

// Limits: every budget holds against the agent it limits. Writes are
// counted per key and per human across their keys, only when a call goes
// on to run or to be queued; warehouse queries are capped per key and per
// human and queued fairly; preview answers are bounded; and an audience's
// inclusions stop expanding at a bound.

// tightBudget allows two writes an hour per key and three per human.
const tightBudget = `policies:
  - id: no-forbidden-models
    type: deny
    resources: [model]
    operations: [create]
    sources: [AI]
    condition: has(args.name) && args.name.startsWith("forbidden")
    message: models named forbidden are not for agents
  - id: key-writes
    type: rate_limit
    resources: ["*"]
    operations: [create, update, delete, trigger]
    sources: [AI]
    limit: 2
    window: 1h
    scope: key
    message: two writes an hour per key
  - id: human-writes
    type: rate_limit
    resources: ["*"]
    operations: [create, update, delete, trigger]
    sources: [AI]
    limit: 3
    window: 1h
    scope: human
    message: three writes an hour per human
`

// agentOf creates an agent key acting for the user owner, creating the
// owner (a user with role member) the first time, and returns the full key.
func (e *env) agentOf(t *testing.T, agent, owner string) string {
	t.Helper()
	e.mu.Lock()
	if e.humans == nil {
		e.humans = map[string]string{}
	}
	_, known := e.humans[owner]
	e.mu.Unlock()
	if !known {
		_, k := e.key(t, owner, "member", store.KindUser, nil)
		e.mu.Lock()
		e.humans[owner] = k.MemberID
		e.mu.Unlock()
	}
	full, prefix, hash, err := server.NewKeySecret(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateKey(context.Background(), store.NewKey{WorkspaceID: e.ws.ID, MemberName: agent, Kind: store.KindAgent, Role: "member",
		OwnerName: owner, Name: agent, Prefix: prefix, Hash: hash}); err != nil {
		t.Fatalf("create agent key: %v", err)
	}
	e.mu.Lock()
	e.keys = append(e.keys, full)
	e.mu.Unlock()
	return full
}

// humanID returns the member id of an owner agentOf created.
func (e *env) humanID(t *testing.T, name string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.humans[name]
	if !ok {
		t.Fatalf("no human %q", name)
	}
	return id
}

// createModel makes one write: a table model named name.
func createModel(t *testing.T, c *client.Client, name string) (ok bool, msg string) {
	t.Helper()
	res := call(t, c, "create_model", map[string]any{
		"name": name, "table": "analytics.orders", "primary_key": "order_id",
		"columns": []map[string]any{{"name": "order_id", "pii": "none"}},
	})
	return !res.IsError, text(res)
}

func TestBudgetsWriteLimitIsPerHuman(t *testing.T) {
	t.Parallel()
	t.Run("shipped defaults: two agent keys of one human share 30 writes an hour", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		a1 := e.client(t, e.agentOf(t, "hanas-bot-1", "hana"))
		a2 := e.client(t, e.agentOf(t, "hanas-bot-2", "hana"))
		other := e.client(t, e.agentOf(t, "ivos-bot", "ivo"))
		for i := range 30 {
			c := a1
			if i%2 == 1 {
				c = a2
			}
			if ok, msg := createModel(t, c, fmt.Sprintf("m_%d", i)); !ok {
				t.Fatalf("write %d: %s", i+1, msg)
			}
		}
		for i, c := range []*client.Client{a1, a2} {
			ok, msg := createModel(t, c, fmt.Sprintf("one_more_%d", i))
			if ok || !strings.Contains(msg, "Rate limited (ai-write-rate-human)") {
				t.Errorf("31st write of the human: ok=%v %q", ok, msg)
			}
		}
		if ok, msg := createModel(t, other, "ivos_model"); !ok {
			t.Errorf("another human's agent was limited too: %s", msg)
		}
	})
	t.Run("per key and per human: both buckets must have room", func(t *testing.T) {
		t.Parallel()
		e := setup(t, withPolicies(t, tightBudget))
		a1 := e.client(t, e.agentOf(t, "bot-1", "hana"))
		a2 := e.client(t, e.agentOf(t, "bot-2", "hana"))
		for i := range 2 {
			if ok, msg := createModel(t, a1, fmt.Sprintf("a1_%d", i)); !ok {
				t.Fatalf("key 1 write %d: %s", i+1, msg)
			}
		}
		if ok, msg := createModel(t, a1, "a1_2"); ok || !strings.Contains(msg, "key-writes") || strings.Contains(msg, "human-writes") {
			t.Errorf("third write of key 1: ok=%v %q", ok, msg)
		}
		if ok, msg := createModel(t, a2, "a2_0"); !ok {
			t.Fatalf("key 2's first write: %s", msg)
		}
		if ok, msg := createModel(t, a2, "a2_1"); ok || !strings.Contains(msg, "human-writes") {
			t.Errorf("the human's fourth write, through key 2: ok=%v %q", ok, msg)
		}
	})
	t.Run("a user's own keys share the user's budget", func(t *testing.T) {
		t.Parallel()
		e := setup(t, withPolicies(t, tightBudget))
		k1, _ := e.key(t, "uma", "member", store.KindUser, nil)
		k2, _ := e.key(t, "uma", "member", store.KindUser, nil)
		u1, u2 := e.client(t, k1), e.client(t, k2)
		for i, c := range []*client.Client{u1, u1, u2} {
			if ok, msg := createModel(t, c, fmt.Sprintf("u_%d", i)); !ok {
				t.Fatalf("write %d: %s", i+1, msg)
			}
		}
		if ok, msg := createModel(t, u2, "u_3"); ok || !strings.Contains(msg, "human-writes") {
			t.Errorf("fourth write of the user: ok=%v %q", ok, msg)
		}
	})
}

func TestBudgetsRefusedWritesDoNotConsume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		refused func(t *testing.T, c *client.Client) (ok bool, msg string)
	}{
		{"denied by another rule", func(t *testing.T, c *client.Client) (bool, string) {
			return createModel(t, c, "forbidden_model")
		}},
		{"bad argument", func(t *testing.T, c *client.Client) (bool, string) {
			res := call(t, c, "create_model", map[string]any{"name": "no_source", "primary_key": "order_id"})
			return !res.IsError, text(res)
		}},
		{"SQL the warehouse refuses", func(t *testing.T, c *client.Client) (bool, string) {
			res := call(t, c, "create_model", map[string]any{"name": "bad_sql", "sql": "SELECT * FROM nowhere", "primary_key": "id"})
			return !res.IsError, text(res)
		}},
		{"name taken", func(t *testing.T, c *client.Client) (bool, string) {
			return createModel(t, c, "customers")
		}},
		{"unknown model", func(t *testing.T, c *client.Client) (bool, string) {
			res := call(t, c, "update_model", map[string]any{"model": "mdl_nope", "description": "x"})
			return !res.IsError, text(res)
		}},
		{"invalid audience", func(t *testing.T, c *client.Client) (bool, string) {
			res := call(t, c, "create_audience", map[string]any{"name": "bad", "definition": map[string]any{
				"model": "customers", "conditions": map[string]any{"column": "stat", "operator": "is_null"}}})
			return !res.IsError, text(res)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, withPolicies(t, tightBudget))
			c := e.client(t, e.agentOf(t, "bot", "hana"))
			for i := range 3 {
				if ok, msg := tt.refused(t, c); ok || strings.Contains(msg, "Rate limited") {
					t.Fatalf("refused write %d: ok=%v %q", i+1, ok, msg)
				}
			}
			// The key's two writes are all still there, and then used up.
			for i := range 2 {
				if ok, msg := createModel(t, c, fmt.Sprintf("after_%d", i)); !ok {
					t.Fatalf("write %d after refused ones: %s", i+1, msg)
				}
			}
			if ok, msg := createModel(t, c, "after_2"); ok || !strings.Contains(msg, "Rate limited (key-writes)") {
				t.Errorf("third write: ok=%v %q", ok, msg)
			}
		})
	}
	t.Run("calls racing for the last writes", func(t *testing.T) {
		t.Parallel()
		e := setup(t, withPolicies(t, tightBudget))
		clients := []*client.Client{
			e.client(t, e.agentOf(t, "bot-1", "hana")),
			e.client(t, e.agentOf(t, "bot-2", "hana")),
			e.client(t, e.agentOf(t, "bot-3", "hana")),
		}
		var mu sync.Mutex
		made, limited := 0, 0
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				c := clients[i%len(clients)]
				// Every other call is refused by the warehouse: it must not
				// take a write from the ones that run.
				name, sql := fmt.Sprintf("race_%d", i), "SELECT order_id FROM orders"
				if i%2 == 1 {
					sql = "SELECT order_id FROM nowhere"
				}
				res, err := tryCall(c, "create_model", map[string]any{"name": name, "sql": sql, "primary_key": "order_id"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case !res.IsError:
					made++
				case strings.Contains(text(res), "Rate limited"):
					limited++
				}
			})
		}
		wg.Wait()
		if made > 3 || made+limited > 12 {
			t.Fatalf("%d models were created by one human's agents racing for three writes (%d rate limited)", made, limited)
		}
		// Whatever the refused calls held for a moment is back: the human
		// has exactly the writes the race did not use.
		fresh := []*client.Client{e.client(t, e.agentOf(t, "bot-4", "hana")), e.client(t, e.agentOf(t, "bot-5", "hana"))}
		left := 0
		for i := range 4 {
			ok, msg := createModel(t, fresh[i%2], fmt.Sprintf("after_race_%d", i))
			if !ok {
				if !strings.Contains(msg, "Rate limited (human-writes)") {
					t.Fatalf("write after the race: %s", msg)
				}
				break
			}
			left++
		}
		if made+left != 3 {
			t.Errorf("the race made %d models and left %d writes, want 3 in all", made, left)
		}
	})
}

// preview is what preview_model and preview_audience answer, in the parts
// the size cap touches.
type preview struct {
	Rows      []map[string]any `json:"rows"`
	Sample    []map[string]any `json:"sample"`
	RowCount  int              `json:"row_count"`
	Truncated bool             `json:"truncated"`
	ValuesCut int              `json:"values_cut"`
}

func TestBudgetsPreviewAnswersAreCapped(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	c := e.client(t, e.agentOf(t, "bot", "hana"))
	// Values the agent's own SQL makes as large as it likes.
	models := map[string]string{
		"huge_values": "SELECT customer_id, printf('%.*c', 300000, 'x') AS big FROM customers",
		"wide_rows": "SELECT customer_id, printf('%.*c', 3000, 'a') AS a, printf('%.*c', 3000, 'b') AS b, printf('%.*c', 3000, 'c') AS c, " +
			"printf('%.*c', 3000, 'd') AS d, printf('%.*c', 3000, 'e') AS e FROM customers",
	}
	for name, sql := range models {
		cols := []map[string]any{{"name": "customer_id", "pii": "none"}}
		for _, col := range []string{"big", "a", "b", "c", "d", "e"} {
			cols = append(cols, map[string]any{"name": col, "pii": "none"})
		}
		if strings.Contains(sql, " AS big ") {
			cols = cols[:2]
		} else {
			cols = append(cols[:1], cols[2:]...)
		}
		res := call(t, c, "create_model", map[string]any{"name": name, "sql": sql, "primary_key": "customer_id", "columns": cols})
		if res.IsError {
			t.Fatalf("create_model %s: %s", name, text(res))
		}
	}
	const previewCap = 1 << 20
	tests := []struct {
		name      string
		tool      string
		args      map[string]any
		wantRows  func(n int) bool
		truncated bool
		valuesCut bool
	}{
		{"huge values are cut", "preview_model", map[string]any{"model": "huge_values", "limit": 100},
			func(n int) bool { return n > 0 }, true, true},
		{"rows past the cap are dropped", "preview_model", map[string]any{"model": "wide_rows", "limit": 100},
			func(n int) bool { return n > 0 && n < 100 }, true, false},
		{"an audience sample of huge values", "preview_audience", map[string]any{"definition": map[string]any{
			"model": "huge_values", "conditions": map[string]any{"all": []any{}}}, "limit": 100},
			func(n int) bool { return n > 0 }, true, true},
		{"an audience sample of wide rows", "preview_audience", map[string]any{"definition": map[string]any{
			"model": "wide_rows", "conditions": map[string]any{"all": []any{}}}, "limit": 100},
			func(n int) bool { return n > 0 && n < 100 }, true, false},
		{"an ordinary preview is whole", "preview_model", map[string]any{"model": "customers", "limit": 50},
			func(n int) bool { return n == 50 }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, c, tt.tool, tt.args)
			var p preview
			structured(t, res, &p)
			rows := p.Rows
			if tt.tool == "preview_audience" {
				rows = p.Sample
			}
			encoded, err := json.Marshal(rows)
			if err != nil {
				t.Fatal(err)
			}
			if len(encoded) > previewCap {
				t.Errorf("the rows of the answer are %d bytes, over the cap of %d", len(encoded), previewCap)
			}
			if !tt.wantRows(len(rows)) {
				t.Errorf("%d rows", len(rows))
			}
			if p.Truncated != tt.truncated || (p.ValuesCut > 0) != tt.valuesCut {
				t.Errorf("truncated=%v values_cut=%d, want truncated=%v and values cut: %v", p.Truncated, p.ValuesCut, tt.truncated, tt.valuesCut)
			}
			for _, r := range rows {
				for col, v := range r {
					if s, ok := v.(string); ok && len(s) > 4<<10+len("…") {
						t.Fatalf("value of %s is %d bytes", col, len(s))
					}
				}
			}
			if tt.truncated && !strings.Contains(text(res), "cut") {
				t.Errorf("the text does not say the answer was cut: %q", text(res))
			}
		})
	}
}

// heldWarehouse holds the queries whose SQL contains heldMarker in the
// engine until the test frees them, one per value sent on free (or all, by
// closing it), and records every query the engine runs: whom it runs for,
// and how many of theirs run at once.
type heldWarehouse struct {
	store.Warehouse
	free chan struct{}

	mu      sync.Mutex
	entered []string // the human of each query, in the order it reached the engine
	now     map[string]int
	most    map[string]int
}

// heldMarker is in the SQL of the slow model.
const heldMarker = "'held'"

func newHeldWarehouse(w store.Warehouse) *heldWarehouse {
	return &heldWarehouse{Warehouse: w, free: make(chan struct{}), now: map[string]int{}, most: map[string]int{}}
}

func (h *heldWarehouse) Query(ctx context.Context, limits store.QueryLimits, query string, args ...any) (store.Result, error) {
	h.mu.Lock()
	h.entered = append(h.entered, limits.Human)
	for _, who := range []string{"key:" + limits.Key, "human:" + limits.Human, "all"} {
		h.now[who]++
		h.most[who] = max(h.most[who], h.now[who])
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		for _, who := range []string{"key:" + limits.Key, "human:" + limits.Human, "all"} {
			h.now[who]--
		}
		h.mu.Unlock()
	}()
	if strings.Contains(query, heldMarker) {
		select {
		case <-h.free:
		case <-ctx.Done():
			return store.Result{}, ctx.Err()
		}
	}
	return h.Warehouse.Query(ctx, limits, query, args...)
}

// snapshot returns the humans in the order their queries reached the
// engine, and the most queries that ran at once for who.
func (h *heldWarehouse) snapshot(who string) ([]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.entered), h.most[who]
}

// waitEntered waits until n queries have reached the engine and returns
// whom they ran for, in order.
func (h *heldWarehouse) waitEntered(t *testing.T, n int) []string {
	t.Helper()
	for range 2000 {
		if entered, _ := h.snapshot(""); len(entered) >= n {
			return entered
		}
		time.Sleep(5 * time.Millisecond)
	}
	entered, _ := h.snapshot("")
	t.Fatalf("%d queries reached the engine, want %d", len(entered), n)
	return nil
}

// mostPerKey returns the most queries that ran at once for one key.
func (h *heldWarehouse) mostPerKey() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	most := 0
	for who, n := range h.most {
		if strings.HasPrefix(who, "key:") {
			most = max(most, n)
		}
	}
	return most
}

// waitForQueries waits until the server's metrics show running and
// waiting warehouse queries, failing the test if that never happens.
func (e *env) waitForQueries(t *testing.T, running, waiting int) {
	t.Helper()
	for range 2000 {
		r, w := e.queryGauges(t)
		if r == running && w == waiting {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	r, w := e.queryGauges(t)
	t.Fatalf("warehouse queries: %d running and %d waiting, want %d and %d", r, w, running, waiting)
}

func (e *env) queryGauges(t *testing.T) (running, waiting int) {
	t.Helper()
	mfs, err := e.srv.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	running, waiting = -1, -1
	for _, mf := range mfs {
		switch mf.GetName() {
		case "signalsmith_warehouse_queries_running":
			running = int(mf.GetMetric()[0].GetGauge().GetValue())
		case "signalsmith_warehouse_queries_waiting":
			waiting = int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return running, waiting
}

// slowModel creates the model whose previews the held warehouse holds.
func slowModel(t *testing.T, c *client.Client) {
	t.Helper()
	res := call(t, c, "create_model", map[string]any{"name": "slow", "primary_key": "customer_id",
		"sql":     "SELECT a.customer_id, " + heldMarker + " AS tag FROM customers a CROSS JOIN customers b",
		"columns": []map[string]any{{"name": "customer_id", "pii": "none"}, {"name": "tag", "pii": "none"}}})
	if res.IsError {
		t.Fatalf("create the slow model: %s", text(res))
	}
}

func TestBudgetsWarehouseQueriesAreCappedAndFair(t *testing.T) {
	t.Parallel()
	t.Run("one human's flood holds at most its caps; another human's preview runs at once", func(t *testing.T) {
		t.Parallel()
		var held *heldWarehouse
		e := setup(t, withPolicies(t, allowAll), func(c *server.Config) {
			held = newHeldWarehouse(c.Warehouse)
			c.Warehouse = held
			c.QueryConcurrency = tools.Concurrency{PerKey: 2, PerHuman: 3, Total: 4}
		})
		a1 := e.client(t, e.agentOf(t, "flood-1", "hana"))
		a2 := e.client(t, e.agentOf(t, "flood-2", "hana"))
		b := e.client(t, e.agentOf(t, "ivos-bot", "ivo"))
		slowModel(t, a1)

		var flood sync.WaitGroup
		var done atomic.Int32
		for i := range 8 {
			c := a1
			if i%2 == 1 {
				c = a2
			}
			flood.Go(func() {
				defer done.Add(1)
				if res := call(t, c, "preview_model", map[string]any{"model": "slow", "limit": 5}); res.IsError {
					t.Errorf("flooding preview: %s", text(res))
				}
			})
		}
		e.waitForQueries(t, 3, 5)
		// Every slow preview still holds or waits: the other human's
		// preview completes first.
		if res := call(t, b, "preview_model", map[string]any{"model": "customers", "limit": 5}); res.IsError {
			t.Fatalf("the other human's preview: %s", text(res))
		}
		if n := done.Load(); n != 0 {
			t.Fatalf("%d slow previews ended before the other human's preview; none may have", n)
		}
		close(held.free)
		flood.Wait()
		_, most := held.snapshot("human:" + e.humanID(t, "hana"))
		if most != 3 {
			t.Errorf("the flooding human ran %d queries at once, want the cap of 3", most)
		}
		if most := held.mostPerKey(); most != 2 {
			t.Errorf("a flooding key ran %d queries at once, want the cap of 2", most)
		}
	})
	t.Run("a freed slot goes to the human with the fewest queries running", func(t *testing.T) {
		t.Parallel()
		var held *heldWarehouse
		e := setup(t, withPolicies(t, allowAll), func(c *server.Config) {
			held = newHeldWarehouse(c.Warehouse)
			c.Warehouse = held
			c.QueryConcurrency = tools.Concurrency{PerKey: 2, PerHuman: 2, Total: 2}
		})
		a := e.client(t, e.agentOf(t, "flood", "hana"))
		b := e.client(t, e.agentOf(t, "ivos-bot", "ivo"))
		slowModel(t, a)
		var all sync.WaitGroup
		preview := func(c *client.Client) {
			all.Go(func() {
				if res := call(t, c, "preview_model", map[string]any{"model": "slow", "limit": 5}); res.IsError {
					t.Errorf("slow preview: %s", text(res))
				}
			})
		}
		for range 5 {
			preview(a)
		}
		e.waitForQueries(t, 2, 3)
		preview(b)
		e.waitForQueries(t, 2, 4)
		// One of hana's queries ends: the slot goes to ivo, who waited
		// last but has none running, not to hana's next one.
		held.free <- struct{}{}
		e.waitForQueries(t, 2, 3)
		entered := held.waitEntered(t, 3)
		if ivo := e.humanID(t, "ivo"); len(entered) != 3 || entered[2] != ivo {
			t.Errorf("queries reached the engine for %v; the third should be ivo's (%s)", entered, ivo)
		}
		close(held.free)
		all.Wait()
	})
}

// createAudience saves an audience over customers with conditions and
// returns its id.
func createAudience(t *testing.T, c *client.Client, name string, conditions any) string {
	t.Helper()
	var out struct {
		Audience struct {
			ID string `json:"id"`
		} `json:"audience"`
	}
	structured(t, call(t, c, "create_audience", map[string]any{"name": name,
		"definition": map[string]any{"model": "customers", "conditions": conditions}}), &out)
	return out.Audience.ID
}

// inclusions is an any group including id n times.
func inclusions(op, id string, n int) map[string]any {
	kids := make([]any, n)
	for i := range kids {
		kids[i] = map[string]any{op: id}
	}
	return map[string]any{"any": kids}
}

func TestBudgetsNestedInclusionsStopAtTheExpansionBound(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, allowAll))
	c := e.client(t, e.agentOf(t, "bot", "hana"))
	// Each level includes the one below ten times: level 3 expands to
	// about 2,000 conditions, level 4 would expand to about 20,000.
	level := createAudience(t, c, "fan_0", map[string]any{"column": "plan", "operator": "equals", "value": "pro"})
	for l := 1; l <= 3; l++ {
		level = createAudience(t, c, fmt.Sprintf("fan_%d", l), inclusions("in_audience", level, 10))
	}
	// Ordinary work over the fan-out still works.
	var p struct {
		Count int `json:"count"`
	}
	structured(t, call(t, c, "preview_audience", map[string]any{"audience": level, "limit": 1}), &p)
	if want := e.warehouseCount(t, "SELECT count(*) FROM customers WHERE plan = 'pro'"); p.Count != want {
		t.Errorf("preview of fan_3 counts %d, want %d", p.Count, want)
	}
	other := createAudience(t, c, "other", map[string]any{"column": "state", "operator": "equals", "value": "CA"})

	tests := []struct {
		name string
		tool string
		args map[string]any
	}{
		{"create an audience one level deeper", "create_audience", map[string]any{"name": "fan_4",
			"definition": map[string]any{"model": "customers", "conditions": inclusions("in_audience", level, 10)}}},
		{"preview a wide draft", "preview_audience", map[string]any{"definition": map[string]any{
			"model": "customers", "conditions": inclusions("not_in_audience", level, 99)}}},
		{"update an audience to include the fan-out", "update_audience", map[string]any{"audience": other,
			"definition": map[string]any{"model": "customers", "conditions": map[string]any{"not": inclusions("in_audience", level, 20)}}}},
		{"check it first", "check_action", map[string]any{"tool": "create_audience", "arguments": map[string]any{"name": "fan_4b",
			"definition": map[string]any{"model": "customers", "conditions": inclusions("in_audience", level, 50)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, c, tt.tool, tt.args)
			if !res.IsError || !strings.Contains(text(res), "expands to more than 10000 conditions") {
				t.Errorf("%s: error=%v %q, want the expansion bound's refusal", tt.tool, res.IsError, text(res))
			}
		})
	}
	var list struct {
		Audiences []map[string]any `json:"audiences"`
	}
	structured(t, call(t, c, "list_audiences", map[string]any{}), &list)
	for _, a := range list.Audiences {
		if a["name"] == "fan_4" || a["name"] == "fan_4b" {
			t.Errorf("an audience over the bound was saved: %v", a)
		}
	}
}
