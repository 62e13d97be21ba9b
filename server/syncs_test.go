package server_test

import (
	"bufio"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// syncEnv is a server with a master key and a data directory for file
// destinations (setup wires the sync engine).
func syncEnv(t *testing.T) *env {
	t.Helper()
	return setup(t, withMasterKey(t, t.TempDir()))
}

// hookReceiver is a webhook receiver that checks signatures, applies each
// Idempotency-Key once and keeps what it holds by member key.
type hookReceiver struct {
	mu      sync.Mutex
	seen    map[string]bool
	held    map[string]map[string]any
	batches [][]store.SyncRecord
	bad     int
}

func newHookReceiver(t *testing.T) (*hookReceiver, *httptest.Server) {
	t.Helper()
	rc := &hookReceiver{seen: map[string]bool{}, held: map[string]map[string]any{}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if destinations.Sign([]byte(destSecret), r.Header.Get(destinations.HeaderTimestamp), body) != r.Header.Get(destinations.HeaderSignature) {
			rc.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if rc.seen[key] {
			return
		}
		rc.seen[key] = true
		var b struct {
			Records []store.SyncRecord `json:"records"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.batches = append(rc.batches, b.Records)
		for _, rec := range b.Records {
			if rec.Op == store.OpDelete {
				delete(rc.held, rec.Key)
			} else {
				rc.held[rec.Key] = rec.Fields
			}
		}
	}))
	t.Cleanup(hs.Close)
	return rc, hs
}

// since returns the records of the batches after the first n.
func (rc *hookReceiver) since(n int) []store.SyncRecord {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []store.SyncRecord
	for _, b := range rc.batches[n:] {
		out = append(out, b...)
	}
	return out
}

func (rc *hookReceiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.batches)
}

// members returns the keys and emails of the customers in the states.
func (e *env) members(t *testing.T, states ...string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.whDir, sqlite.AnalyticsFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	for _, st := range states {
		rows, err := db.Query(`SELECT customer_id, email FROM customers WHERE state = ? AND customer_id IS NOT NULL`, st)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var email *string
			if err := rows.Scan(&id, &email); err != nil {
				t.Fatal(err)
			}
			v := ""
			if email != nil {
				sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(*email))))
				v = hex.EncodeToString(sum[:])
			}
			out[strconv.FormatInt(id, 10)] = v
		}
		rows.Close()
	}
	return out
}

// approveAPI approves through the JSON API as a fresh admin and returns
// the approval's state after the call ran.
func (e *env) approveAPI(t *testing.T, id string) string {
	t.Helper()
	admin, _ := e.key(t, "approver-"+id, "admin", store.KindUser, nil)
	status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/approvals/"+id+"/approve", admin, `{"comment":"ok"}`)
	if status != http.StatusOK {
		t.Fatalf("approve %s: %d %v", id, status, out)
	}
	state, _ := out["state"].(string)
	return state
}

// approveWeb signs a fresh admin in to the web queue, checks that the
// approval's page shows each of want, approves it with the page's form and
// returns the approval's state after the call ran.
func (e *env) approveWeb(t *testing.T, id string, want ...string) string {
	t.Helper()
	admin, _ := e.key(t, "reviewer-"+id, "admin", store.KindUser, nil)
	w := newWeb(t, e.http.URL, nil)
	w.signIn(admin)
	resp, page := w.get("/approvals/" + id)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("approval page %s: %d", id, resp.StatusCode)
	}
	for _, s := range want {
		if !strings.Contains(page, s) {
			t.Errorf("the approval page does not show %q", s)
		}
	}
	if resp, body := w.decide(id, "approve", "looks right"); resp.StatusCode >= 400 {
		t.Fatalf("approve %s in the web queue: %d\n%s", id, resp.StatusCode, body)
	}
	return e.approval(t, id).State
}

// waitRun waits for the sync's newest run to end and returns it.
func (e *env) waitRun(t *testing.T, syncID string, after int) store.SyncRun {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		runs, err := e.db.ListSyncRuns(t.Context(), e.ws.ID, syncID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > after && runs[0].State != store.RunRunning {
			return runs[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the run of sync %s did not end", syncID)
	return store.SyncRun{}
}

// createDestination creates a destination through the JSON API.
func (e *env) createDestination(t *testing.T, body map[string]any) string {
	t.Helper()
	admin, _ := e.key(t, "dest-admin-"+body["name"].(string), "admin", store.KindUser, nil)
	raw, _ := json.Marshal(body)
	status, out := api(t, e.http.URL, http.MethodPost, "/api/v1/destinations", admin, string(raw))
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("create destination: %d %v", status, out)
	}
	id, _ := out["id"].(string)
	if id == "" {
		t.Fatalf("create destination: no id in %v", out)
	}
	return id
}

// approvedCall makes a call that must wait for a human, approves it
// through the JSON API and returns the approval's stored outcome.
func (e *env) approvedCall(t *testing.T, c *client.Client, tool string, args map[string]any) store.Approval {
	t.Helper()
	a := e.queuedApproval(t, call(t, c, tool, args))
	if state := e.approveAPI(t, a.ID); state != store.ApprovalSucceeded {
		t.Fatalf("%s approved: %s (%s)", tool, state, e.approval(t, a.ID).Outcome)
	}
	return e.approval(t, a.ID)
}

func TestSyncToProductionWebhookEndToEnd(t *testing.T) {
	t.Parallel()
	e := syncEnv(t)
	rc, hook := newHookReceiver(t)
	prod := e.createDestination(t, map[string]any{"name": "crm-prod", "type": "webhook", "category": "crm",
		"environment": "production", "url": hook.URL, "secret": destSecret, "batch_size": 7})
	agent, _ := e.key(t, "sync-bot", "admin", store.KindAgent, nil)
	c := e.client(t, agent)

	cond := func(states ...string) map[string]any {
		vals := make([]any, len(states))
		for i, s := range states {
			vals[i] = s
		}
		return map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{
			map[string]any{"column": "state", "operator": "in", "value": vals}}}}
	}
	var created struct {
		Audience struct {
			ID string `json:"id"`
		} `json:"audience"`
	}
	structured(t, call(t, c, "create_audience", map[string]any{"name": "ca-sync", "definition": cond("CA")}), &created)
	aud := created.Audience
	if aud.ID == "" {
		t.Fatal("create_audience returned no audience")
	}
	mappings := []any{
		map[string]any{"from": "customer_id", "to": "external_id"},
		map[string]any{"from": "email", "to": "email"},
		map[string]any{"from": "plan", "to": "plan"},
	}
	// Creating the production sync waits for a human, who sees what leaves.
	a := e.queuedApproval(t, call(t, c, "create_sync", map[string]any{"audience": "ca-sync", "destination": "crm-prod",
		"mappings": mappings, "mode": "upsert", "schedule": "1h"}))
	if a.Facts["destination"] != "crm-prod" || a.Facts["destination_environment"] != "production" ||
		!strings.Contains(a.Facts["mapped_columns"].(string), "email -> email (redacted, sha256)") {
		t.Fatalf("the approval does not show what leaves: %v", a.Facts)
	}
	// A person reviews it in the web queue, which shows the destination
	// and what leaves, and approves it there.
	if e.approveWeb(t, a.ID, "crm-prod", "email -&gt; email (redacted, sha256)") != store.ApprovalSucceeded {
		t.Fatalf("create_sync approved but: %s", e.approval(t, a.ID).Outcome)
	}
	syncs, err := e.db.ListSyncs(t.Context(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	var s store.Sync
	for _, x := range syncs {
		if x.DestinationID == prod {
			s = x
		}
	}
	if s.ID == "" || s.OwnerID != e.memberID(t, "sync-bot-human") {
		t.Fatalf("the sync was not created with the agent's human as owner: %+v", s)
	}

	// The dry run counts without sending and needs no human.
	var dry struct{ Added, Changed, Removed int64 }
	structured(t, call(t, c, "trigger_sync", map[string]any{"sync": s.ID, "dry_run": true}), &dry)
	want := e.members(t, "CA")
	if dry.Added != int64(len(want)) || rc.count() != 0 {
		t.Fatalf("dry run: %+v, want %d adds and nothing sent (%d batches)", dry, len(want), rc.count())
	}

	trigger := func(runsBefore int) store.SyncRun {
		t.Helper()
		a := e.queuedApproval(t, call(t, c, "trigger_sync", map[string]any{"sync": s.ID}))
		if _, ok := a.Facts["dry_run_added"]; !ok {
			t.Fatalf("the trigger's approval has no dry-run counts: %v", a.Facts)
		}
		if e.approveAPI(t, a.ID) != store.ApprovalSucceeded {
			t.Fatalf("trigger_sync approved but: %s", e.approval(t, a.ID).Outcome)
		}
		run := e.waitRun(t, s.ID, runsBefore)
		if run.State != store.RunSucceeded {
			t.Fatalf("run %+v", run)
		}
		return run
	}
	run := trigger(0)
	rc.mu.Lock()
	got := map[string]string{}
	for k, f := range rc.held {
		got[k], _ = f["email"].(string)
	}
	bad := rc.bad
	rc.mu.Unlock()
	if bad != 0 || len(got) != len(want) || run.Added != int64(len(want)) {
		t.Fatalf("the receiver holds %d members (%d bad signatures), run added %d; want the audience's %d", len(got), bad, run.Added, len(want))
	}
	for k, email := range want {
		if got[k] != email {
			t.Fatalf("member %s arrived with email %q, want its hash", k, got[k])
		}
	}
	var gr struct {
		State string `json:"state"`
		Added int64  `json:"added"`
	}
	structured(t, call(t, c, "get_sync_run", map[string]any{"run": run.ID}), &gr)
	if gr.State != store.RunSucceeded || gr.Added != run.Added {
		t.Fatalf("get_sync_run: %+v", gr)
	}
	// Every run's outcome is audited with the caller's source.
	found := false
	for _, ev := range e.audit(t) {
		if ev.Action == "syncs.trigger" && ev.ResourceID == s.ID && ev.Decision == store.DecisionExecuted && strings.Contains(ev.Result, run.ID) {
			found = ev.Source == store.SourceAI
		}
	}
	if !found {
		t.Fatal("the run's outcome is not in the audit trail with source AI")
	}

	// The audience grows: the next run sends only the difference.
	e.approvedOrDirect(t, c, "update_audience", map[string]any{"audience": aud.ID, "definition": cond("CA", "NY")})
	before := rc.count()
	run = trigger(1)
	ny := e.members(t, "NY")
	diff := rc.since(before)
	if len(diff) != len(ny) || run.Added != int64(len(ny)) || run.Changed != 0 {
		t.Fatalf("second run sent %d records (%d added, %d changed), want the %d new members only", len(diff), run.Added, run.Changed, len(ny))
	}
	for _, r := range diff {
		if _, ok := ny[r.Key]; !ok {
			t.Fatalf("second run sent member %s, who did not join", r.Key)
		}
	}

	// In mirror mode the members who leave are removed.
	e.approvedCall(t, c, "update_sync", map[string]any{"sync": s.ID, "mode": "mirror"})
	e.approvedOrDirect(t, c, "update_audience", map[string]any{"audience": aud.ID, "definition": cond("CA")})
	before = rc.count()
	run = trigger(2)
	diff = rc.since(before)
	if run.Removed != int64(len(ny)) || len(diff) != len(ny) || slices.ContainsFunc(diff, func(r store.SyncRecord) bool { return r.Op != store.OpDelete }) {
		t.Fatalf("mirror run: %d records, %d removed; want %d deletes", len(diff), run.Removed, len(ny))
	}
	rc.mu.Lock()
	held := len(rc.held)
	rc.mu.Unlock()
	if held != len(want) {
		t.Fatalf("the receiver holds %d members after the mirror run, want %d", held, len(want))
	}

	// A sandbox file destination gets the same rows as JSONL, with no human.
	dir := filepath.Join(e.dir, "exports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.createDestination(t, map[string]any{"name": "files", "type": "file", "category": "analytics",
		"environment": "sandbox", "dir": dir, "format": "jsonl"})
	var fs store.Sync
	structured(t, call(t, c, "create_sync", map[string]any{"audience": aud.ID, "destination": "files", "mappings": mappings, "mode": "upsert"}), &fs)
	var started store.SyncRun
	structured(t, call(t, c, "trigger_sync", map[string]any{"sync": fs.ID}), &started)
	if started.ID == "" {
		t.Fatal("trigger_sync to a sandbox did not return the run at once")
	}
	if r := e.waitRun(t, fs.ID, 0); r.State != store.RunSucceeded {
		t.Fatalf("file run: %+v", r)
	}
	fromFiles := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var rec store.SyncRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			fromFiles[rec.Key], _ = rec.Fields["email"].(string)
		}
		fh.Close()
	}
	if len(fromFiles) != len(want) {
		t.Fatalf("the files hold %d members, want %d", len(fromFiles), len(want))
	}
	for k, email := range want {
		if fromFiles[k] != email {
			t.Fatalf("file member %s has email %q, want its hash", k, fromFiles[k])
		}
	}
}

// memberID returns the id of the member called name.
func (e *env) memberID(t *testing.T, name string) string {
	t.Helper()
	members, err := e.db.Members(t.Context(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.Name == name {
			return m.ID
		}
	}
	t.Fatalf("no member %q", name)
	return ""
}

// approvedOrDirect makes a call and, when it waits for a human, approves
// it through the JSON API.
func (e *env) approvedOrDirect(t *testing.T, c *client.Client, tool string, args map[string]any) {
	t.Helper()
	res := call(t, c, tool, args)
	var q struct {
		ApprovalID string `json:"approval_id"`
	}
	structured(t, res, &q)
	if q.ApprovalID == "" {
		return
	}
	if state := e.approveAPI(t, q.ApprovalID); state != store.ApprovalSucceeded {
		t.Fatalf("%s approved: %s (%s)", tool, state, e.approval(t, q.ApprovalID).Outcome)
	}
}

// TestCreateSyncRefusesBadInput: every bad argument is a clear error and
// nothing is written, not even a queued approval.
func TestCreateSyncRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := syncEnv(t)
	other, err := e.db.EnsureWorkspace(t.Context(), "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := e.db.CreateDestination(t.Context(), store.Destination{WorkspaceID: other.ID, Name: "theirs",
		Type: "file", Category: "crm", Environment: "sandbox", Config: map[string]any{"dir": t.TempDir(), "format": "jsonl"}})
	if err != nil {
		t.Fatal(err)
	}
	agent, _ := e.key(t, "bad-input-bot", "admin", store.KindAgent, nil)
	c := e.client(t, agent)
	dsts, err := e.db.ListDestinations(t.Context(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	var prod string
	for _, d := range dsts {
		if d.Environment == "production" {
			prod = d.ID
		}
	}
	email := map[string]any{"from": "email", "to": "email"}
	cases := []struct {
		name string
		args map[string]any
		want string
	}{
		{"unknown column", map[string]any{"mappings": []any{map[string]any{"from": "shoe_size", "to": "s"}}}, "is not a column of model customers"},
		{"blocked column", map[string]any{"mappings": []any{map[string]any{"from": "notes", "to": "n"}}}, "is blocked"},
		{"blocked column dropped", map[string]any{"mappings": []any{email, map[string]any{"from": "notes", "to": "n", "transform": "drop"}}}, "is blocked"},
		{"bad cron", map[string]any{"schedule": "61 * * * *"}, "not a valid 5-field cron"},
		{"not a schedule", map[string]any{"schedule": "sometimes"}, "neither an interval"},
		{"too frequent", map[string]any{"schedule": "5s"}, "at least 1m"},
		{"foreign destination", map[string]any{"destination": foreign.ID}, "not found"},
		{"empty field", map[string]any{"mappings": []any{map[string]any{"from": "email", "to": ""}}}, "empty"},
		{"duplicate field", map[string]any{"mappings": []any{email, map[string]any{"from": "plan", "to": "email"}}}, "mapped twice"},
		{"bad transform", map[string]any{"mappings": []any{map[string]any{"from": "plan", "to": "p", "transform": "rot13"}}}, ""},
		{"bad mode", map[string]any{"mode": "sideways"}, ""},
		{"unknown audience", map[string]any{"audience": "nobody"}, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := map[string]any{"audience": "California pro customers", "destination": prod,
				"mappings": []any{email}, "mode": "upsert"}
			for k, v := range tc.args {
				args[k] = v
			}
			syncsBefore, _ := e.db.ListSyncs(t.Context(), e.ws.ID)
			approvalsBefore, _ := e.db.ListApprovals(t.Context(), store.ApprovalFilter{WorkspaceID: e.ws.ID})
			res, err := tryCall(c, "create_sync", args)
			if err != nil {
				t.Fatal(err)
			}
			if !res.IsError || !strings.Contains(text(res), tc.want) {
				t.Fatalf("create_sync %v: %s, want an error with %q", tc.args, text(res), tc.want)
			}
			syncsAfter, _ := e.db.ListSyncs(t.Context(), e.ws.ID)
			approvalsAfter, _ := e.db.ListApprovals(t.Context(), store.ApprovalFilter{WorkspaceID: e.ws.ID})
			if len(syncsAfter) != len(syncsBefore) || len(approvalsAfter) != len(approvalsBefore) {
				t.Fatalf("a refused create_sync wrote: %d -> %d syncs, %d -> %d approvals",
					len(syncsBefore), len(syncsAfter), len(approvalsBefore), len(approvalsAfter))
			}
		})
	}
}
